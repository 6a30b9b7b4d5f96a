"""Who is calling: claims from a file, the environment or flags; the local user by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from regogate.core import ConfigError
from regogate.proxy.cli._principal import load_principal


def test_the_default_principal_is_the_local_user() -> None:
    assert load_principal(None, [], {}, user="alice") == {"id": "alice"}


def test_flags_add_claims_on_top_of_the_environment() -> None:
    env = {"REGOGATE_PRINCIPAL": '{"id": "bob", "team": "payments", "groups": ["a"]}'}
    principal = load_principal(None, ["team=search", "role=admin"], env, user="alice")
    assert principal == {"id": "bob", "team": "search", "groups": ["a"], "role": "admin"}


def test_a_file_wins_over_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "who.json"
    file.write_text('{"id": "carol"}', encoding="utf-8")
    assert load_principal(str(file), [], {"REGOGATE_PRINCIPAL": '{"id": "bob"}'}) == {"id": "carol"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1]", "who.json: the principal must be a JSON object of claims"),
        ("{", "who.json: not JSON"),
        ('{"id": 7}', "principal: id must be a non-empty string"),
    ],
)
def test_a_bad_principal_file_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "who.json"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_principal(str(file), [], {})


def test_a_missing_file_and_a_bad_flag_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--principal-file .*nope\.json: No such file"):
        load_principal(str(tmp_path / "nope.json"), [], {})
    with pytest.raises(ConfigError, match=r"--principal 'team': expected key=value"):
        load_principal(None, ["team"], {})
