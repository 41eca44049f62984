"""A job that finds its process's claimer slots taken (conversations/services/answering/claiming.py): it leaves the
work to them, unless they hold full claims, in which case it goes back to the queue for any process."""

from __future__ import annotations

import pytest

from conversations.services.answering import claiming


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
