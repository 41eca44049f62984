"""Query filters of the human side's lists: tickets and agents (django-filter; documented in the schema and
docs/API.md, "Tickets and agents")."""

from __future__ import annotations

from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import Now
from django_filters import rest_framework as filters

from tenants.api_filters import BooleanFilter, DateTimeFilter, IntegerFilter
from tickets import presence
from tickets.models import AgentProfile, Ticket

INT32 = 2**31 - 1
PRESENCE_CHOICES = [(status, status) for status in presence.STATUSES]


class TicketFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=Ticket.Status.choices)
    priority = filters.ChoiceFilter(choices=Ticket.Priority.choices)
    reason = filters.ChoiceFilter(choices=Ticket.Reason.choices)
    assignee = IntegerFilter(field_name="assignee_id", min_value=1, max_value=INT32,
                             label="the assigned agent's user id")
    assignee_username = filters.CharFilter(field_name="assignee__username", max_length=150,
                                           label="the assigned agent's username")
    assigned = BooleanFilter(field_name="assignee", lookup_expr="isnull", exclude=True,
                             label="true: someone holds it; false: nobody does")
    tag = filters.CharFilter(method="with_tag", max_length=40, label="one of the ticket's tags")
    conversation = IntegerFilter(field_name="conversation_id", min_value=1, max_value=INT32,
                                 label="the conversation's id")
    team = IntegerFilter(field_name="team_id", min_value=1, max_value=INT32, label="the team's id (its queue)")
    has_team = BooleanFilter(field_name="team", lookup_expr="isnull", exclude=True,
                             label="true: queued for a team; false: for no team")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte", label="created at or after (ISO 8601)")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt", label="created before (ISO 8601)")
    updated_after = DateTimeFilter(field_name="updated_at", lookup_expr="gte", label="updated at or after (ISO 8601)")
    updated_before = DateTimeFilter(field_name="updated_at", lookup_expr="lt", label="updated before (ISO 8601)")
    sla_breached = BooleanFilter(method="with_sla_breached",
                                 label="true: the first response or the resolution is (or was) late")

    class Meta:
        model = Ticket
        fields = []

    def with_tag(self, queryset, name, value):
        return queryset.filter(tags__contains=[value])

    def with_sla_breached(self, queryset, name, value):
        # The models' first_response_breached / resolution_breached, in SQL: late when done after the due
        # time, or not done and the due time has passed.
        late_first = Q(first_response_due_at__isnull=False) & (
            Q(first_responded_at__isnull=True, first_response_due_at__lt=Now())
            | Q(first_responded_at__gt=F("first_response_due_at")))
        late_resolution = Q(resolution_due_at__isnull=False) & (
            Q(resolved_at__isnull=True, resolution_due_at__lt=Now())
            | Q(resolved_at__gt=F("resolution_due_at")))
        breached = late_first | late_resolution
        return queryset.filter(breached) if value else queryset.exclude(breached)


class AgentFilter(filters.FilterSet):
    role = filters.ChoiceFilter(choices=AgentProfile.Role.choices)
    active = BooleanFilter(field_name="is_active")
    online = BooleanFilter(method="with_online", label="true: online now; false: away or offline")
    presence = filters.ChoiceFilter(choices=PRESENCE_CHOICES, method="with_presence")

    class Meta:
        model = AgentProfile
        fields = []

    def with_online(self, queryset, name, value):
        online = self._user_ids_by_presence(queryset, {"online"})
        return queryset.filter(user_id__in=online) if value else queryset.exclude(user_id__in=online)

    def with_presence(self, queryset, name, value):
        return queryset.filter(user_id__in=self._user_ids_by_presence(queryset, {value}))

    def _user_ids_by_presence(self, queryset, wanted: set[str]) -> list[int]:
        # Presence lives in Redis (tickets/presence.py), not in a column: ask for the agents this list has.
        statuses = presence.statuses(schema=connection.schema_name,
                                     user_ids=list(queryset.values_list("user_id", flat=True)))
        return [user_id for user_id, status in statuses.items() if status in wanted]
