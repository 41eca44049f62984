"""map_in_tenant() under when_waiting_long(): a wait past the threshold lends what the caller holds until the calls
are done (tenants/concurrency.py); an answering claimer lends its slot that way while a slow model thinks."""

from __future__ import annotations

import threading

import pytest

from tenants.concurrency import map_in_tenant, when_waiting_long


class Lender:
    def __init__(self):
        self.lent = threading.Event()
        self.events: list[str] = []

    def lend(self):
        self.events.append("lent")
        self.lent.set()
        return lambda: self.events.append("taken back")


@pytest.mark.parametrize("items", [[1], [1, 2, 3]])
def test_calls_still_running_after_the_threshold_lend_until_they_are_done(items):
    lender = Lender()

    def slow(item: int) -> int:
        assert lender.lent.wait(timeout=10), "not lent while the calls were still running"
        lender.events.append(f"done {item}")
        return item * 10

    with when_waiting_long(0.01, lender.lend):
        assert map_in_tenant(slow, items) == [item * 10 for item in items]

    assert lender.events[0] == "lent"
    assert lender.events[-1] == "taken back"  # only once every call is done
    assert sorted(lender.events[1:-1]) == [f"done {item}" for item in items]


def test_calls_done_within_the_threshold_lend_nothing():
    lender = Lender()
    with when_waiting_long(10.0, lender.lend):
        assert map_in_tenant(lambda item: item + 1, [1, 2]) == [2, 3]
    assert lender.events == []


def test_a_failing_call_still_takes_back_what_was_lent():
    lender = Lender()

    def fails(item: int) -> int:
        assert lender.lent.wait(timeout=10)
        raise ValueError(f"call {item}")

    with when_waiting_long(0.01, lender.lend), pytest.raises(ValueError, match="call 1"):
        map_in_tenant(fails, [1, 2])
    assert lender.events == ["lent", "taken back"]


def test_the_calls_themselves_do_not_lend_again():
    lender = Lender()

    def nested(item: int) -> list[int]:
        return map_in_tenant(lambda inner: inner * item, [1, 2])  # fast: lends nothing either way

    with when_waiting_long(10.0, lender.lend):
        assert map_in_tenant(nested, [2, 3]) == [[2, 4], [3, 6]]
    assert lender.events == []
