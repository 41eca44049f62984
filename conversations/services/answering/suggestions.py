"""The agent's suggested reply: what the AI would answer a customer whose conversation a human
owns. Drafted through the same model path as answers (same trace and metrics), never sent."""

from __future__ import annotations

from conversations.ai.selectors import get_enabled_ai_provider
from conversations.models import DeskSettings, InboundMessage, Message
from conversations.realtime import conversation_changed
from conversations.services.answering.model_calls import Question, ask_model
from conversations.services.conversations import customer_text, recent_context
from conversations.services.tracing import add_trace_event
from conversations.vocabulary import ModelOutcome, Stage
from kb.selectors import search_knowledge


def draft_suggestion(inbound: InboundMessage) -> str:
    """The model's answer when it has one, else the best knowledge entry's (or nothing)."""
    text = customer_text(inbound)
    matches = search_knowledge(text, limit=3) if inbound.msg_type == "text" else []
    suggestion = matches[0].entry.answer if matches else ""
    provider = get_enabled_ai_provider()
    message = (Message.objects.filter(inbound=inbound, author=Message.Author.CUSTOMER)
               .select_related("conversation").first())
    if provider is not None and message is not None:
        context = recent_context(conversation=message.conversation, turns=DeskSettings.current().context_turns,
                                 before=message)
        [call] = ask_model([Question(text=text, context=context, knowledge=matches,
                                          trace_id=inbound.trace_id)], provider=provider)
        add_trace_event(inbound=inbound, stage=Stage.LLM_CALL, purpose="suggestion", **call.trace_detail())
        if call.outcome == ModelOutcome.OK:
            suggestion = call.answer.text
    add_trace_event(inbound=inbound, stage=Stage.SUGGESTION, suggestion=suggestion[:2000])
    if message is not None:
        conversation_changed(message.conversation_id, {"type": "suggestion", "text": suggestion})
    return suggestion
