"""The trace of an inbound message: stored stages plus one structured log line per stage.

Every stage of a message's life carries its trace id and its inbound row, the delivery of its
replies included (`delivery_event`, through the ledger row's `inbound`), so the trace read by
conversations.selectors.message_trace runs from the callback to delivered or dead. A send no
customer message caused (an agent's reply) gets a trace id of its own (`own_trace_id`): its
delivery events are kept under it, without an inbound row.
"""

from __future__ import annotations

import json
import uuid

import structlog
from django.db import connection

from conversations.metrics import CALLBACK_REJECTIONS, INBOUND_STAGES
from conversations.models import InboundMessage, OutboundMessage, TraceEvent
from conversations.vocabulary import Stage

logger = structlog.get_logger("conversations.trace")


def trace_event(*, inbound: InboundMessage | None, stage: Stage, trace_id: uuid.UUID | None = None,
                **detail) -> TraceEvent:
    """Count and log a stage now; the returned row is not saved yet (see save_trace_events).

    Its `created_at` is now, when the stage happens, even if the row is saved later with its round."""
    return _event(trace_id=trace_id or inbound.trace_id, stage=stage, detail=detail,
                  inbound_id=inbound.pk if inbound else None)


def delivery_event(row: OutboundMessage, *, stage: Stage, **detail) -> TraceEvent | None:
    """A delivery stage of a ledger row (unsaved), in the trace of the message it answers; None for a
    row without a trace (written before every row had one)."""
    if not row.trace_id:
        return None
    return _event(trace_id=row.trace_id, stage=stage, detail={"outbound": row.pk, "part": row.part, **detail},
                  inbound_id=row.inbound_id)


def _event(*, trace_id: uuid.UUID, stage: Stage, detail: dict, inbound_id: int | None) -> TraceEvent:
    stage = Stage(stage)  # a stage that is not in the vocabulary fails here, not in a dashboard
    INBOUND_STAGES.labels(tenant=connection.schema_name, stage=stage.value).inc()
    logger.info(f"trace.{stage.value}", tenant=connection.schema_name, trace_id=str(trace_id), **detail)
    return TraceEvent(trace_id=trace_id, inbound_id=inbound_id, stage=stage, detail=detail)


def own_trace_id() -> uuid.UUID:
    """The trace id of a send that answers no customer message (an agent's reply, a picture)."""
    return uuid.uuid4()


# One row per element of a JSON array, ids in the events' order (the trace's timeline reads by id). One JSON
# document, not five arrays: psycopg binds parameters client-side, and quoting the arrays' elements one by one
# (a jsonb each) was the largest share of that binding, 3-4% of the web's and the worker's CPU (py-spy).
_INSERT_EVENTS = ("INSERT INTO {table} (trace_id, inbound_id, stage, detail, created_at) "
                  "SELECT (e.doc->>'trace_id')::uuid, (e.doc->>'inbound_id')::bigint, e.doc->>'stage', "
                  "e.doc->'detail', (e.doc->>'created_at')::timestamptz "
                  "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(doc, n) ORDER BY n")


def save_trace_events(events: list[TraceEvent | None]) -> None:
    """One INSERT for the stages a round collected (inside the transaction that records its outcome). Raw:
    bulk_create took about a tenth of a callback's web CPU, mostly building its statement. The events get no
    primary key (nothing reads one)."""
    rows = [event for event in events if event is not None]
    events.clear()
    if not rows:
        return
    document = json.dumps([{"trace_id": str(event.trace_id), "inbound_id": event.inbound_id, "stage": event.stage,
                            "detail": event.detail, "created_at": event.created_at.isoformat()} for event in rows])
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_EVENTS.format(table=TraceEvent._meta.db_table), [document])


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
