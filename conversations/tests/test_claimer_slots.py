"""A job that finds its process's claimer slots taken (conversations/services/answering/claiming.py): it leaves the
work to them, unless they hold full claims, in which case it goes back to the queue for any process."""

from __future__ import annotations

import threading

import pytest

from conversations.services.answering import claiming
from tenants.concurrency import map_in_tenant


@pytest.fixture
def slots(monkeypatch, settings):
    settings.ANSWER_CLAIMERS_PER_PROCESS = 1
    fresh = claiming.ClaimerSlots()
    monkeypatch.setattr(claiming, "claimer_slots", fresh)
    monkeypatch.setattr(claiming, "answering_mark_taken", lambda: None)
    return fresh


def test_slots_taken_by_a_claimer_of_a_small_backlog_leave_the_work_to_it(slots):
    assert slots.enter("public")  # the one claimer of this process

    assert claiming.answer_as_claimer() is None  # it will see the new work: nothing to hand on


def test_slots_taken_by_claimers_of_full_claims_send_the_job_to_another_process(slots):
    assert slots.enter("public")
    with slots.full_claim("public"):
        assert claiming.answer_as_claimer() == claiming.HELP_ELSEWHERE_SECONDS
    assert claiming.answer_as_claimer() is None  # the claim is done: back to leaving it to the claimer


def test_a_claimer_waiting_for_a_slow_model_lends_its_slot_and_takes_it_back(slots, monkeypatch):
    published = []
    monkeypatch.setattr(claiming, "force_answering", lambda: published.append("job"))
    assert slots.enter("public")
    slots.start_pass("public")

    take_back = slots.lend("public")
    assert published == []  # no job had left its work to this claimer
    assert slots.enter("public")  # a job arriving meanwhile claims what was stored since
    take_back()
    assert not slots.enter("public")  # both hold a slot: over the limit until one leaves


def test_work_left_to_a_claimer_before_it_lends_its_slot_gets_a_job_of_its_own(slots, monkeypatch):
    published = []
    monkeypatch.setattr(claiming, "force_answering", lambda: published.append("job"))
    assert slots.enter("public")
    slots.start_pass("public")
    assert claiming.answer_as_claimer() is None  # slots taken: its messages are left to the claimer

    take_back = slots.lend("public")  # the claimer starts waiting for a slow model
    assert published == ["job"]  # so a job takes those messages now instead of after the round
    take_back()
    assert slots.leave("public", unless_new_work=True)  # handed over: nothing holds this claimer back


def test_the_answering_claimer_lends_its_slot_while_the_model_is_slow(slots, monkeypatch):
    lent = threading.Event()
    monkeypatch.setattr(claiming.ClaimerSlots, "lend", lambda self, schema: lent.set() or (lambda: None))
    monkeypatch.setattr(claiming, "LEND_SLOT_AFTER_SECONDS", 0.01)

    def pending_with_a_slow_model() -> None:
        # The model call returns once the claimer has lent its slot (or fails the test after 10 s).
        assert map_in_tenant(lambda _: lent.wait(timeout=10), [1]) == [True]

    monkeypatch.setattr(claiming, "answer_pending", pending_with_a_slow_model)
    assert claiming.answer_as_claimer() is None
    assert lent.is_set()
    assert slots.enter("public")  # the claimer left its slot at the end


def test_work_left_to_a_claimer_that_fails_goes_to_a_new_job(slots, monkeypatch):
    published = []
    monkeypatch.setattr(claiming, "enqueue_backlog", lambda *, delay_seconds: published.append(delay_seconds))
    left = threading.Event()

    def fails_after_a_job_left_its_work() -> None:
        assert claiming.answer_as_claimer() is None  # a job arriving now finds the slot taken and leaves
        left.set()
        raise ConnectionError("the database went away")

    monkeypatch.setattr(claiming, "answer_pending", fails_after_a_job_left_its_work)
    with pytest.raises(ConnectionError):
        claiming.answer_as_claimer()
    assert left.is_set()
    assert published == [claiming.AFTER_FAILURE_SECONDS]  # not stranded until Dramatiq retries the failed job
    assert slots.enter("public")  # the slot is free again


def test_a_claimer_that_fails_with_no_work_left_to_it_publishes_nothing(slots, monkeypatch):
    published = []
    monkeypatch.setattr(claiming, "enqueue_backlog", lambda *, delay_seconds: published.append(delay_seconds))

    def fails() -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(claiming, "answer_pending", fails)
    with pytest.raises(ConnectionError):
        claiming.answer_as_claimer()
    assert published == []  # Dramatiq's retry of the failed job is enough


def test_work_left_to_another_tenants_claimer_is_not_handed_over_by_this_one(slots, monkeypatch):
    published = []
    monkeypatch.setattr(claiming, "force_answering", lambda: published.append("job"))
    monkeypatch.setattr(claiming, "enqueue_backlog", lambda *, delay_seconds: published.append(delay_seconds))
    for schema in ("alpha", "beta"):
        assert slots.enter(schema)
        slots.start_pass(schema)
    assert not slots.enter("beta")  # a job of beta leaves its messages to beta's claimer

    slots.lend("alpha")()  # alpha's claimer waits for a slow model, and takes its slot back
    slots.leave_failed("alpha")  # alpha's pass fails
    assert published == []  # beta's work stays with beta's claimer, which sees it
    slots.lend("beta")
    assert published == ["job"]
