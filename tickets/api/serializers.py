"""What the human side's API reads and writes: tickets with their timeline, agents with presence, and the
bodies of the actions (assign, status, note, hand off)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from conversations.models import Conversation, WeComApp
from tickets.csat_api import SurveySerializer
from tickets.models import AgentProfile, Ticket, TicketEvent
from tickets.presence import STATUSES as PRESENCE_STATUSES
from tickets.services import NOTE_MAX_LENGTH, SETTABLE_STATUSES
from tickets.teams.models import Team

INT32 = 2**31 - 1
SUBJECT_MAX_LENGTH = 200  # Ticket.subject
TAG_MAX_LENGTH = 40  # Ticket.tags' items
MAX_TAGS = 20
# Named in SPECTACULAR_SETTINGS' ENUM_NAME_OVERRIDES (SettableTicketStatusEnum): the same (value, label) pairs.
SETTABLE_STATUS_CHOICES = [(status.value, status.label) for status in SETTABLE_STATUSES]


class PersonSerializer(serializers.Serializer):
    """A staff user as tickets name them: the assignee, the agent offered a waiting ticket."""

    id = serializers.IntegerField(help_text="the user id (as in /api/agents/{id}/)")
    username = serializers.CharField()
    name = serializers.SerializerMethodField(help_text="the agent's display name, else the username")

    def get_name(self, user) -> str:
        profile = getattr(user, "agent_profile", None)
        return profile.name if profile else user.get_username()


class ContactSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField(help_text="the customer's UserID or external_userid")
    display_name = serializers.CharField()


class ConversationSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Conversation.State.choices)
    channel = serializers.ChoiceField(source="contact.app.kind", choices=WeComApp.Kind.choices,
                                      help_text="app: a self-built app; kf: 微信客服")
    agent = serializers.CharField(source="agent.username", allow_null=True, default=None,
                                  help_text="the username of the agent who owns it (state human)")
    contact = ContactSummarySerializer()
    started_at = serializers.DateTimeField()
    last_message_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class LabelRefSerializer(serializers.Serializer):
    """A label as tickets, conversations and search results show it (tickets/labels/api.py serves labels)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    color = serializers.CharField()


class TeamSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class TicketSerializer(serializers.ModelSerializer):
    conversation = ConversationSummarySerializer()
    labels = LabelRefSerializer(many=True, read_only=True,
                                   help_text="the labels (/api/labels/) on it, put on with its conversation's; "
                                             "`tags` are the ticket's own free words")
    assignee = PersonSerializer(allow_null=True)
    offered_to = PersonSerializer(allow_null=True, help_text="the agent a waiting ticket is offered to")
    team = TeamSummarySerializer(allow_null=True, read_only=True,
                                 help_text="the team (技能组) whose queue it is in: chosen at the handoff by the "
                                           "customer's menu choice or keywords, or moved there (null: no team)")
    tags = serializers.ListField(child=serializers.CharField())
    first_response_breached = serializers.BooleanField()
    resolution_breached = serializers.BooleanField()
    csat = SurveySerializer(source="survey", allow_null=True, read_only=True,
                            help_text="the satisfaction survey after the close (null: none was due)")

    class Meta:
        model = Ticket
        fields = ["id", "status", "priority", "reason", "subject", "tags", "labels", "conversation", "assignee",
                  "offered_to", "team",
                  "created_at", "updated_at", "first_response_due_at", "first_responded_at", "resolution_due_at",
                  "resolved_at", "closed_at", "first_response_breached", "resolution_breached", "csat"]
        read_only_fields = fields


class TicketEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField(
        help_text='who: "user:<username>" (an agent or staff), "api-key:<name>" (an integration), null (the system)')
    detail = serializers.DictField(help_text="what happened, by kind (status: from/to; note: text; ...)")

    class Meta:
        model = TicketEvent
        fields = ["id", "kind", "actor", "detail", "created_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_actor(self, event) -> str | None:
        by = event.detail.get("by") if isinstance(event.detail, dict) else None
        if by:
            return str(by)
        return f"user:{event.actor.get_username()}" if event.actor_id else None


class TicketDetailSerializer(TicketSerializer):
    events = TicketEventSerializer(many=True, help_text="the timeline, oldest first")

    class Meta(TicketSerializer.Meta):
        fields = [*TicketSerializer.Meta.fields, "events"]
        read_only_fields = fields


class TicketUpdateSerializer(serializers.Serializer):
    priority = serializers.ChoiceField(choices=Ticket.Priority.choices, required=False)
    subject = serializers.CharField(max_length=SUBJECT_MAX_LENGTH, allow_blank=True, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=TAG_MAX_LENGTH), max_length=MAX_TAGS,
                                 required=False, help_text="the whole list (replaces the ticket's tags)")

    def validate_tags(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))  # once each, in the given order


class AssignSerializer(serializers.Serializer):
    agent_id = serializers.IntegerField(min_value=1, max_value=INT32, required=False,
                                        help_text="the agent's user id; or give username")
    username = serializers.CharField(max_length=150, required=False, help_text="the agent's username")

    def validate(self, attrs):
        if ("agent_id" in attrs) == ("username" in attrs):
            raise serializers.ValidationError(_("Give either agent_id or username."))
        field, lookup = (("agent_id", {"user_id": attrs["agent_id"]}) if "agent_id" in attrs
                         else ("username", {"user__username": attrs["username"]}))
        agent = AgentProfile.objects.filter(is_active=True, **lookup).select_related("user").first()
        if agent is None:
            raise serializers.ValidationError({field: [_("No active agent of this tenant has this name or id.")]})
        return {"agent": agent}


class TeamMoveSerializer(serializers.Serializer):
    team_id = serializers.IntegerField(min_value=1, max_value=INT32, allow_null=True,
                                       help_text="the team's id (admin: Teams); null: no team")

    def validate_team_id(self, value):
        if value is None:
            return None
        team = Team.objects.filter(pk=value).first()
        if team is None:
            raise serializers.ValidationError(_("No team of this tenant has this id."))
        return team


class StatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=SETTABLE_STATUS_CHOICES,
                                     help_text="closing is POST /api/conversations/{id}/close/ (the goodbye)")


class NoteSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=NOTE_MAX_LENGTH)


class HandOffSerializer(serializers.Serializer):
    subject = serializers.CharField(max_length=SUBJECT_MAX_LENGTH, allow_blank=True, required=False,
                                    help_text="the ticket's subject, when the ticket is new")


class ConversationActionResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the conversation")
    state = serializers.ChoiceField(choices=Conversation.State.choices)
    agent = serializers.CharField(allow_null=True, help_text="the username of the agent who owns it")
    ticket = TicketSerializer(allow_null=True, help_text="its current ticket")


class HandOffResultSerializer(ConversationActionResultSerializer):
    offered = serializers.BooleanField(help_text="an online agent was offered it; false: nobody is online now")


class AgentSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="user_id", help_text="the agent's user id (tickets' assignee.id)")
    username = serializers.CharField(source="user.username")
    name = serializers.CharField()
    active = serializers.BooleanField(source="is_active")
    presence = serializers.SerializerMethodField(help_text="online, away or offline (no open agent screen)")
    load = serializers.SerializerMethodField(help_text="conversations they own now")
    capacity = serializers.IntegerField(source="max_concurrent", help_text="conversations they may own at once")

    class Meta:
        model = AgentProfile
        fields = ["id", "username", "name", "role", "active", "presence", "load", "capacity", "wecom_userid"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=PRESENCE_STATUSES))
    def get_presence(self, agent) -> str:
        return self.context["presence"].get(agent.user_id, "offline")

    def get_load(self, agent) -> int:
        return self.context["load"].get(agent.user_id, 0)
