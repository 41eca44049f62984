"""The trace of an inbound message: stored stages plus one structured log line per stage."""

from __future__ import annotations

import uuid

import structlog
from django.db import connection

from conversations.metrics import CALLBACK_REJECTIONS, INBOUND_STAGES
from conversations.models import InboundMessage, TraceEvent
from conversations.vocabulary import Stage

logger = structlog.get_logger("conversations.trace")


def trace_event(*, inbound: InboundMessage | None, stage: Stage, trace_id: uuid.UUID | None = None,
                **detail) -> TraceEvent:
    """Count and log a stage now; the returned row is not saved yet (see save_trace_events)."""
    trace_id = trace_id or inbound.trace_id
    stage = Stage(stage)  # a stage that is not in the vocabulary fails here, not in a dashboard
    INBOUND_STAGES.labels(tenant=connection.schema_name, stage=stage.value).inc()
    logger.info(f"trace.{stage.value}", tenant=connection.schema_name, trace_id=str(trace_id), **detail)
    return TraceEvent(trace_id=trace_id, inbound=inbound, stage=stage, detail=detail)


def save_trace_events(events: list[TraceEvent]) -> None:
    """One INSERT for the stages a round collected (inside the transaction that records its outcome)."""
    TraceEvent.objects.bulk_create(events)
    events.clear()


def add_trace_event(*, inbound: InboundMessage | None, stage: Stage, trace_id: uuid.UUID | None = None,
                    **detail) -> TraceEvent:
    event = trace_event(inbound=inbound, stage=stage, trace_id=trace_id, **detail)
    event.save()
    return event


def log_rejection(*, reason: str, **detail) -> None:
    """Rejected callbacks store nothing (invariant 8 + no rows for unauthenticated input); log only."""
    # The reason text is one of a small fixed set (ours or WeComCryptoError's), so it is a bounded label.
    CALLBACK_REJECTIONS.labels(tenant=connection.schema_name, reason=reason.split(":")[0][:40]).inc()
    logger.warning("trace.rejected", tenant=connection.schema_name, trace_id=str(uuid.uuid4()),
                   reason=reason, **detail)
