"""The answer pipeline (DESIGN.md step 4): one customer message in, exactly one visible outcome out.

Messages of one contact are answered one at a time in arrival order (a per-contact
advisory lock, and the loop always takes the oldest pending message); different
contacts run in parallel. The slow part (knowledge retrieval and the model call)
runs outside any transaction; the outcome is written in one transaction that
re-checks that no human took the conversation meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from conversations.ai.breaker import BreakerOpen, breaker_state, call_with_breaker
from conversations.ai.llm import LLMError, complete
from conversations.ai.selectors import get_enabled_ai_provider
from conversations.metrics import BREAKER_OPEN, LLM_SECONDS, OUTCOMES, PIPELINE_SECONDS
from conversations.models import Contact, Conversation, DeskSettings, FallbackScript, InboundMessage, Message
from conversations.services.conversations import current_conversation, recent_context, record_message
from conversations.services.handoff import hand_off_to_human
from conversations.services.locks import contact_lock
from conversations.services.outbound import queue_outbound
from conversations.services.rate_limits import Deferred, check_customer, check_shared_tiers
from conversations.services.tracing import add_trace_event
from kb.selectors import search_knowledge
from tenants.dramatiq import enqueue_on_commit
from tickets.models import Ticket

logger = logging.getLogger("conversations.answering")
Author = Message.Author
MEDIA_PLACEHOLDERS = {"image": "[图片]", "voice": "[语音]", "video": "[视频]", "location": "[位置]", "link": "[链接]"}


@dataclass(frozen=True)
class Decision:
    author: str = ""
    text: str = ""
    handoff_reason: str = ""


def pending_customer_messages(contact: Contact):
    return (InboundMessage.objects.filter(app_id=contact.app_id, sender=contact.external_id,
                                          open_kfid=contact.open_kfid, status=InboundMessage.Status.PENDING)
            .exclude(msg_type="event").order_by("id"))


def answer_contact(contact: Contact) -> float | None:
    """Answer every pending message of the contact in order. Returns a delay to run again, or None."""
    with contact_lock(contact.pk, "answer") as acquired:
        if not acquired:
            return 0.25  # another worker is answering this contact; it may miss our message, so look again
        desk = DeskSettings.current()
        while (inbound := pending_customer_messages(contact).first()) is not None:
            try:
                answer_message(inbound=inbound, contact=contact, desk=desk)
            except Deferred as deferred:
                add_trace_event(inbound=inbound, stage="deferred", tier=deferred.tier,
                                retry_in=round(deferred.retry_after, 2))
                return deferred.retry_after
        return None


def customer_text(inbound: InboundMessage) -> str:
    if inbound.msg_type == "text":
        return inbound.content
    return MEDIA_PLACEHOLDERS.get(inbound.msg_type, f"[{inbound.msg_type}]")


def answer_message(*, inbound: InboundMessage, contact: Contact, desk: DeskSettings) -> None:
    check_shared_tiers(desk=desk)
    verdict = check_customer(contact=contact, desk=desk)
    text = customer_text(inbound)

    with transaction.atomic():
        conversation = current_conversation(contact=contact, desk=desk)
        customer_message = _record_customer_message(conversation, inbound, text)
        if not verdict.allowed:
            _rate_limited(inbound, conversation, desk, notice=verdict.send_notice)
            return
        if conversation.human_owned:  # the screens watching it got the message from record_message
            _finish(inbound, "routed_to_human")
            from conversations.actors import suggest_reply

            enqueue_on_commit(suggest_reply, inbound.pk)
            return
        if _asks_for_human(text, desk):
            hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=desk,
                              inbound=inbound)
            _finish(inbound, "handoff")
            return

    decision = decide(inbound=inbound, conversation=conversation, customer_message=customer_message,
                      text=text, desk=desk)

    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.human_owned:  # a human took over while the model was thinking
            add_trace_event(inbound=inbound, stage="suppressed", reason="a human owns the conversation",
                            suggestion=decision.text[:500])
            _finish(inbound, "routed_to_human")
            return
        if decision.author == Author.FALLBACK:
            conversation.consecutive_fallbacks += 1
            if conversation.consecutive_fallbacks >= desk.max_consecutive_fallbacks:
                decision = Decision(handoff_reason=Ticket.Reason.REPEATED_FALLBACKS)
        else:
            conversation.consecutive_fallbacks = 0
        conversation.save(update_fields=["consecutive_fallbacks"])
        if decision.handoff_reason:
            hand_off_to_human(conversation=conversation, reason=decision.handoff_reason, desk=desk, inbound=inbound)
            _finish(inbound, "handoff")
            return
        message = record_message(conversation=conversation, author=decision.author, text=decision.text)
        queue_outbound(contact=contact, conversation=conversation, message=message, author=decision.author,
                       text=decision.text, cause=f"inbound:{inbound.pk}", trace_id=inbound.trace_id)
        _finish(inbound, decision.author)


def _record_customer_message(conversation: Conversation, inbound: InboundMessage, text: str) -> Message:
    existing = Message.objects.filter(inbound=inbound, author=Author.CUSTOMER).first()
    return existing or record_message(conversation=conversation, author=Author.CUSTOMER, text=text, inbound=inbound)


def _asks_for_human(text: str, desk: DeskSettings) -> bool:
    lowered = text.lower()
    return any(keyword and keyword.lower() in lowered for keyword in desk.handoff_keywords)


def _rate_limited(inbound: InboundMessage, conversation: Conversation, desk: DeskSettings, *, notice: bool):
    inbound.status = InboundMessage.Status.RATE_LIMITED
    inbound.processed_at = timezone.now()
    inbound.save(update_fields=["status", "processed_at"])
    add_trace_event(inbound=inbound, stage="rate_limited", notice=notice)
    OUTCOMES.labels(tenant=connection.schema_name, outcome="rate_limited").inc()
    if notice:
        message = record_message(conversation=conversation, author=Author.NOTICE, text=desk.rate_limit_notice)
        queue_outbound(contact=conversation.contact, conversation=conversation, message=message,
                       author=Author.NOTICE, text=desk.rate_limit_notice, cause=f"inbound:{inbound.pk}",
                       trace_id=inbound.trace_id)


def _finish(inbound: InboundMessage, outcome: str) -> None:
    inbound.status = InboundMessage.Status.PROCESSED
    inbound.processed_at = timezone.now()
    inbound.save(update_fields=["status", "processed_at"])
    add_trace_event(inbound=inbound, stage="processed", outcome=outcome)
    OUTCOMES.labels(tenant=connection.schema_name, outcome=outcome).inc()
    PIPELINE_SECONDS.labels(tenant=connection.schema_name).observe(
        (inbound.processed_at - inbound.received_at).total_seconds())


# --- deciding the answer (no transaction held: the model may take seconds) ---------------------

def decide(*, inbound: InboundMessage, conversation: Conversation, customer_message: Message, text: str,
           desk: DeskSettings) -> Decision:
    matches = _retrieve(inbound, text, desk) if inbound.msg_type == "text" else []
    provider = get_enabled_ai_provider()
    if provider is None:
        best = matches[0] if matches else None
        if best is not None and best.score >= desk.knowledge_min_score:
            return Decision(author=Author.KNOWLEDGE, text=best.entry.answer)
        return _fallback(inbound, text, reason="no knowledge entry above the threshold")
    if inbound.msg_type != "text":
        return _fallback(inbound, text, reason="the model cannot read this message type")
    return _ask_model(inbound, conversation, customer_message, text, matches, provider, desk)


def _retrieve(inbound: InboundMessage, text: str, desk: DeskSettings) -> list:
    started = time.monotonic()
    matches = search_knowledge(text, limit=desk.knowledge_top_k)
    add_trace_event(inbound=inbound, stage="retrieved", hits=len(matches),
                    top_score=round(matches[0].score, 3) if matches else None,
                    top_entry=matches[0].entry.pk if matches else None,
                    ms=round((time.monotonic() - started) * 1000, 1))
    return matches


def _ask_model(inbound, conversation, customer_message, text, matches, provider, desk) -> Decision:
    context = recent_context(conversation=conversation, turns=desk.context_turns, before=customer_message)
    knowledge = [(m.entry.question, m.entry.answer, m.score) for m in matches]
    started = time.monotonic()
    try:
        answer = call_with_breaker(provider, complete, provider, context=context, question=text,
                                   knowledge=knowledge)
    except BreakerOpen:
        _record_llm_call(inbound, "breaker_open", started)
        return _fallback(inbound, text, reason="circuit breaker open")
    except LLMError as exc:
        _record_llm_call(inbound, "error", started, error=str(exc)[:200])
        return _fallback(inbound, text, reason="model call failed")
    _record_llm_call(inbound, "cannot_answer" if answer.cannot_answer else "ok", started, model=answer.model)
    if answer.cannot_answer:
        return Decision(handoff_reason=Ticket.Reason.AI_CANNOT_ANSWER)
    return Decision(author=Author.AI, text=answer.text)


def _record_llm_call(inbound: InboundMessage, outcome: str, started: float, **detail) -> None:
    """Trace event + metrics of one model call, with the breaker state it left behind."""
    schema = connection.schema_name
    seconds = time.monotonic() - started
    breaker = breaker_state(schema).get("state")
    LLM_SECONDS.labels(tenant=schema, outcome=outcome).observe(seconds)
    BREAKER_OPEN.labels(tenant=schema).set(1 if breaker == "open" else 0)
    add_trace_event(inbound=inbound, stage="llm_call", outcome=outcome, ms=round(seconds * 1000, 1),
                    breaker=breaker, **detail)


def _fallback(inbound: InboundMessage, text: str, *, reason: str) -> Decision:
    script = choose_fallback_script(text)
    add_trace_event(inbound=inbound, stage="fallback", reason=reason, script=script.pk if script.pk else None)
    return Decision(author=Author.FALLBACK, text=script.text)


DEFAULT_FALLBACK_TEXT = "抱歉，我暂时无法回答这个问题，请稍后再试，或回复“人工”联系客服。"


def choose_fallback_script(text: str) -> FallbackScript:
    """The first enabled script whose keyword appears in the message, else the default script."""
    lowered = text.lower()
    scripts = list(FallbackScript.objects.filter(enabled=True))
    chosen = next((s for s in scripts if not s.is_default and any(k and k.lower() in lowered for k in s.keywords)),
                  None) or next((s for s in scripts if s.is_default), None)
    if chosen is None:
        return FallbackScript(name="built-in", text=DEFAULT_FALLBACK_TEXT)
    FallbackScript.objects.filter(pk=chosen.pk).update(used_count=F("used_count") + 1)
    return chosen


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
