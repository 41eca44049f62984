"""Who is offered a waiting ticket: round-robin among the online agents of its team who are under their
capacity (docs/AGENTS.md, "Round-robin").

The rotation is each agent's `last_offered_at` (set on every offer, claim and reassignment), in Postgres: the
agent whose last offer or assignment is the oldest comes next, so it survives restarts and every web and worker
process shares it. Choosing and recording happen under one transaction-scoped advisory lock per tenant, so two
handoffs at the same moment (in any processes) see each other's offers and never pick the same agent as "next".

Capacity counts what the agent owns and the offers still waiting for them: an agent at their limit is skipped.
A team with members waits for one of them (the sweep offers when someone comes online); only a team without any
active member, or no team, offers to every agent.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.db.models import Count, Func

from conversations.models import Conversation
from tickets import presence
from tickets.models import AgentProfile, Ticket
from tickets.selectors import open_load
from tickets.teams.models import Team

NEVER = datetime.min.replace(tzinfo=UTC)  # an agent never offered anything comes first


def lock_offers() -> None:
    """Serialise the tenant's offers until the current transaction ends (PostgreSQL drops the lock at commit or
    rollback: nothing to release, even if the process dies)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{connection.schema_name}:offers"])


def candidates_for(team: Team | None) -> list[AgentProfile]:
    """The agents a ticket of `team` may be offered to, online or not: the team's active members, or every
    active agent when there is no team or the team has no active member."""
    agents = AgentProfile.objects.filter(is_active=True).select_related("user")
    if team is not None:
        members = list(agents.filter(teams=team))
        if members:
            return members
    return list(agents)


def offer_load(user_ids: list[int]) -> dict[int, int]:
    """Conversations each agent owns plus waiting tickets offered to them."""
    load = open_load(user_ids)
    offered = (Ticket.objects.filter(offered_to_id__in=user_ids, status=Ticket.Status.OPEN,
                                     conversation__state=Conversation.State.WAITING_HUMAN)
               .values("offered_to_id").annotate(n=Count("id")))
    for row in offered:
        load[row["offered_to_id"]] += row["n"]
    return load


def next_agent(*, team: Team | None) -> AgentProfile | None:
    """The next agent in the rotation who is online and under capacity, recorded as offered now; None if nobody.
    Call inside a transaction: the offer it is for must commit with the rotation's step."""
    lock_offers()
    profiles = candidates_for(team)
    online = presence.statuses(schema=connection.schema_name, user_ids=[p.user_id for p in profiles])
    load = offer_load([p.user_id for p in profiles])
    available = [p for p in profiles if online[p.user_id] == "online" and load[p.user_id] < p.max_concurrent]
    if not available:
        return None
    # Never offered first, then the longest since the last offer; the user id breaks ties so the order is stable.
    chosen = min(available, key=lambda p: (p.last_offered_at or NEVER, p.user_id))
    mark_offered(chosen)
    return chosen


def mark_offered(profile: AgentProfile) -> None:
    """The agent just got work (an offer, a claim, a reassignment): to the back of the rotation. The database's
    clock, read at this statement (not the transaction's start, not this host's clock), orders steps taken one
    after the other under the lock by any process on any host."""
    AgentProfile.objects.filter(pk=profile.pk).update(last_offered_at=Func(function="clock_timestamp"))
