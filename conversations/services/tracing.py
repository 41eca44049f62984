"""The trace of an inbound message: stored stages plus one structured log line per stage."""

from __future__ import annotations

import uuid

import structlog
from django.db import connection

from conversations.metrics import CALLBACK_REJECTIONS, INBOUND_STAGES
from conversations.models import InboundMessage, TraceEvent

logger = structlog.get_logger("conversations.trace")


def add_trace_event(*, inbound: InboundMessage | None, stage: str, trace_id: uuid.UUID | None = None,
                    **detail) -> TraceEvent:
    trace_id = trace_id or inbound.trace_id
    INBOUND_STAGES.labels(tenant=connection.schema_name, stage=stage).inc()
    logger.info(f"trace.{stage}", tenant=connection.schema_name, trace_id=str(trace_id), **detail)
    return TraceEvent.objects.create(trace_id=trace_id, inbound=inbound, stage=stage, detail=detail)


def log_rejection(*, reason: str, **detail) -> None:
    """Rejected callbacks store nothing (invariant 8 + no rows for unauthenticated input); log only."""
    # The reason text is one of a small fixed set (ours or WeComCryptoError's), so it is a bounded label.
    CALLBACK_REJECTIONS.labels(tenant=connection.schema_name, reason=reason.split(":")[0][:40]).inc()
    logger.warning("trace.rejected", tenant=connection.schema_name, trace_id=str(uuid.uuid4()),
                   reason=reason, **detail)
