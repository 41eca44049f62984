"""The operations page's figures, computed from the current tenant schema's rows (and the breaker and
presence in Redis) with a few aggregate queries; definitions in docs/OBSERVABILITY.md, "Operations page".

1. `take_snapshot`: the state now (backlog, outbound ledger, breaker, dead letters, tickets, agents).
2. `traffic`: customer messages by outcome and the pipeline's p95 per hour (last 24 h) and per day
   (last 7 local days, today last), so today's figures are the last daily bucket.
3. `health`: green / amber / red per item with its reason, from a snapshot (the admin index shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Count, F, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from conversations.ai.breaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, breaker_state
from conversations.ai.selectors import get_enabled_ai_provider
from conversations.models import OutboundMessage
from conversations.selectors import (
    NO_OUTCOME,
    customer_messages_by_outcome,
    inbound_waiting,
    outbound_rows_by_state,
    pipeline_p95_seconds,
)
from conversations.vocabulary import Outcome
from tickets import presence
from tickets.models import AgentProfile, Ticket
from tickets.selectors import ACTIVE_TICKET

# The outcome columns in the order the page shows them; NO_OUTCOME last (waiting, failed, unsupported).
OUTCOMES = [outcome.value for outcome in Outcome] + [NO_OUTCOME]
HOURS, DAYS = 24, 7
# Health thresholds. The sweeper re-enqueues an inbound row after INBOUND_SWEEP_AFTER_SECONDS (60 s):
# a row older than that lost its job once already; five minutes means the workers are not keeping up.
BACKLOG_AMBER_SECONDS, BACKLOG_RED_SECONDS = 60, 300
OK, WARN, BAD = "ok", "warn", "bad"


@dataclass(frozen=True)
class Snapshot:
    """The state of the tenant now. Ages in seconds (None: nothing waiting)."""

    taken_at: datetime
    inbound_waiting: int
    inbound_oldest_seconds: float | None
    outbound_pending: int  # pending or being sent
    outbound_retrying: int
    outbound_oldest_seconds: float | None  # of the pending, sending and retrying rows
    dead_letters: int
    ai_enabled: bool
    breaker: str  # closed, open, half-open, unknown (Redis unreachable)
    breaker_opened_at: datetime | None
    tickets_waiting: int  # open, nobody has taken them
    tickets_waiting_oldest_seconds: float | None
    sla_breaches: int
    agents_online: int | None  # None: Redis cannot be reached


@dataclass(frozen=True)
class Bucket:
    """Customer messages that arrived in [start, start + one hour or day), by outcome."""

    start: datetime  # local time
    counts: dict[str, int]
    p95_seconds: float | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def settled(self) -> int:
        return self.total - self.counts[NO_OUTCOME]

    def share(self, outcome: str) -> float | None:
        """The share of `outcome` among the messages with an outcome (None when none has one)."""
        return self.counts[outcome] / self.settled if self.settled else None


@dataclass(frozen=True)
class Traffic:
    hourly: list[Bucket]  # last 24 hours, the current hour last
    daily: list[Bucket]  # last 7 local days, today last

    @property
    def today(self) -> Bucket:
        return self.daily[-1]


@dataclass(frozen=True)
class HealthItem:
    key: str
    level: str  # OK, WARN, BAD
    title: str
    reason: str  # what the operator should know, with the number


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def sla_breached(now: datetime) -> Q:
    """Active tickets past an SLA target, as Ticket.first_response_breached / resolution_breached say."""
    return (Q(first_responded_at__isnull=True, first_response_due_at__lt=now)
            | Q(first_responded_at__gt=F("first_response_due_at"))
            | Q(resolved_at__isnull=True, resolution_due_at__lt=now))


def take_snapshot(*, now: datetime | None = None) -> Snapshot:
    """The current schema's state: four queries, two Redis round trips."""
    now = now or timezone.now()
    schema = connection.schema_name
    waiting, oldest_inbound = inbound_waiting()
    ledger = outbound_rows_by_state()
    Status = OutboundMessage.Status
    in_flight = [ledger[s] for s in (Status.PENDING, Status.SENDING, Status.RETRYING) if s in ledger]
    oldest_outbound = min((oldest for _, oldest in in_flight), default=None)
    active = Ticket.objects.filter(status__in=ACTIVE_TICKET)
    tickets = active.aggregate(
        waiting=Count("id", filter=Q(status=Ticket.Status.OPEN)),
        waiting_oldest=Min("created_at", filter=Q(status=Ticket.Status.OPEN)),
        breached=Count("id", filter=sla_breached(now)))
    agents = list(AgentProfile.objects.filter(is_active=True).values_list("user_id", flat=True))
    try:
        online = sum(1 for state in presence.statuses(schema=schema, user_ids=agents).values() if state == "online")
    except RedisError:
        online = None  # Redis may be lost at any moment: the page still shows what the database knows
    breaker = breaker_state(schema)
    return Snapshot(
        taken_at=now,
        inbound_waiting=waiting,
        inbound_oldest_seconds=_age(now, oldest_inbound),
        outbound_pending=ledger.get(Status.PENDING, (0, None))[0] + ledger.get(Status.SENDING, (0, None))[0],
        outbound_retrying=ledger.get(Status.RETRYING, (0, None))[0],
        outbound_oldest_seconds=_age(now, oldest_outbound),
        dead_letters=ledger.get(Status.DEAD, (0, None))[0],
        ai_enabled=get_enabled_ai_provider() is not None,
        breaker=breaker["state"],
        breaker_opened_at=breaker["opened_at"],
        tickets_waiting=tickets["waiting"],
        tickets_waiting_oldest_seconds=_age(now, tickets["waiting_oldest"]),
        sla_breaches=tickets["breached"],
        agents_online=online,
    )


def hour_starts(now: datetime, tz) -> list[datetime]:
    """The starts of the last HOURS local hours, the current one last (stepped in UTC: DST-safe)."""
    current = now.astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return [(current - timedelta(hours=n)).astimezone(tz) for n in range(HOURS - 1, -1, -1)]


def day_starts(now: datetime, tz) -> list[datetime]:
    """The local midnights of the last DAYS days, today's last."""
    today = now.astimezone(tz).date()
    return [datetime.combine(today - timedelta(days=n), datetime.min.time(), tzinfo=tz)
            for n in range(DAYS - 1, -1, -1)]


def _buckets(starts: list[datetime], until: datetime, kind: str, tz) -> list[Bucket]:
    counts = customer_messages_by_outcome(since=starts[0], until=until, kind=kind, tz=tz)
    p95 = pipeline_p95_seconds(since=starts[0], until=until, kind=kind, tz=tz)
    return [Bucket(start=start, counts={outcome: counts.get((start, outcome), 0) for outcome in OUTCOMES},
                   p95_seconds=p95.get(start)) for start in starts]


def traffic(*, now: datetime | None = None, hourly: bool = True) -> Traffic:
    """Customer messages of the current schema, in the current time zone (settings.TIME_ZONE): four
    queries (two without `hourly`, as the platform page needs only today)."""
    now = now or timezone.now()
    tz = timezone.get_current_timezone()
    return Traffic(hourly=_buckets(hour_starts(now, tz), now, "hour", tz) if hourly else [],
                   daily=_buckets(day_starts(now, tz), now, "day", tz))


def health(snapshot: Snapshot) -> list[HealthItem]:
    """One item per thing an operator acts on, each with its reason in the active language."""
    return [_backlog(snapshot), _delivery(snapshot), _breaker(snapshot), _dead_letters(snapshot),
            _sla(snapshot)]


def worst(items: list[HealthItem]) -> str:
    levels = [item.level for item in items]
    return BAD if BAD in levels else WARN if WARN in levels else OK


def duration(seconds: float | None) -> str:
    """An age as an operator reads it: seconds under a minute, then minutes, hours, days."""
    seconds = int(seconds or 0)
    if seconds < 60:
        return _("%(s)d s") % {"s": seconds}
    if seconds < 3600:
        return _("%(m)d min %(s)d s") % {"m": seconds // 60, "s": seconds % 60}
    if seconds < 86400:
        return _("%(h)d h %(m)d min") % {"h": seconds // 3600, "m": seconds % 3600 // 60}
    return _("%(d)d d %(h)d h") % {"d": seconds // 86400, "h": seconds % 86400 // 3600}


def _level_by_age(age: float | None) -> str:
    if age is None or age < BACKLOG_AMBER_SECONDS:
        return OK
    return WARN if age < BACKLOG_RED_SECONDS else BAD


def _backlog(s: Snapshot) -> HealthItem:
    title = _("Inbound backlog")
    if not s.inbound_waiting:
        return HealthItem("backlog", OK, title, _("No message waiting."))
    return HealthItem("backlog", _level_by_age(s.inbound_oldest_seconds), title,
                      _("%(n)d message(s) waiting, the oldest for %(age)s.")
                      % {"n": s.inbound_waiting, "age": duration(s.inbound_oldest_seconds)})


def _delivery(s: Snapshot) -> HealthItem:
    title = _("Delivery")
    if not (s.outbound_pending or s.outbound_retrying):
        return HealthItem("delivery", OK, title, _("Nothing waiting to be sent."))
    level = _level_by_age(s.outbound_oldest_seconds)
    if s.outbound_retrying and level == OK:
        level = WARN  # WeCom refused a send at least once: worth a look before it goes dead
    return HealthItem("delivery", level, title,
                      _("%(n)d reply part(s) waiting to be sent (%(retrying)d retrying), the oldest for %(age)s.")
                      % {"n": s.outbound_pending + s.outbound_retrying, "retrying": s.outbound_retrying,
                         "age": duration(s.outbound_oldest_seconds)})


def _breaker(s: Snapshot) -> HealthItem:
    title = _("AI circuit breaker")
    if not s.ai_enabled:
        return HealthItem("breaker", WARN, title, _("No AI provider enabled: customers get fallback scripts."))
    if s.breaker == STATE_OPEN:
        age = duration(_age(s.taken_at, s.breaker_opened_at))
        return HealthItem("breaker", BAD, title,
                          _("Open for %(age)s: customers get fallback scripts instead of answers.") % {"age": age})
    if s.breaker == STATE_HALF_OPEN:
        return HealthItem("breaker", WARN, title, _("Half-open: one call is probing the provider."))
    if s.breaker == STATE_CLOSED:
        return HealthItem("breaker", OK, title, _("Closed: the provider is called."))
    return HealthItem("breaker", WARN, title, _("State unknown: Redis cannot be reached."))


def _dead_letters(s: Snapshot) -> HealthItem:
    title = _("Dead letters")
    if not s.dead_letters:
        return HealthItem("dead_letters", OK, title, _("No dead letter."))
    return HealthItem("dead_letters", BAD, title,
                      _("%(n)d reply part(s) gave up on, waiting to be re-sent.") % {"n": s.dead_letters})


def _sla(s: Snapshot) -> HealthItem:
    title = _("Tickets and SLA")
    if s.sla_breaches:
        return HealthItem("sla", BAD, title, _("%(n)d open ticket(s) past their SLA.") % {"n": s.sla_breaches})
    if s.tickets_waiting and s.agents_online == 0:
        return HealthItem("sla", WARN, title,
                          _("%(n)d ticket(s) waiting and no agent online.") % {"n": s.tickets_waiting})
    return HealthItem("sla", OK, title, _("No ticket past its SLA."))
