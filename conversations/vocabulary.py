"""The words of the message path: one enum each for trace stages, outcomes, model-call results and
handoff reasons, so that a typo fails loudly instead of forking a stage or a metric label.

They are `TextChoices` (str subclasses): stored in trace rows and used as Prometheus label values
exactly as their value reads.
"""

from django.db import models


class Stage(models.TextChoices):
    """A step in the life of an inbound message, in the order they usually happen (TraceEvent.stage)."""

    # ingress
    RECEIVED = "received", "received"
    PULLED = "pulled", "pulled (微信客服)"
    DUPLICATE = "duplicate", "duplicate (acknowledged, not stored again)"
    ENQUEUED = "enqueued", "enqueued"
    MEDIA_STORED = "media_stored", "media downloaded and stored"
    MEDIA_REFUSED = "media_refused", "media not stored (too large, wrong type, refused by WeCom)"
    # answering
    DEFERRED = "deferred", "deferred by a shared rate limit"
    RATE_LIMITED = "rate_limited", "over the customer's rate limit"
    RETRIEVED = "retrieved", "knowledge retrieved"
    LLM_CALL = "llm_call", "model call"
    FALLBACK = "fallback", "fallback script"
    HANDOFF = "handoff", "handed off to humans"
    SUPPRESSED = "suppressed", "answer dropped: a human owns the conversation"
    SUGGESTION = "suggestion", "reply suggested to the agent"
    PROCESSED = "processed", "processed"
    FAILED = "failed", "failed permanently"
    # delivery (the outbound ledger)
    SEND_ATTEMPT = "send_attempt", "send attempt failed, retrying"
    SENT = "sent", "delivered"
    DEAD = "dead", "dead letter"
    SEND_CANCELLED = "send_cancelled", "send cancelled: a human owns the conversation"
    RESEND = "resend", "dead letter re-sent"
    KF_SESSION = "kf_session", "微信客服 session moved"


class Outcome(models.TextChoices):
    """What became of one customer message (the `processed` trace event and wecomdesk_outcomes_total)."""

    AI = "ai", "answered by the AI"
    KNOWLEDGE = "knowledge", "answered from the knowledge base"
    FALLBACK = "fallback", "fallback script"
    HANDOFF = "handoff", "handed off to humans"
    ROUTED_TO_HUMAN = "routed_to_human", "routed to the human who owns the conversation"
    RATE_LIMITED = "rate_limited", "over the customer's rate limit"


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
