"""Which messages a job answers: the tenant's oldest pending customer messages, claimed under
per-contact locks, answered round by round.

A job claims the oldest pending messages of up to ANSWER_BATCH_CONTACTS contacts (a per-contact
advisory lock: one answerer per contact across all processes), then answers them in rounds:
each round takes the oldest pending message of every claimed contact. So a contact's messages
are answered one at a time in arrival order, while the contacts of a round share its few SQL
statements and their model calls run side by side. Few threads claim at once (ClaimerSlots),
so rounds grow with the load.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from functools import partial

from django.conf import settings
from django.db import connection

from conversations.jobs import answering_mark_taken, ask_for_answering, enqueue_backlog, force_answering
from conversations.models import Contact, DeskSettings, InboundMessage
from conversations.services.answering.rounds import Turn, answer_round, deliver_round
from conversations.services.conversations import contact_ids_for, contact_key, contacts_for
from conversations.services.locks import ContactLocks, LockPurpose
from tenants.concurrency import when_waiting_long
from tenants.worker_shutdown import worker_stopping

# One job claims for at most this long, then hands the rest on to a fresh job.
CLAIM_BUDGET_SECONDS = 30.0
# A job that finds this process's claimer slots taken while they work full claims (more contacts may wait than
# they hold) comes back after this long, in whichever process takes it: a backlog is worked by every process.
HELP_ELSEWHERE_SECONDS = 0.2
# A claimer whose model calls (or sends) take longer than this lends its slot until they are done: one claimer per
# process keeps rounds big and fast with a quick model, a slow one must not keep the messages stored meanwhile
# waiting for its round to end.
LEND_SLOT_AFTER_SECONDS = 0.1
# A claimer that fails hands the work other jobs left to it to a new job this much later.
AFTER_FAILURE_SECONDS = 1.0


def pending_customer_messages():
    return (InboundMessage.objects.filter(status=InboundMessage.Status.PENDING)
            .exclude(msg_type="event").order_by("id"))


class ClaimerSlots:
    """At most ANSWER_CLAIMERS_PER_PROCESS threads of a process answer one tenant at a time.

    Every answering job may claim, but the more threads claim side by side, the smaller each
    one's rounds, and a round's statements cost the same for 1 message as for 50. A job that
    finds the slots taken leaves the backlog to the claimers: it marks the tenant as having new
    work, and a claimer does not leave while that is set (both under one lock, so no message is
    left behind between a claimer's last look and its leaving); while they work full claims it
    goes back to the queue for another process instead (answer_as_claimer). A claimer waiting for a
    slow model lends its slot meanwhile (lend), and one that fails hands such work on (leave_failed).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._active: Counter[str] = Counter()
        self._new_work: set[str] = set()
        self._full_claims: Counter[str] = Counter()

    def enter(self, schema: str) -> bool:
        with self._lock:
            self._new_work.add(schema)
            if self._active[schema] >= settings.ANSWER_CLAIMERS_PER_PROCESS:
                return False
            self._active[schema] += 1
            return True

    def start_pass(self, schema: str) -> None:
        with self._lock:
            self._new_work.discard(schema)
        answering_mark_taken()  # across processes: what is stored from now on asks for a job again

    @contextmanager
    def full_claim(self, schema: str):
        """A claimer of this process works a full claim: there may be more contacts waiting than it holds."""
        with self._lock:
            self._full_claims[schema] += 1
        try:
            yield
        finally:
            with self._lock:
                self._full_claims[schema] -= 1

    def working_full_claims(self, schema: str) -> bool:
        with self._lock:
            return self._full_claims[schema] > 0

    def lend(self, schema: str) -> Callable[[], None]:
        """A claimer waits for a slow model (or WeCom): its slot is free meanwhile, so a job arriving now claims
        the messages stored since. Jobs that found the slots taken before left their work to this claimer: a
        job is published again to take it now (published after those messages were stored, its pass sees them).
        Returns the function that takes the slot back (the count may then exceed the limit until one leaves)."""
        with self._lock:
            self._active[schema] -= 1
            waiting = schema in self._new_work
            self._new_work.discard(schema)
        if waiting:
            force_answering()

        def take_back() -> None:
            with self._lock:
                self._active[schema] += 1

        return take_back

    def leave_failed(self, schema: str) -> None:
        """Give the slot back after the pass failed (the database went away, say). Jobs that found the slots taken
        left their work to the claimers: with no other claimer of this process there to see it, a new job takes
        it soon, not when Dramatiq retries the failed one (15 s and more)."""
        with self._lock:
            self._active[schema] -= 1
            stranded = schema in self._new_work and self._active[schema] == 0
            if stranded:
                self._new_work.discard(schema)
        if stranded:
            enqueue_backlog(delay_seconds=AFTER_FAILURE_SECONDS)

    def leave(self, schema: str, *, unless_new_work: bool = False) -> bool:
        """Give the slot back (True), or keep it because work arrived since the pass began (False)."""
        with self._lock:
            if unless_new_work and schema in self._new_work:
                return False
            self._active[schema] -= 1
            return True


claimer_slots = ClaimerSlots()


def answer_as_claimer() -> float | None:
    """answer_pending() in one of this process's claimer slots for the tenant, or leave the work to
    the claimer in it. Returns seconds after which to run again, or None."""
    schema = connection.schema_name
    if not claimer_slots.enter(schema):
        # The claimers here will see the new work. But if they hold full claims, contacts may be waiting that
        # nobody holds, while another process's slots are free: this job goes back to the queue for any process.
        return HELP_ELSEWHERE_SECONDS if claimer_slots.working_full_claims(schema) else None
    while True:
        claimer_slots.start_pass(schema)
        try:
            with when_waiting_long(LEND_SLOT_AFTER_SECONDS, partial(claimer_slots.lend, schema)):
                delay = answer_pending()
        except BaseException:
            claimer_slots.leave_failed(schema)
            raise
        if delay is not None:
            claimer_slots.leave(schema)
            return delay
        if claimer_slots.leave(schema, unless_new_work=True):
            return None


def answer_contact(contact: Contact, *, deliver: bool = True) -> float | None:
    """Answer every pending message of one contact, in order (see answer_pending)."""
    return answer_pending(contact=contact, deliver=deliver)


def answer_pending(*, contact: Contact | None = None, deliver: bool = True) -> float | None:
    """Answer pending customer messages (of all contacts, or of `contact`), oldest first, in rounds.

    Claims until nothing is left that another worker is not already answering. Nobody is
    forgotten: a message whose contact was locked when its job ran is picked up by the lock's
    holder, whose next claim (after releasing) sees everything committed before that job gave up.
    Returns seconds after which to run again (a shared rate-limit tier deferred work, the time
    budget ran out with work left, or the worker is shutting down), or None. `deliver=False`
    leaves the ledger rows to the delivery job.
    """
    desk = DeskSettings.current()
    deadline = time.monotonic() + CLAIM_BUDGET_SECONDS
    while True:
        with ContactLocks(LockPurpose.ANSWER) as locks:
            queues = _claim(contact, locks)
            if not queues:
                return None
            full = contact is None and len(queues) == settings.ANSWER_BATCH_CONTACTS
            if full:
                # More contacts may be waiting than one claim holds: ask for a claimer beside this one (in
                # another thread or process), so a backlog is not worked by a single thread.
                ask_for_answering()
            with claimer_slots.full_claim(connection.schema_name) if full else nullcontext():
                delay = _answer_rounds(queues, desk, deliver=deliver)
            if delay is not None:
                return delay
        if time.monotonic() > deadline:
            return 0.0


def _answer_rounds(queues: dict[int, deque[Turn]], desk: DeskSettings, *, deliver: bool) -> float | None:
    """Answer the claimed contacts' messages round by round; seconds after which to run again, or None when
    every queue is done."""
    while queues:
        turns = [queue.popleft() for queue in queues.values()]
        queues = {contact_id: queue for contact_id, queue in queues.items() if queue}
        result = answer_round(turns, desk)
        if deliver:
            deliver_round(result.settled)
        if result.retry_after is not None:
            # No further round: a deferred contact's later messages must wait behind it.
            return result.retry_after
        if queues and worker_stopping():  # the rest to the next worker: each round is committed
            return 0.0
    return None


def _claim(contact: Contact | None, locks: ContactLocks) -> dict[int, deque[Turn]]:
    """Lock the contacts of the oldest pending messages, up to ANSWER_BATCH_CONTACTS of them:
    {contact id: its pending messages as turns, oldest first}."""
    candidates = pending_customer_messages()
    if contact is not None:
        candidates = candidates.filter(app_id=contact.app_id, sender=contact.external_id,
                                       open_kfid=contact.open_kfid)
    # Keys first, rows for the claimed contacts only: while another claimer works the same backlog most candidates
    # are its contacts or beyond this claim, and building their rows was a tenth of a draining worker's CPU.
    keyed = [(pk, (app_id, sender, open_kfid)) for pk, app_id, sender, open_kfid
             in candidates.values_list("pk", "app_id", "sender", "open_kfid")[:settings.ANSWER_BATCH_CONTACTS * 4]]
    if not keyed:
        return {}
    contact_ids = contact_ids_for(key for _, key in keyed)
    locked, _ = locks.try_acquire([contact_ids[key] for _, key in keyed])
    keep = set(locked[:settings.ANSWER_BATCH_CONTACTS])
    # Read now that we hold the locks, so only what is still pending: another worker may have answered some
    # meanwhile. The pipeline never reads the raw payload (of a 微信客服 text only its menu_id: menus.menu_clicks).
    mine = list(pending_customer_messages().defer("payload")
                .filter(pk__in=[pk for pk, key in keyed if contact_ids[key] in keep]))
    by_key = contacts_for(mine) if mine else {}
    queues: dict[int, deque[Turn]] = {}
    for inbound in mine:
        contact = by_key[contact_key(inbound)]
        queues.setdefault(contact.pk, deque()).append(Turn(inbound=inbound, contact=contact))
    locks.release([pk for pk in locked if pk not in queues])
    return queues
