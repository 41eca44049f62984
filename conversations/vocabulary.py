"""The words of the message path: one enum each for trace stages, outcomes, model-call results and
handoff reasons, so that a typo fails loudly instead of forking a stage or a metric label.

They are `TextChoices` (str subclasses): stored in trace rows and used as Prometheus label values
exactly as their value reads. Stage labels are translated: the admin's trace timeline shows them.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Stage(models.TextChoices):
    """A step in the life of an inbound message, in the order they usually happen (TraceEvent.stage)."""

    # ingress
    RECEIVED = "received", _("received")
    PULLED = "pulled", _("pulled (微信客服)")
    DUPLICATE = "duplicate", _("duplicate (acknowledged, not stored again)")
    ENQUEUED = "enqueued", _("enqueued")
    MEDIA_STORED = "media_stored", _("media downloaded and stored")
    MEDIA_REFUSED = "media_refused", _("media not stored (too large, wrong type, refused by WeCom)")
    # answering
    DEFERRED = "deferred", _("deferred by a shared rate limit")
    RATE_LIMITED = "rate_limited", _("over the customer's rate limit")
    REWRITTEN = "rewritten", _("follow-up rewritten into a standalone question")
    SENSITIVE = "sensitive", _("sensitive words found")
    RETRIEVED = "retrieved", _("knowledge retrieved")
    LLM_CALL = "llm_call", _("model call")
    FALLBACK = "fallback", _("fallback script")
    HANDOFF = "handoff", _("handed off to humans")
    RATED = "rated", _("the customer rated an answer")
    SURVEYED = "surveyed", _("the customer answered a satisfaction survey")
    SUPPRESSED = "suppressed", _("answer dropped: a human owns the conversation")
    SUGGESTION = "suggestion", _("reply suggested to the agent")
    PROCESSED = "processed", _("processed")
    FAILED = "failed", _("failed permanently")
    # delivery (the outbound ledger)
    # Never stored: the creation of a ledger row (OutboundMessage.created_at), read into a message's
    # trace by conversations.selectors.message_trace, so the trace shows when each reply was queued.
    QUEUED = "queued", _("reply queued for delivery")
    SEND_ATTEMPT = "send_attempt", _("send attempt failed, retrying")
    SENT = "sent", _("delivered")
    DEAD = "dead", _("dead letter")
    SEND_CANCELLED = "send_cancelled", _("send cancelled: a human owns the conversation")
    RESEND = "resend", _("dead letter re-sent")
    KF_SESSION = "kf_session", _("微信客服 session moved")


class Outcome(models.TextChoices):
    """What became of one customer message (the `processed` trace event and wecomdesk_outcomes_total)."""

    AI = "ai", "answered by the AI"
    KNOWLEDGE = "knowledge", "answered from the knowledge base"
    FALLBACK = "fallback", "fallback script"
    HANDOFF = "handoff", "handed off to humans"
    ROUTED_TO_HUMAN = "routed_to_human", "routed to the human who owns the conversation"
    RATE_LIMITED = "rate_limited", "over the customer's rate limit"
    RATING = "rating", "a rating of an earlier answer (👍/👎 or a keyword), not a question"
    SURVEY = "survey", "an answer to a satisfaction survey after a closed conversation"


class ModelOutcome(models.TextChoices):
    """How one model call ended (the `llm_call` trace event and wecomdesk_llm_seconds)."""

    OK = "ok", "answered"
    CANNOT_ANSWER = "cannot_answer", "the model asked for a human"
    ERROR = "error", "failed"
    BREAKER_OPEN = "breaker_open", "not called: circuit breaker open"


class HandoffReason(models.TextChoices):
    """Why the pipeline hands a conversation to humans (the human side stores it on the ticket)."""

    CUSTOMER_ASKED = "customer_asked", "customer asked for a human"
    AI_CANNOT_ANSWER = "ai_cannot_answer", "the AI could not answer"
    REPEATED_FALLBACKS = "repeated_fallbacks", "too many fallback answers in a row"
    NON_TEXT = "non_text", "a picture, voice message, video or file (tenant policy)"
