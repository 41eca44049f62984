"""The sweepers of the message path (conversations/schedule.py), invariant 4: the broker is not the source of
truth. A run re-enqueues what waited past its deadline, at most a limit per run (the rest goes next run), and
leaves fresh work alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import InboundMessage, OutboundMessage
from conversations.schedule import sweep_stale_inbound, sweep_stalled_outbound
from conversations.services.inbound import requeue_stale_inbound
from conversations.services.outbound import contacts_with_stalled_outbound
from tenants import coalescing
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import ContactFactory, InboundMessageFactory, OutboundMessageFactory

pytestmark = pytest.mark.django_db
Status = OutboundMessage.Status
PROCESS_INBOUND = "conversations.process_inbound"
ANSWER_BACKLOG = "conversations.answer_backlog"
DELIVER_OUTBOUND = "conversations.deliver_outbound"


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """sweep(job, *args) -> (its result, the jobs it enqueued on `queue` as (actor, args), sorted): one run, its
    jobs sent on commit to an empty test broker."""

    def run(job, *args, queue: str, **kwargs):
        flush_test_broker()
        with django_capture_on_commit_callbacks(execute=True):
            result = job(*args, **kwargs)
        return result, sorted((message.actor_name, message.args) for message in queued_jobs(queue))

    yield run
    flush_test_broker()


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def enqueues(rows) -> list[tuple[int, object]]:
    """(enqueue_count, enqueued_at) of each row, as stored now."""
    stored = InboundMessage.objects.in_bulk([row.pk for row in rows])
    return [(stored[row.pk].enqueue_count, stored[row.pk].enqueued_at) for row in rows]


# -- inbound ------------------------------------------------------------------------------------------


def test_the_inbound_sweeper_re_enqueues_at_most_its_limit_per_run_oldest_first(tenant_a, sweep, settings):
    deadline = settings.INBOUND_SWEEP_AFTER_SECONDS
    with schema_context("alpha"):
        # Given five messages pending past the deadline, one pending but just enqueued, one processed long ago
        stale = InboundMessageFactory.create_batch(5, enqueued_at=ago(deadline + 60))
        fresh = InboundMessageFactory(enqueued_at=ago(deadline - 5))
        processed = InboundMessageFactory(status=InboundMessage.Status.PROCESSED, enqueued_at=ago(deadline + 60))
        untouched = enqueues([fresh, processed])

        # When the sweeper runs three times with a limit of 3
        runs = [sweep(requeue_stale_inbound, older_than_seconds=deadline, limit=3, queue="inbound")
                for _ in range(3)]

        # Then the three oldest went first, the other two on the next run, each run asking one job to answer
        # the tenant's backlog, and then nothing was stale any more
        assert runs == [(3, [(ANSWER_BACKLOG, ())]), (2, [(ANSWER_BACKLOG, ())]), (0, [])]
        assert [count for count, _ in enqueues(stale)] == [2] * 5
        assert all(enqueued_at > ago(5) for _, enqueued_at in enqueues(stale))
        # and fresh or finished messages were not touched
        assert enqueues([fresh, processed]) == untouched


def test_the_inbound_sweeper_answers_even_when_the_lost_job_left_its_mark(tenant_a, sweep, settings):
    """The mark of the coalesced answering job says "a job is on its way"; when the sweeper finds messages pending
    past the deadline, that job was lost, and its mark must not keep the sweeper's job from being sent."""
    deadline = settings.INBOUND_SWEEP_AFTER_SECONDS
    with schema_context("alpha"):
        stale = InboundMessageFactory(enqueued_at=ago(deadline + 60))
        # Given a mark still standing for a job that never arrived
        assert coalescing.ask("alpha", ANSWER_BACKLOG)

        result, jobs = sweep(requeue_stale_inbound, older_than_seconds=deadline, queue="inbound")

        assert (result, jobs) == (1, [(ANSWER_BACKLOG, ())])
        assert enqueues([stale])[0][0] == 2
        # and the mark stands again, for the job just sent
        assert not coalescing.ask("alpha", ANSWER_BACKLOG)


def test_the_periodic_inbound_sweep_enqueues_stale_events_one_by_one_and_one_answering_job(
        tenant_a, tenant_b, sweep, settings):
    deadline = settings.INBOUND_SWEEP_AFTER_SECONDS
    with schema_context("beta"):
        beta_stale = InboundMessageFactory(enqueued_at=ago(deadline + 60))
    with schema_context("alpha"):
        stale = InboundMessageFactory.create_batch(2, enqueued_at=ago(deadline + 60))
        stale_event = InboundMessageFactory(msg_type="event", event="enter_session", enqueued_at=ago(deadline + 60))
        fresh = InboundMessageFactory(enqueued_at=ago(deadline - 5))
        untouched = enqueues([fresh])

        result, jobs = sweep(sweep_stale_inbound, queue="inbound")

        assert (result, jobs) == (None, [(ANSWER_BACKLOG, ()), (PROCESS_INBOUND, (stale_event.pk,))])
        assert [count for count, _ in enqueues([*stale, stale_event])] == [2, 2, 2]
        assert enqueues([fresh]) == untouched
    with schema_context("beta"):  # the scheduler runs it per tenant: alpha's run leaves beta's rows alone
        assert enqueues([beta_stale]) == [(1, beta_stale.enqueued_at)]


# -- outbound -----------------------------------------------------------------------------------------


@pytest.fixture
def outbound_world(tenant_a, settings):
    """Alpha's ledger: three contacts with two rows each nobody has worked on past the sending timeout, and
    contacts whose rows are fresh, retrying later, or finished."""
    timeout = settings.OUTBOUND_SENDING_TIMEOUT_SECONDS
    with schema_context("alpha"):
        stalled = ContactFactory.create_batch(3)
        for contact, status in zip(stalled, (Status.PENDING, Status.SENDING, Status.RETRYING), strict=True):
            OutboundMessageFactory.create_batch(2, contact=contact, status=status, next_attempt_at=ago(timeout + 30))
        fresh = OutboundMessageFactory(status=Status.PENDING).contact  # just queued: its job is on its way
        retrying_later = OutboundMessageFactory(status=Status.RETRYING, next_attempt_at=timezone.now()
                                                + timedelta(minutes=5)).contact
        finished = ContactFactory()
        for status in (Status.SENT, Status.DEAD, Status.CANCELLED):
            OutboundMessageFactory(contact=finished, status=status)
        # updated_at is auto_now: age the rows with an UPDATE, which does not touch it
        OutboundMessage.objects.exclude(contact=fresh).update(updated_at=ago(timeout + 60))
    return {"timeout": timeout, "stalled": [contact.pk for contact in stalled], "fresh": fresh.pk,
            "retrying_later": retrying_later.pk, "finished": finished.pk}


def deliver(contact_ids: list[int]) -> None:
    """What the delivery jobs of these contacts do to their waiting rows (sent)."""
    OutboundMessage.objects.filter(contact_id__in=contact_ids).update(status=Status.SENT, updated_at=timezone.now())


def test_the_stalled_outbound_sweeper_takes_at_most_its_limit_of_contacts_per_run(outbound_world):
    world = outbound_world
    with schema_context("alpha"):
        # When the sweeper runs with a limit of 2, the delivery jobs it sends run, and it runs again (twice)
        runs = []
        for _ in range(3):
            runs.append(contacts_with_stalled_outbound(older_than_seconds=world["timeout"], limit=2))
            deliver(runs[-1])

    # Then the first run names two of the three stalled contacts, each once, the next run the third, then none
    first, second, third = runs
    assert (len(first), len(set(first)), len(second), third) == (2, 2, 1, [])
    assert sorted(first + second) == world["stalled"]


def test_the_periodic_outbound_sweep_sends_delivery_jobs_to_stalled_contacts_only(outbound_world, sweep):
    world = outbound_world
    with schema_context("alpha"):
        result, jobs = sweep(sweep_stalled_outbound, queue="outbound")

    # Fresh rows, a retry that is not due yet and finished rows get no job (one job per contact: see the
    # test above, which fails while a contact with two waiting rows gets two)
    assert result is None
    assert {actor for actor, _ in jobs} == {DELIVER_OUTBOUND}
    assert sorted({contact_id for _, (contact_id,) in jobs}) == world["stalled"]
