"""Upstream URL and headers: clear errors that never show a header's value."""

from __future__ import annotations

import pytest

from regogate.core import ConfigError
from regogate.proxy.relay._http_target import HttpTarget, display_url, parse_headers

SECRET = "tok-9f8e7d6c"


def test_headers_come_from_flags_and_the_environment() -> None:
    headers = parse_headers(["X-Team: blue"], ["Authorization=TOKEN"], {"TOKEN": f"Bearer {SECRET}"})
    assert headers == (("X-Team", "blue"), ("Authorization", f"Bearer {SECRET}"))


@pytest.mark.parametrize(
    ("given", "from_env", "message"),
    [
        (["no-colon"], [], "--header 'no-colon': expected 'Name: Value'"),
        ([], ["Authorization"], "--header-env 'Authorization': expected Name=ENVVAR"),
        ([], ["Authorization=MISSING"], "--header-env Authorization: environment variable MISSING is not set or empty"),
        ([f"Mcp-Session-Id: {SECRET}"], [], "header 'Mcp-Session-Id' is set by regogate itself and cannot be given"),
        ([f"Bad Name: {SECRET}"], [], "header name 'Bad Name' is not a valid HTTP header name"),
        ([f"A: {SECRET}", f"a: {SECRET}"], [], "header 'a' is given twice"),
        ([], ["X-Key=SPLIT"], "header 'X-Key': the value contains a line break or NUL"),
        ([], ["X-Key=BELL"], "header 'X-Key': the value holds a control or non-ASCII character"),
        ([], ["X-Key=ACCENT"], "header 'X-Key': the value holds a control or non-ASCII character"),
    ],
)
def test_bad_headers_are_refused_without_showing_the_value(given: list[str], from_env: list[str], message: str) -> None:
    environ = {"SPLIT": f"{SECRET}\r\nX-Evil: 1", "BELL": f"{SECRET}\x07", "ACCENT": f"{SECRET}\u00e9"}
    with pytest.raises(ConfigError) as caught:
        parse_headers(given, from_env, environ)
    assert str(caught.value) == message
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("value", [f"{SECRET}\r\nX-Evil: 1", f"{SECRET}\x7f", f"{SECRET}\u2028"])
def test_a_target_built_in_code_refuses_a_header_value_that_would_not_stay_one_field(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        HttpTarget("http://127.0.0.1:1/mcp", (("X-Key", value),))
    assert SECRET not in str(caught.value)


def test_a_target_never_shows_secrets() -> None:
    target = HttpTarget(f"https://user:{SECRET}@example.test:8443/mcp?key={SECRET}#x", (("Authorization", SECRET),))
    assert target.display == "https://example.test:8443/mcp"
    assert SECRET not in repr(target)
    assert target.scrub(f"failed with {SECRET} in it") == "failed with *** in it"


def test_a_short_user_name_does_not_blank_out_every_letter_but_the_url_is_still_scrubbed() -> None:
    url = "http://u:pw@example.test/mcp?k=verysecretkey"
    target = HttpTarget(url)
    assert target.scrub(f"upstream {url} answered") == "upstream *** answered"
    assert target.scrub("u:pw@example.test refused") == "***@example.test refused"
    assert target.scrub("k=verysecretkey") == "***"


@pytest.mark.parametrize("url", ["ftp://example.test/mcp", "example.test/mcp", "http:///mcp"])
def test_an_upstream_that_is_not_an_http_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="must be an http:// or https:// URL"):
        HttpTarget(url)


def test_display_url_keeps_an_ipv6_host() -> None:
    assert display_url("http://[::1]:9000/mcp?t=1") == "http://[::1]:9000/mcp"
