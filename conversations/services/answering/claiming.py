"""The answer pipeline (docs/DESIGN_RULES.md step 4): one customer message in, exactly one visible outcome out.

Work goes in rounds over many contacts. A worker claims the oldest pending customer
messages of up to ANSWER_BATCH_CONTACTS contacts (a per-contact advisory lock: one answerer
per contact across all processes), then answers them round by round: each round takes the
oldest pending message of every claimed contact. So a contact's messages are answered one
at a time in arrival order, while the contacts of a round share its few SQL statements and
their model calls run side by side (a model answering in seconds must not make the tenant's
customers wait for each other). Few threads claim at once (ClaimerSlots), so rounds grow with
the load. A round:

1. rate limits: the platform and tenant tiers admit the round (or what fits; the rest is
   deferred and no further round runs), the customer tier is counted per message;
2. one transaction records the customer messages in their locked conversations and settles
   what needs no model: rate-limited, owned by a human, asking for a human;
3. no transaction held: knowledge retrieval, then the model calls through the breaker;
4. one transaction re-locks the conversations, drops answers a human overtook meanwhile,
   counts fallbacks (N in a row hand off), writes the answers and their ledger rows and
   finishes the inbound rows;
5. the same job delivers the new ledger rows (outbound.deliver_contacts); a contact whose row
   must wait gets a delayed delivery job, and the sweeper catches a job lost in a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from conversations.ai.breaker import BreakerOpen, breaker_state, call_with_breaker
from conversations.ai.llm import LLMError, complete, tenant_display_name
from conversations.ai.selectors import get_enabled_ai_provider
from conversations.metrics import BREAKER_OPEN, LLM_SECONDS, OUTCOMES, PIPELINE_SECONDS
from conversations.models import (
    Contact,
    Conversation,
    DeskSettings,
    FallbackScript,
    InboundMessage,
    Message,
    TraceEvent,
)
from conversations.services.bulk import save_fields
from conversations.services.conversations import (
    contact_key,
    contacts_for,
    current_conversations,
    recent_context,
    recent_contexts,
    record_messages,
)
from conversations.services.handoff import hand_off_to_human
from conversations.services.locks import release_contact_locks, try_contact_locks
from conversations.services.outbound import Outgoing, deliver_contacts, queue_outbound_many
from conversations.services.rate_limits import Deferred, admit_shared_tiers, check_customer
from conversations.services.tracing import add_trace_event, save_trace_events, trace_event
from kb.selectors import search_knowledge, search_knowledge_many
from tenants.concurrency import map_in_tenant
from tenants.dramatiq import enqueue_on_commit
from tickets.models import Ticket

logger = logging.getLogger("conversations.answering")
Author = Message.Author
MEDIA_PLACEHOLDERS = {"image": "[图片]", "voice": "[语音]", "video": "[视频]", "location": "[位置]", "link": "[链接]"}
# One job claims for at most this long, then hands the rest on to a fresh job.
CLAIM_BUDGET_SECONDS = 30.0


@dataclass(frozen=True)
class Decision:
    author: str = ""
    text: str = ""
    handoff_reason: str = ""


@dataclass(eq=False)  # identity: turns are dict keys
class Turn:
    """One customer message being answered in a round, with what the round learns about it."""

    inbound: InboundMessage
    contact: Contact
    conversation: Conversation | None = None
    customer_message: Message | None = None
    decision: Decision | None = None
    outcome: str = ""  # set once the message is settled
    trace: list[TraceEvent] = field(default_factory=list)

    @property
    def text(self) -> str:
        return customer_text(self.inbound)

    def note(self, stage: str, **detail) -> None:
        self.trace.append(trace_event(inbound=self.inbound, stage=stage, **detail))


def customer_text(inbound: InboundMessage) -> str:
    if inbound.msg_type == "text":
        return inbound.content
    return MEDIA_PLACEHOLDERS.get(inbound.msg_type, f"[{inbound.msg_type}]")


def pending_customer_messages():
    return (InboundMessage.objects.filter(status=InboundMessage.Status.PENDING)
            .exclude(msg_type="event").order_by("id"))


class ClaimerSlots:
    """At most ANSWER_CLAIMERS_PER_PROCESS threads of a process answer one tenant at a time.

    Every job of a stored message may claim, but the more threads claim side by side, the
    smaller each one's rounds, and a round's statements cost the same for 1 message as for 50.
    A job that finds the slots taken leaves its message to a claimer: it marks the tenant as
    having new work, and a claimer does not leave while the mark is set (both under one lock,
    so no message is left behind between a claimer's last look and its leaving).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._active: Counter[str] = Counter()
        self._new_work: set[str] = set()

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
        return None
    while True:
        claimer_slots.start_pass(schema)
        try:
            delay = answer_pending()
        except BaseException:
            claimer_slots.leave(schema)
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
    Returns seconds after which to run again (a shared rate-limit tier deferred work, or the
    time budget ran out with work left), or None. `deliver=False` leaves the ledger rows to the
    delivery job.
    """
    desk = DeskSettings.current()
    deadline = time.monotonic() + CLAIM_BUDGET_SECONDS
    while queues := _claim(contact):
        contacts = {contact_id: queue[0].contact for contact_id, queue in queues.items()}
        try:
            while queues:
                turns = [queue.popleft() for queue in queues.values()]
                queues = {contact_id: queue for contact_id, queue in queues.items() if queue}
                answered, deferred = answer_round(turns, desk)
                if deliver:
                    _deliver(answered)
                if deferred:  # no further round: a deferred contact's later messages must wait behind it
                    return deferred.retry_after
        finally:
            release_contact_locks(contacts, "answer")
        if time.monotonic() > deadline:
            return 0.0
    return None


def _claim(contact: Contact | None) -> dict[int, deque[Turn]]:
    """Lock the contacts of the oldest pending messages, up to ANSWER_BATCH_CONTACTS of them:
    {contact id: its pending messages as turns, oldest first}."""
    candidates = pending_customer_messages().defer("payload")  # the pipeline never reads the raw payload
    if contact is not None:
        candidates = candidates.filter(app_id=contact.app_id, sender=contact.external_id,
                                       open_kfid=contact.open_kfid)
    candidates = list(candidates[:settings.ANSWER_BATCH_CONTACTS * 4])
    if not candidates:
        return {}
    by_key = contacts_for(candidates)
    locked, _ = try_contact_locks([by_key[contact_key(inbound)].pk for inbound in candidates], "answer")
    keep = set(locked[:settings.ANSWER_BATCH_CONTACTS])
    # Still pending, now that we hold the locks? Another worker may have answered some meanwhile.
    mine = [inbound for inbound in candidates if by_key[contact_key(inbound)].pk in keep]
    still_pending = set(pending_customer_messages().filter(pk__in=[m.pk for m in mine]).values_list("pk", flat=True))
    queues: dict[int, deque[Turn]] = {}
    for inbound in mine:
        if inbound.pk in still_pending:
            contact = by_key[contact_key(inbound)]
            queues.setdefault(contact.pk, deque()).append(Turn(inbound=inbound, contact=contact))
    release_contact_locks([pk for pk in locked if pk not in queues], "answer")
    return queues


def answer_round(turns: list[Turn], desk: DeskSettings) -> tuple[list[Turn], Deferred | None]:
    """Settle one message of each of these (distinct, locked) contacts: (the turns settled, Deferred or None).

    What the shared rate-limit tiers do not admit is deferred: it stays pending, to be answered
    first when the job runs again.
    """
    admitted = admit_shared_tiers(desk=desk, wanted=len(turns))
    turns, waiting = turns[:admitted.count], turns[admitted.count:]
    deferred = Deferred(admitted.tier, admitted.retry_after) if waiting else None
    for turn in waiting:
        add_trace_event(inbound=turn.inbound, stage="deferred", tier=admitted.tier,
                        retry_in=round(admitted.retry_after, 2))
    if not turns:
        return [], deferred
    verdicts = [check_customer(contact=turn.contact, desk=desk) for turn in turns]
    with transaction.atomic():
        to_decide = _record_and_route(turns, verdicts, desk)
    if to_decide:
        _decide_all(to_decide, desk)
        with transaction.atomic():
            _write_answers(to_decide, desk)
    return turns, deferred


def _record_and_route(turns: list[Turn], verdicts, desk: DeskSettings) -> list[Turn]:
    """Transaction 1: record the customer messages, settle what needs no model; returns the rest."""
    conversations = current_conversations(contacts=[turn.contact for turn in turns], desk=desk)
    recorded = {m.inbound_id: m for m in Message.objects.filter(inbound__in=[t.inbound for t in turns],
                                                                author=Author.CUSTOMER)}
    fresh = [turn for turn in turns if turn.inbound.pk not in recorded]
    for turn, message in zip(fresh, record_messages([(conversations[t.contact.pk], Author.CUSTOMER, t.text, t.inbound)
                                                     for t in fresh]), strict=True):
        recorded[turn.inbound.pk] = message
    to_decide, outgoing = [], []
    for turn, verdict in zip(turns, verdicts, strict=True):
        turn.conversation = conversations[turn.contact.pk]
        turn.customer_message = recorded[turn.inbound.pk]
        if not verdict.allowed:
            outgoing += _rate_limited(turn, desk, notice=verdict.send_notice)
        elif turn.conversation.human_owned:  # the screens watching it got the message from record_messages
            turn.outcome = "routed_to_human"
            from conversations.actors import suggest_reply

            enqueue_on_commit(suggest_reply, turn.inbound.pk)
        elif _asks_for_human(turn.text, desk):
            hand_off_to_human(conversation=turn.conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=desk,
                              inbound=turn.inbound)
            turn.outcome = "handoff"
        else:
            to_decide.append(turn)
    queue_outbound_many(outgoing)
    _finish([turn for turn in turns if turn.outcome])
    return to_decide


def _write_answers(turns: list[Turn], desk: DeskSettings) -> None:
    """Transaction 2: the answers, unless a human took the conversation while the model was thinking."""
    locked = {c.pk: c for c in Conversation.objects.select_for_update()
              .filter(pk__in=[turn.conversation.pk for turn in turns]).order_by("pk")}
    answers = []
    for turn in turns:
        conversation = turn.conversation = locked[turn.conversation.pk]
        decision = turn.decision
        if conversation.human_owned:
            turn.note("suppressed", reason="a human owns the conversation", suggestion=decision.text[:500])
            turn.outcome = "routed_to_human"
            continue
        if decision.author == Author.FALLBACK:
            conversation.consecutive_fallbacks += 1
            if conversation.consecutive_fallbacks >= desk.max_consecutive_fallbacks:
                decision = Decision(handoff_reason=Ticket.Reason.REPEATED_FALLBACKS)
        else:
            conversation.consecutive_fallbacks = 0
        if decision.handoff_reason:
            hand_off_to_human(conversation=conversation, reason=decision.handoff_reason, desk=desk,
                              inbound=turn.inbound)
            turn.outcome = "handoff"
            continue
        turn.outcome = decision.author
        answers.append(turn)
    save_fields(locked.values(), ["consecutive_fallbacks"])
    messages = record_messages([(t.conversation, t.decision.author, t.decision.text, None) for t in answers])
    queue_outbound_many([Outgoing(t.contact, t.conversation, message, t.decision.author, t.decision.text,
                                  f"inbound:{t.inbound.pk}", t.inbound.trace_id)
                         for t, message in zip(answers, messages, strict=True)])
    _finish(turns)


def _deliver(turns: list[Turn]) -> None:
    """Deliver what the round queued, now; contacts whose row must wait get a delayed delivery job."""
    from conversations.actors import deliver_outbound

    waits = deliver_contacts([turn.contact.pk for turn in turns if turn.outcome != "routed_to_human"])
    for contact_id, delay in waits.items():
        deliver_outbound.send_with_options(args=(contact_id,), delay=int(delay * 1000))


def _asks_for_human(text: str, desk: DeskSettings) -> bool:
    lowered = text.lower()
    return any(keyword and keyword.lower() in lowered for keyword in desk.handoff_keywords)


def _rate_limited(turn: Turn, desk: DeskSettings, *, notice: bool) -> list[Outgoing]:
    turn.outcome = "rate_limited"
    turn.note("rate_limited", notice=notice)
    if not notice:
        return []
    message = record_messages([(turn.conversation, Author.NOTICE, desk.rate_limit_notice, None)])[0]
    return [Outgoing(turn.contact, turn.conversation, message, Author.NOTICE, desk.rate_limit_notice,
                     f"inbound:{turn.inbound.pk}", turn.inbound.trace_id)]


def _finish(turns: list[Turn]) -> None:
    """The settled inbound rows: status, their trace events, outcome metrics (one statement each)."""
    if not turns:
        return
    now = timezone.now()
    schema = connection.schema_name
    events, by_status = [], {}
    for turn in turns:
        rate_limited = turn.outcome == "rate_limited"
        turn.inbound.status = InboundMessage.Status.RATE_LIMITED if rate_limited else InboundMessage.Status.PROCESSED
        turn.inbound.processed_at = now
        by_status.setdefault(turn.inbound.status, []).append(turn.inbound.pk)
        if not rate_limited:
            turn.note("processed", outcome=turn.outcome)
        events += turn.trace
        OUTCOMES.labels(tenant=schema, outcome=turn.outcome).inc()
        PIPELINE_SECONDS.labels(tenant=schema).observe((now - turn.inbound.received_at).total_seconds())
    for status, ids in by_status.items():
        InboundMessage.objects.filter(pk__in=ids).update(status=status, processed_at=now)
    save_trace_events(events)
    for turn in turns:
        turn.trace = []


# --- deciding the answers (no transaction held: the model may take seconds) ---------------------

def _decide_all(turns: list[Turn], desk: DeskSettings) -> None:
    """Set turn.decision for each turn: knowledge, the model's answer, a fallback or a handoff."""
    provider = get_enabled_ai_provider()
    fallbacks = FallbackChooser()
    asks = []
    for turn, matches in zip(turns, _retrieve(turns, desk), strict=True):
        if provider is None:
            best = matches[0] if matches else None
            if best is not None and best.score >= desk.knowledge_min_score:
                turn.decision = Decision(author=Author.KNOWLEDGE, text=best.entry.answer)
            else:
                turn.decision = fallbacks.decide(turn, reason="no knowledge entry above the threshold")
        elif turn.inbound.msg_type != "text":
            turn.decision = fallbacks.decide(turn, reason="the model cannot read this message type")
        else:
            asks.append((turn, matches))
    if asks:
        _ask_model(asks, provider, desk, fallbacks)
    fallbacks.count_uses()


def _retrieve(turns: list[Turn], desk: DeskSettings) -> list[list]:
    """The knowledge matches of each turn's text message (one statement for the round)."""
    started = time.monotonic()
    texts = [turn for turn in turns if turn.inbound.msg_type == "text"]
    found = dict(zip(texts, search_knowledge_many([turn.text for turn in texts], limit=desk.knowledge_top_k),
                     strict=True))
    ms = round((time.monotonic() - started) * 1000, 1)  # the round's, shared by its messages
    for turn, matches in found.items():
        turn.note("retrieved", hits=len(matches), top_score=round(matches[0].score, 3) if matches else None,
                  top_entry=matches[0].entry.pk if matches else None, ms=ms)
    return [found.get(turn, []) for turn in turns]


def _ask_model(asks: list[tuple[Turn, list]], provider, desk: DeskSettings, fallbacks: FallbackChooser) -> None:
    """The model calls of a round, side by side, each through the tenant's breaker."""
    contexts = recent_contexts(turns=desk.context_turns, before=[turn.customer_message for turn, _ in asks])
    tenant_name = tenant_display_name()  # here, not on the pool threads (it may query)

    def ask(item: tuple[Turn, list]):
        turn, matches = item
        started = time.monotonic()
        try:
            answer = call_with_breaker(provider, complete, provider, context=contexts[turn.customer_message.pk],
                                       question=turn.text, tenant_name=tenant_name,
                                       knowledge=[(m.entry.question, m.entry.answer, m.score) for m in matches])
        except (BreakerOpen, LLMError) as exc:
            return exc, time.monotonic() - started
        return answer, time.monotonic() - started

    results = map_in_tenant(ask, asks)
    schema = connection.schema_name
    breaker = breaker_state(schema).get("state")  # what the round's calls left behind
    BREAKER_OPEN.labels(tenant=schema).set(1 if breaker == "open" else 0)
    for (turn, _), (answer, seconds) in zip(asks, results, strict=True):
        if isinstance(answer, BreakerOpen):
            outcome, detail = "breaker_open", {}
            turn.decision = fallbacks.decide(turn, reason="circuit breaker open")
        elif isinstance(answer, LLMError):
            outcome, detail = "error", {"error": str(answer)[:200]}
            turn.decision = fallbacks.decide(turn, reason="model call failed")
        elif answer.cannot_answer:
            outcome, detail = "cannot_answer", {"model": answer.model}
            turn.decision = Decision(handoff_reason=Ticket.Reason.AI_CANNOT_ANSWER)
        else:
            outcome, detail = "ok", {"model": answer.model}
            turn.decision = Decision(author=Author.AI, text=answer.text)
        LLM_SECONDS.labels(tenant=schema, outcome=outcome).observe(seconds)
        # The fallback's own trace event comes after the call's: note it first.
        turn.trace.insert(len(turn.trace) - (outcome in ("breaker_open", "error")),
                          trace_event(inbound=turn.inbound, stage="llm_call", outcome=outcome,
                                      ms=round(seconds * 1000, 1), breaker=breaker, **detail))


DEFAULT_FALLBACK_TEXT = "抱歉，我暂时无法回答这个问题，请稍后再试，或回复“人工”联系客服。"


class FallbackChooser:
    """The tenant's fallback scripts, read once per round; uses are counted in one UPDATE per script."""

    def __init__(self):
        self._scripts: list[FallbackScript] | None = None
        self._uses: dict[int, int] = {}

    def choose(self, text: str) -> FallbackScript:
        """The first enabled script whose keyword appears in the message, else the default script."""
        if self._scripts is None:
            self._scripts = list(FallbackScript.objects.filter(enabled=True))
        lowered = text.lower()
        chosen = next((s for s in self._scripts if not s.is_default
                       and any(k and k.lower() in lowered for k in s.keywords)), None) \
            or next((s for s in self._scripts if s.is_default), None)
        if chosen is None:
            return FallbackScript(name="built-in", text=DEFAULT_FALLBACK_TEXT)
        self._uses[chosen.pk] = self._uses.get(chosen.pk, 0) + 1
        return chosen

    def decide(self, turn: Turn, *, reason: str) -> Decision:
        script = self.choose(turn.text)
        turn.note("fallback", reason=reason, script=script.pk)
        return Decision(author=Author.FALLBACK, text=script.text)

    def count_uses(self) -> None:
        for pk, uses in self._uses.items():
            FallbackScript.objects.filter(pk=pk).update(used_count=F("used_count") + uses)
        self._uses.clear()


def draft_suggestion(inbound: InboundMessage) -> str:
    """What the AI would answer, for the agent who owns the conversation (never sent by itself)."""
    text = customer_text(inbound)
    matches = search_knowledge(text, limit=3) if inbound.msg_type == "text" else []
    suggestion = matches[0].entry.answer if matches else ""
    provider = get_enabled_ai_provider()
    message = Message.objects.filter(inbound=inbound, author=Author.CUSTOMER).select_related("conversation").first()
    if provider is not None and message is not None:
        context = recent_context(conversation=message.conversation, turns=DeskSettings.current().context_turns,
                                 before=message)
        try:
            answer = call_with_breaker(provider, complete, provider, context=context, question=text,
                                       knowledge=[(m.entry.question, m.entry.answer, m.score) for m in matches])
            suggestion = answer.text if not answer.cannot_answer else suggestion
        except LLMError:
            pass  # the knowledge entry (or nothing) is the suggestion
    add_trace_event(inbound=inbound, stage="suggestion", suggestion=suggestion[:2000])
    if message is not None:
        from tickets.realtime import conversation_changed

        conversation_changed(message.conversation_id, {"type": "suggestion", "text": suggestion})
    return suggestion
