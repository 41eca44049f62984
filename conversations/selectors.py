"""Reads of the message path shared with the screens: a transcript line with its delivery state and
its picture, voice, video or file; the figures of the operations page (tickets/operations); and the
trace of a message, callback to delivery (the admin's timeline and the API's)."""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from django.db.models import (
    Aggregate,
    Case,
    CharField,
    Count,
    F,
    FloatField,
    Func,
    Min,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, Trunc

from conversations.models import InboundMessage, Message, OutboundMessage, TraceEvent
from conversations.vocabulary import Outcome, Stage

Status = OutboundMessage.Status
# A message sent in several parts shows the least advanced part's state.
_LEAST_ADVANCED_FIRST = (Status.DEAD, Status.CANCELLED, Status.RETRYING, Status.SENDING, Status.PENDING)


def message_deliveries(message_ids: Iterable[int]) -> dict[int, list[str]]:
    """{message id: the statuses of its ledger rows, by part} for many messages in one query."""
    deliveries: dict[int, list[str]] = {}
    for message_id, status in (OutboundMessage.objects.filter(message_id__in=list(message_ids)).order_by("part")
                               .values_list("message_id", "status")):
        deliveries.setdefault(message_id, []).append(status)
    return deliveries


def serialize_message(message: Message, deliveries: dict[int, list[str]] | None = None,
                      media: dict[int, dict] | None = None) -> dict:
    """A transcript line as the screens show it. `deliveries` (`media`) given, even empty: the caller
    already loaded every part (message_deliveries, message_media); otherwise this message's are read."""
    if deliveries is None:
        deliveries = message_deliveries([message.pk])
    if media is None:
        media = message_media([message])
    statuses = deliveries.get(message.pk, [])
    return {"id": message.pk, "author": message.author, "author_label": message.get_author_display(),
            "text": message.text, "created_at": message.created_at.isoformat(),
            "delivery": delivery_summary(statuses), "media": media.get(message.pk),
            "sensitive_words": message.sensitive_words}


MEDIA_KINDS = frozenset({"image", "voice", "video", "file"})


def message_media(messages: Iterable[Message]) -> dict[int, dict]:
    """{message id: its picture, voice, video or file} for the messages that have one: a customer's
    (downloaded from WeCom: `stored`, `pending` or `refused` with the reason) or an agent's attachment.
    Two queries at most, for any number of messages."""
    messages = list(messages)
    found: dict[int, dict] = {}
    inbound_ids = {m.inbound_id: m.pk for m in messages if m.inbound_id}
    for row in (InboundMessage.objects.filter(pk__in=list(inbound_ids), msg_type__in=MEDIA_KINDS)
                .only("msg_type", "media", "media_content_type", "media_size", "media_error")):
        status = "stored" if row.media else "refused" if row.media_error else "pending"
        found[inbound_ids[row.pk]] = {"kind": row.msg_type, "status": status, "content_type": row.media_content_type,
                                      "size": row.media_size, "error": row.media_error, "name": ""}
    others = [m.pk for m in messages if not m.inbound_id]
    for row in (OutboundMessage.objects.filter(message_id__in=others, msgtype__in=MEDIA_KINDS).exclude(media="")
                .only("message_id", "msgtype", "media", "content")):
        found[row.message_id] = {"kind": row.msgtype, "status": "stored", "content_type": "", "size": None,
                                 "error": "", "name": row.content}
    return found


def media_file(message: Message):
    """The stored file of a transcript line (FieldFile) and its content type, or (None, "")."""
    if message.inbound_id:
        inbound = InboundMessage.objects.filter(pk=message.inbound_id, msg_type__in=MEDIA_KINDS).exclude(media="") \
            .only("media", "media_content_type").first()
        return (inbound.media, inbound.media_content_type) if inbound else (None, "")
    part = OutboundMessage.objects.filter(message=message, msgtype__in=MEDIA_KINDS).exclude(media="") \
        .only("media").first()
    return (part.media, mimetypes.guess_type(part.media.name)[0] or "") if part else (None, "")


def delivery_summary(statuses: list[str]) -> str | None:
    """One word for a message's parts: the least advanced part wins; None when nothing is sent."""
    if not statuses:
        return None
    return next((status.value for status in _LEAST_ADVANCED_FIRST if status in statuses), Status.SENT.value)


# -- operations figures (tickets/operations) ----------------------------------------------------------
# A customer's message: not an event, and on 微信客服 written by the customer (origin 3), not a system
# event (4) or a servicer in the WeCom client (5).
CUSTOMER_MESSAGE = ~Q(msg_type="event") & (Q(origin__isnull=True) | Q(origin=3))
# The outcome column of a customer message with none (still waiting, failed, or of a type not answered).
NO_OUTCOME = "none"


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont: the `fraction` quantile, interpolated (NULL over no rows)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _customer_messages(since: datetime, until: datetime, kind: str, tz: tzinfo):
    return (InboundMessage.objects.filter(CUSTOMER_MESSAGE, received_at__gte=since, received_at__lt=until)
            .annotate(bucket=Trunc("received_at", kind, tzinfo=tz)).order_by())


def customer_messages_by_outcome(*, since: datetime, until: datetime, kind: str,
                                 tz: tzinfo) -> dict[tuple[datetime, str], int]:
    """{(bucket start, outcome): customer messages received in [since, until)}, bucketed by `kind` ("hour",
    "day") of their arrival in `tz`. The outcome is the one their `processed` trace event recorded,
    `rate_limited` for rows refused by the customer's limit (they have no such event), NO_OUTCOME else."""
    recorded = (TraceEvent.objects.filter(inbound=OuterRef("pk"), stage=Stage.PROCESSED).order_by("id")
                .annotate(outcome=KT("detail__outcome")).values("outcome")[:1])
    outcome = Coalesce(Subquery(recorded, output_field=CharField()),
                       Case(When(status=InboundMessage.Status.RATE_LIMITED, then=Value(Outcome.RATE_LIMITED.value)),
                            default=Value(NO_OUTCOME)))
    rows = (_customer_messages(since, until, kind, tz).annotate(outcome=outcome).values("bucket", "outcome")
            .annotate(n=Count("id")))
    return {(row["bucket"], row["outcome"]): row["n"] for row in rows}


def pipeline_p95_seconds(*, since: datetime, until: datetime, kind: str, tz: tzinfo) -> dict[datetime, float]:
    """{bucket start: p95 of stored -> processed, in seconds} of the customer messages received in
    [since, until) that were settled (answered, fallback, handed off, routed or rate-limited): the same span as
    wecomdesk_pipeline_seconds (received_at to processed_at, both set by the database rows)."""
    seconds = Func(F("processed_at") - F("received_at"), template="EXTRACT(EPOCH FROM %(expressions)s)",
                   output_field=FloatField())
    rows = (_customer_messages(since, until, kind, tz)
            .filter(processed_at__isnull=False,
                    status__in=[InboundMessage.Status.PROCESSED, InboundMessage.Status.RATE_LIMITED])
            .values("bucket").annotate(p95=Percentile(seconds, fraction=0.95)))
    return {row["bucket"]: row["p95"] for row in rows}


def inbound_waiting() -> tuple[int, datetime | None]:
    """(inbound rows stored and not yet processed, when the oldest of them arrived)."""
    found = InboundMessage.objects.filter(status=InboundMessage.Status.PENDING).aggregate(
        n=Count("id"), oldest=Min("received_at"))
    return found["n"], found["oldest"]


def outbound_rows_by_state() -> dict[str, tuple[int, datetime | None]]:
    """{status: (ledger rows, when the oldest was queued)} for rows not delivered: pending, sending,
    retrying and dead (a dead row re-sent is pending again, so `dead` counts the letters still waiting)."""
    rows = (OutboundMessage.objects.filter(status__in=[Status.PENDING, Status.SENDING, Status.RETRYING, Status.DEAD])
            .order_by().values("status").annotate(n=Count("id"), oldest=Min("created_at")))
    return {row["status"]: (row["n"], row["oldest"]) for row in rows}


# -- the trace of a message: from its callback to the delivery of its replies ---------------------------


@dataclass(frozen=True, kw_only=True)
class TraceStep:
    """One stage of a message's trace, with the time since the stage before it and since it arrived."""

    stage: Stage
    at: datetime
    since_previous: timedelta | None  # None for the first stage
    since_received: timedelta
    detail: dict
    outbound_id: int | None  # the ledger row of a delivery stage

    @property
    def label(self) -> str:
        return str(Stage(self.stage).label)

    @property
    def since_previous_ms(self) -> int | None:
        return None if self.since_previous is None else _ms(self.since_previous)

    @property
    def since_received_ms(self) -> int:
        return _ms(self.since_received)


@dataclass(frozen=True, kw_only=True)
class MessageTrace:
    """What happened to one message, in order. `inbound` is None for the trace of a send no customer
    message caused (an agent's reply), which starts when its ledger row was created."""

    inbound: InboundMessage | None
    trace_id: uuid.UUID | None
    received_at: datetime
    steps: list[TraceStep]
    deliveries: list[OutboundMessage]  # the ledger rows of its replies, in order
    # (An OpenTelemetry trace id, once stored, would be read into this trace here.)

    @property
    def total(self) -> timedelta:
        return self.steps[-1].since_received if self.steps else timedelta(0)


def _ms(span: timedelta) -> int:
    return round(span.total_seconds() * 1000)


def find_inbound(reference: str | int) -> InboundMessage | None:
    """An inbound message of this tenant by its id or its trace id; None when there is none (the schema
    is the tenant: another tenant's message is as unknown as a missing one)."""
    text = str(reference).strip()
    if text.isdigit():
        return InboundMessage.objects.filter(pk=int(text)).first() if int(text) < 2**63 else None
    try:
        trace_id = uuid.UUID(text)
    except ValueError:
        return None
    return InboundMessage.objects.filter(trace_id=trace_id).first()


def message_trace(inbound: InboundMessage) -> MessageTrace:
    """The whole trace of a customer message (two queries): its stored stages, received to delivered
    or dead and re-sent, and a `queued` stage read from the creation of each of its ledger rows."""
    return _trace(trace_id=inbound.trace_id, start=inbound.received_at, inbound=inbound,
                  deliveries=list(OutboundMessage.objects.filter(trace_id=inbound.trace_id).order_by("id")))


def outbound_trace(row: OutboundMessage) -> MessageTrace:
    """The trace a ledger row belongs to: its inbound message's, or its own (an agent's reply)."""
    if row.inbound_id:
        return message_trace(row.inbound)
    deliveries = list(OutboundMessage.objects.filter(trace_id=row.trace_id).order_by("id")) if row.trace_id else [row]
    return _trace(trace_id=row.trace_id, start=min(d.created_at for d in deliveries), inbound=None,
                  deliveries=deliveries)


def _trace(*, trace_id: uuid.UUID | None, start: datetime, inbound: InboundMessage | None,
           deliveries: list[OutboundMessage]) -> MessageTrace:
    # (moment, order among equal moments, stage, detail, outbound id): stored events in insertion
    # order, a row's `queued` before the stored events of the same moment (it is written first).
    moments = [(row.created_at, 0, row.pk, Stage.QUEUED,
                {"outbound": row.pk, "part": row.part, "parts_total": row.parts_total, "author": row.author},
                row.pk) for row in deliveries]
    if trace_id is not None:
        moments += [(event.created_at, 1, event.pk, event.stage, event.detail, event.detail.get("outbound"))
                    for event in TraceEvent.objects.filter(trace_id=trace_id).order_by("id")]
    moments.sort(key=lambda moment: moment[:3])
    steps, previous = [], None
    for at, _, _, stage, detail, outbound_id in moments:
        steps.append(TraceStep(stage=Stage(stage), at=at, since_previous=None if previous is None else at - previous,
                               since_received=at - start, detail=detail,
                               outbound_id=outbound_id if isinstance(outbound_id, int) else None))
        previous = at
    return MessageTrace(inbound=inbound, trace_id=trace_id, received_at=start, steps=steps, deliveries=deliveries)
