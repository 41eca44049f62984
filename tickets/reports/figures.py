"""The reports' figures, computed from the current tenant schema's rows; every definition, and its counterpart in
WeCom's 微信客服 statistics, is in docs/REPORTS.md.

1. `human_figures`: the tickets handed off in the period (one query, its survey joined): per agent, per team,
   in total, per local day and per week. A ticket belongs to the day it was handed off, so every figure of a row
   is about the same tickets and no rate exceeds 100 %.
2. `bot_figures`: the customer messages of the period (one query grouped by local day and conversation, then
   rolled up here): messages, sessions, the bot's sessions, transfers, AI resolutions, knowledge hits and
   fallbacks, in total, per day and per week.
3. `report`: both, and the names of agents and teams (two more queries).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import CharField, Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, Trunc
from django.utils import timezone

from conversations.models import DeskSettings, Message, OutboundMessage, TraceEvent
from conversations.vocabulary import Outcome, Stage
from tickets.csat_models import SCALES, Survey
from tickets.models import AgentProfile, Ticket
from tickets.reports.period import Period, week_of
from tickets.teams.models import Team

# Outcomes of a customer message the bot took (it answered, fell back or handed off): WeCom's "sent to the
# smart assistant". routed_to_human (a human owned the conversation), ratings and survey answers are not.
BOT_OUTCOMES = (Outcome.AI.value, Outcome.KNOWLEDGE.value, Outcome.FALLBACK.value, Outcome.HANDOFF.value)
RESOLVED = (Ticket.Status.RESOLVED, Ticket.Status.CLOSED)
SURVEYED = (Survey.Status.SENT, Survey.Status.ANSWERED)  # not_sent: WeCom allowed no message


def rating_of(*, scale: str, score: int) -> str:
    """satisfied / middling / dissatisfied, as WeCom's three rates split the answers: on the 5-point scale
    非常满意 and 满意 are satisfied, 一般 middling, 不满意 and 非常不满意 dissatisfied."""
    middle = (len(SCALES[scale]) + 1) // 2
    return "satisfied" if score > middle else "middling" if score == middle else "dissatisfied"


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True, kw_only=True)
class TicketRow:
    """One handed-off ticket as the figures read it."""

    id: int
    created_at: datetime
    assignee_id: int | None
    team_id: int | None
    contact_id: int
    first_response_seconds: float | None
    resolution_seconds: float | None  # None: not resolved (or reopened and not resolved again)
    survey_status: str | None  # sent, answered (not_sent and none: None)
    rating: str | None  # satisfied, middling, dissatisfied (answered surveys)


@dataclass
class HumanFigures:
    """The figures of a set of tickets (an agent's, a team's, a day's ...)."""

    tickets: int = 0
    handled: int = 0  # with an agent
    customers: int = 0
    responded: int = 0
    first_response_avg_seconds: float | None = None
    resolved: int = 0
    resolution_avg_seconds: float | None = None
    surveys_sent: int = 0
    surveys_answered: int = 0
    satisfied: int = 0
    middling: int = 0
    dissatisfied: int = 0

    @property
    def reply_rate(self) -> float | None:
        return _ratio(self.responded, self.handled)

    @property
    def participation_rate(self) -> float | None:
        return _ratio(self.surveys_answered, self.surveys_sent)

    @property
    def satisfied_rate(self) -> float | None:
        return _ratio(self.satisfied, self.surveys_answered)

    @property
    def middling_rate(self) -> float | None:
        return _ratio(self.middling, self.surveys_answered)

    @property
    def dissatisfied_rate(self) -> float | None:
        return _ratio(self.dissatisfied, self.surveys_answered)

    @classmethod
    def of(cls, rows: Iterable[TicketRow]) -> HumanFigures:
        rows = list(rows)
        first = [r.first_response_seconds for r in rows if r.first_response_seconds is not None]
        resolution = [r.resolution_seconds for r in rows if r.resolution_seconds is not None]
        ratings = [r.rating for r in rows if r.rating]
        return cls(tickets=len(rows), handled=sum(1 for r in rows if r.assignee_id is not None),
                   customers=len({r.contact_id for r in rows}), responded=len(first),
                   first_response_avg_seconds=_mean(first), resolved=len(resolution),
                   resolution_avg_seconds=_mean(resolution),
                   surveys_sent=sum(1 for r in rows if r.survey_status in SURVEYED),
                   surveys_answered=len(ratings), satisfied=ratings.count("satisfied"),
                   middling=ratings.count("middling"), dissatisfied=ratings.count("dissatisfied"))


@dataclass(frozen=True)
class Named:
    """A row of the per-agent or per-team table: whose figures they are."""

    key: int | None  # user id or team id; None: no team / nobody
    name: str
    figures: HumanFigures


@dataclass(frozen=True)
class Human:
    agents: list[Named]
    teams: list[Named]
    total: HumanFigures
    daily: dict[date, HumanFigures]
    weekly: dict[date, HumanFigures]  # by the Monday of the week


def ticket_rows(period: Period) -> list[TicketRow]:
    """The tickets handed off in the period, one query. The first response is the one the SLA records
    (first_responded_at), or, when the scheduler has not recorded it yet (a ticket closed before its next
    tick), the first agent reply WeCom accepted since the ticket opened: tickets.selectors'
    delivered_first_responses, in SQL."""
    delivered = (OutboundMessage.objects.filter(conversation_id=OuterRef("conversation_id"),
                                                author=Message.Author.AGENT, status=OutboundMessage.Status.SENT,
                                                sent_at__gte=OuterRef("created_at"))
                 .order_by("sent_at").values("sent_at")[:1])
    rows = (Ticket.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
            .annotate(first_response=Coalesce("first_responded_at", Subquery(delivered)),
                      contact=F("conversation__contact_id"), survey_status=F("survey__status"),
                      survey_scale=F("survey__scale"), survey_score=F("survey__score"))
            .order_by("id")
            .values("id", "created_at", "assignee_id", "team_id", "contact", "status", "resolved_at",
                    "first_response", "survey_status", "survey_scale", "survey_score"))
    found = []
    for row in rows:
        created = row["created_at"]
        resolved = row["resolved_at"] if row["status"] in RESOLVED else None  # a reopened one: not (yet) again
        answered = row["survey_status"] == Survey.Status.ANSWERED and row["survey_score"] is not None
        found.append(TicketRow(
            id=row["id"], created_at=created, assignee_id=row["assignee_id"], team_id=row["team_id"],
            contact_id=row["contact"],
            first_response_seconds=_seconds(created, row["first_response"]),
            resolution_seconds=_seconds(created, resolved),
            survey_status=row["survey_status"] if row["survey_status"] in SURVEYED else None,
            rating=rating_of(scale=row["survey_scale"], score=row["survey_score"]) if answered else None))
    return found


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else max(0.0, (end - start).total_seconds())


def human_figures(period: Period, rows: list[TicketRow] | None = None) -> Human:
    rows = ticket_rows(period) if rows is None else rows
    by_agent, by_team = defaultdict(list), defaultdict(list)
    by_day, by_week = defaultdict(list), defaultdict(list)
    for row in rows:
        if row.assignee_id is not None:
            by_agent[row.assignee_id].append(row)
        by_team[row.team_id].append(row)
        day = row.created_at.astimezone(period.zone).date()
        by_day[day].append(row)
        by_week[week_of(day)].append(row)
    agent_names = _agent_names(set(by_agent))
    team_names = dict(Team.objects.filter(pk__in=[k for k in by_team if k is not None]).values_list("pk", "name"))
    agents = sorted((Named(user_id, agent_names.get(user_id, str(user_id)), HumanFigures.of(found))
                     for user_id, found in by_agent.items()), key=lambda n: (n.name, n.key))
    teams = sorted((Named(team_id, team_names.get(team_id, "") if team_id else "", HumanFigures.of(found))
                    for team_id, found in by_team.items()), key=lambda n: (n.key is None, n.name, n.key or 0))
    return Human(agents=agents, teams=teams, total=HumanFigures.of(rows),
                 daily={day: HumanFigures.of(by_day.get(day, [])) for day in period.days},
                 weekly={week: HumanFigures.of(by_week.get(week, [])) for week in period.weeks})


def _agent_names(user_ids: set[int]) -> dict[int, str]:
    """Display names (an agent's profile, else the username: a former agent's tickets still count)."""
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    names.update({user_id: name for user_id, name in AgentProfile.objects.filter(user_id__in=user_ids)
                  .exclude(display_name="").values_list("user_id", "display_name")})
    return names


# --- the bot ---------------------------------------------------------------------------------------------

@dataclass
class BotFigures:
    customer_messages: int = 0
    sessions: int = 0
    customers: int = 0
    bot_sessions: int = 0
    transferred: int = 0
    ai_resolved: int = 0
    bot_messages: int = 0  # customer messages the bot took
    knowledge_hits: int = 0
    fallbacks: int = 0

    @property
    def transfer_rate(self) -> float | None:
        return _ratio(self.transferred, self.bot_sessions)

    @property
    def ai_resolution_rate(self) -> float | None:
        return _ratio(self.ai_resolved, self.bot_sessions)

    @property
    def knowledge_hit_rate(self) -> float | None:
        return _ratio(self.knowledge_hits, self.bot_messages)

    @property
    def fallback_rate(self) -> float | None:
        return _ratio(self.fallbacks, self.bot_messages)


@dataclass
class _Session:
    """One conversation's customer messages within a bucket."""

    contact_id: int
    ai_resolved: bool  # of the conversation as a whole: ended without a human
    messages: int = 0
    bot: int = 0
    handoffs: int = 0
    hits: int = 0
    fallbacks: int = 0

    def add(self, other: _Session) -> None:
        self.messages += other.messages
        self.bot += other.bot
        self.handoffs += other.handoffs
        self.hits += other.hits
        self.fallbacks += other.fallbacks


def _roll_up(sessions: Iterable[_Session]) -> BotFigures:
    figures = BotFigures()
    contacts = set()
    for s in sessions:
        figures.customer_messages += s.messages
        figures.sessions += 1
        contacts.add(s.contact_id)
        figures.bot_messages += s.bot
        figures.knowledge_hits += s.hits
        figures.fallbacks += s.fallbacks
        if s.bot:
            figures.bot_sessions += 1
            figures.transferred += bool(s.handoffs)
            figures.ai_resolved += s.ai_resolved and not s.handoffs
    figures.customers = len(contacts)
    return figures


@dataclass(frozen=True)
class Bot:
    total: BotFigures
    daily: dict[date, BotFigures]
    weekly: dict[date, BotFigures] = field(default_factory=dict)


def bot_figures(period: Period, *, now: datetime | None = None) -> Bot:
    """One query: customer messages grouped by local day and conversation, each with its outcome (the
    `processed` trace event's) and whether the bot's answer drew on a knowledge entry."""
    now = now or timezone.now()
    idle_since = now - timedelta(minutes=DeskSettings.current().conversation_idle_minutes)
    outcome = Subquery(TraceEvent.objects.filter(inbound=OuterRef("inbound_id"), stage=Stage.PROCESSED)
                       .order_by("id").annotate(outcome=KT("detail__outcome")).values("outcome")[:1],
                       output_field=CharField())
    hit = Exists(OutboundMessage.objects.filter(inbound=OuterRef("inbound_id"), message__knowledge_entry__isnull=False))
    human = Exists(Ticket.objects.filter(conversation=OuterRef("conversation_id")))
    bot = Q(outcome__in=BOT_OUTCOMES)
    rows = (Message.objects.filter(author=Message.Author.CUSTOMER, created_at__gte=period.start,
                                   created_at__lt=period.end)
            .annotate(day=Trunc("created_at", "day", tzinfo=period.zone), outcome=outcome, hit=hit,
                      human=human, contact=F("conversation__contact_id"),
                      closed_at=F("conversation__closed_at"), last_at=F("conversation__last_message_at"))
            .order_by()
            .values("day", "conversation_id", "contact", "human", "closed_at", "last_at")
            .annotate(messages=Count("id"), bot=Count("id", filter=bot),
                      handoffs=Count("id", filter=Q(outcome=Outcome.HANDOFF.value)),
                      hits=Count("id", filter=bot & Q(hit=True)),
                      fallbacks=Count("id", filter=Q(outcome=Outcome.FALLBACK.value))))
    by_day: dict[date, list[_Session]] = defaultdict(list)
    by_week: dict[date, dict[int, _Session]] = defaultdict(dict)
    whole: dict[int, _Session] = {}
    for row in rows:
        # Ended without a human: no ticket ever, and closed or idle past the limit (a bot conversation is
        # closed only when its customer writes again, so an idle one has ended as far as the bot knows).
        ended = row["closed_at"] is not None or row["last_at"] <= idle_since
        session = _Session(contact_id=row["contact"], ai_resolved=ended and not row["human"],
                           messages=row["messages"], bot=row["bot"], handoffs=row["handoffs"], hits=row["hits"],
                           fallbacks=row["fallbacks"])
        day = row["day"].date()
        by_day[day].append(session)
        for bucket in (by_week[week_of(day)], whole):
            merged = bucket.setdefault(row["conversation_id"],
                                       _Session(contact_id=session.contact_id, ai_resolved=session.ai_resolved))
            merged.add(session)
    return Bot(total=_roll_up(whole.values()),
               daily={day: _roll_up(by_day.get(day, [])) for day in period.days},
               weekly={week: _roll_up(by_week.get(week, {}).values()) for week in period.weeks})


@dataclass(frozen=True)
class Report:
    period: Period
    computed_at: datetime
    human: Human
    bot: Bot


def report(period: Period, *, now: datetime | None = None) -> Report:
    now = now or timezone.now()
    return Report(period=period, computed_at=now, human=human_figures(period), bot=bot_figures(period, now=now))
