"""The request ledger: every transition of a request's life, and the ones it refuses."""

from __future__ import annotations

import pytest

from regogate.proxy.relay._gateway import Verdict
from regogate.proxy.relay._ledger import Cancel, Ledger, Phase, Refusal

ALLOW = Verdict(True, "", None, "d1")


def test_a_tools_call_is_decided_then_forwarded_then_answered_once() -> None:
    ledger = Ledger()
    call = ledger.receive(1, "tools/call")
    assert call.phase is Phase.DECIDING and ledger.deciding == 1
    assert ledger.answer(1) is None  # the server cannot answer what it never got
    assert ledger.allow(call, ALLOW) is True
    assert call.phase.value == "forwarded" and ledger.deciding == 0
    assert ledger.answer(1) is call
    assert ledger.answer(1) is None and len(ledger) == 0  # a second answer matches nothing


def test_a_denied_call_ends_at_once() -> None:
    ledger = Ledger()
    call = ledger.receive("c", "tools/call")
    assert ledger.deny(call) is True
    assert len(ledger) == 0 and ledger.deciding == 0


def test_a_cancel_while_deciding_withdraws_the_call_for_good() -> None:
    ledger = Ledger()
    call = ledger.receive(2, "tools/call")
    assert ledger.cancel(2) is Cancel.WITHDRAWN
    assert ledger.cancel(2) is Cancel.WITHDRAWN
    assert ledger.allow(call, ALLOW) is False  # the verdict came too late: never forwarded
    assert len(ledger) == 0 and ledger.deciding == 0


def test_a_denial_of_a_withdrawn_call_is_not_answered() -> None:
    ledger = Ledger()
    call = ledger.receive(2, "tools/call")
    ledger.cancel(2)
    assert ledger.deny(call) is False


def test_a_cancel_after_forwarding_is_passed_on_and_keeps_the_request_open() -> None:
    ledger = Ledger()
    call = ledger.receive(3, "tools/call")
    ledger.allow(call, ALLOW)
    assert ledger.cancel(3) is Cancel.PASSED_ON
    assert call.cancelled and ledger.answer(3) is call  # the answer still settles it


def test_other_requests_are_forwarded_as_they_are_received() -> None:
    ledger = Ledger()
    listing = ledger.receive("l", "tools/list")
    assert listing.phase is Phase.FORWARDED
    assert ledger.answer("l") is listing


@pytest.mark.parametrize("bad_id", [1.5, True, None, [1], {}, 2**53, -(2**53)])
def test_ids_mcp_does_not_allow_are_refused(bad_id: object) -> None:
    with pytest.raises(Refusal, match="string or an integer"):
        Ledger().receive(bad_id, "tools/list")


def test_an_id_in_flight_is_refused_whatever_the_method_and_1_and_one_are_distinct() -> None:
    ledger = Ledger()
    listing = ledger.receive(1, "tools/list")
    with pytest.raises(Refusal, match="already in use"):
        ledger.receive(1, "tools/call")
    ledger.receive("1", "tools/call")
    assert ledger.answer(1) is listing  # routing unchanged by the refused duplicate


def test_private_requests_are_answered_to_regogate_and_forgotten_answers_match_nothing() -> None:
    ledger = Ledger()
    mine = ledger.private("regogate:x:1", "tools/list", lambda message: None)
    with pytest.raises(Refusal):
        ledger.receive("regogate:x:1", "tools/list")
    assert ledger.cancel("regogate:x:1") is Cancel.UNKNOWN  # a client cannot cancel regogate's request
    ledger.forget(mine)
    assert ledger.answer("regogate:x:1") is None


def test_the_number_of_open_requests_is_bounded() -> None:
    ledger = Ledger(limit=2)
    ledger.receive(1, "ping")
    ledger.receive(2, "ping")
    with pytest.raises(Refusal, match="more than 2"):
        ledger.receive(3, "ping")
    ledger.answer(1)
    ledger.receive(3, "ping")


def test_close_hands_back_every_open_request() -> None:
    ledger = Ledger()
    call = ledger.receive(1, "tools/call")
    ledger.allow(call, ALLOW)
    ledger.receive(2, "tools/call")
    assert {r.request_id for r in ledger.close()} == {1, 2}
    assert len(ledger) == 0 and ledger.deciding == 0


def test_a_failed_write_removes_the_request() -> None:
    ledger = Ledger()
    ping = ledger.receive(1, "ping")
    ledger.unsent(ping)
    assert ledger.answer(1) is None
