"""REST API of the human side (docs/API.md, "Tickets and agents"): tickets (list, filter, retrieve with their
timeline; assign, status, notes, edit), the human-side actions on conversations (hand off, hand back, close)
and agents with their presence.

Views are thin: the writes are tickets/integration.py and tickets/services.py, the same services as the agent
screens, acted by the caller (`Integration`: "api-key:<name>", or "user:<username>" for signed-in staff). A
refusal of those services (ActionRefused) is a 409 with the service's code and reason.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_schema import ErrorSerializer
from conversations.models import Conversation
from tickets import integration, presence
from tickets.api.filters import AgentFilter, TicketFilter
from tickets.api.serializers import (
    AgentSerializer,
    AssignSerializer,
    ConversationActionResultSerializer,
    HandOffResultSerializer,
    HandOffSerializer,
    NoteSerializer,
    StatusSerializer,
    TeamMoveSerializer,
    TicketDetailSerializer,
    TicketEventSerializer,
    TicketSerializer,
    TicketUpdateSerializer,
)
from tickets.models import AgentProfile, Ticket, TicketEvent
from tickets.selectors import active_ticket, open_load
from tickets.services import ActionRefused, Integration, hand_back_to_ai

CONFLICT = OpenApiResponse(ErrorSerializer, description="Refused in the current state (`code` says why: "
                                                        "invalid_transition, not_with_humans, ...); nothing changed")


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def refused(exc: ActionRefused) -> Conflict:
    return Conflict(detail=str(exc), code=exc.code)


def acting(request) -> Integration:
    """Who the timeline names: the key, or the signed-in staff user."""
    api_key = getattr(request.user, "api_key", None)
    if api_key is not None:
        return Integration(label=f"api-key:{api_key.name}")
    return Integration(label=f"user:{request.user.get_username()}", user=request.user)


TICKETS = (Ticket.objects.select_related("conversation__contact__app", "conversation__agent",
                                         "assignee__agent_profile", "offered_to__agent_profile", "survey",
                                         "team")
           .prefetch_related("labels"))


def ticket_with_timeline(ticket_id: int) -> Ticket:
    ticket = (TICKETS.prefetch_related(Prefetch("events", TicketEvent.objects.select_related("actor")))
              .filter(pk=ticket_id).first())
    if ticket is None:
        raise NotFound()
    return ticket


class TicketViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The tenant's tickets: every handoff opens (or reuses) one. Written only through the agent screens'
    services, so the same transitions and refusals apply."""

    api_scope = "tickets"
    serializer_class = TicketSerializer
    queryset = TICKETS
    filterset_class = TicketFilter
    ordering_fields = ["id", "created_at", "updated_at", "first_response_due_at", "resolution_due_at"]
    ordering = ["-created_at", "-id"]
    lookup_value_regex = r"[0-9]+"

    @extend_schema(responses=TicketDetailSerializer)
    def retrieve(self, request, pk=None):
        return Response(TicketDetailSerializer(ticket_with_timeline(self._ticket_id())).data)

    @extend_schema(request=TicketUpdateSerializer, responses={200: TicketDetailSerializer},
                   description="Priority, subject and tags, in any status; the timeline records the change.")
    def partial_update(self, request, pk=None):
        ticket_id = self._ticket_id()
        payload = TicketUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        integration.update_ticket(ticket_id=ticket_id, by=acting(request), **payload.validated_data)
        return Response(TicketDetailSerializer(ticket_with_timeline(ticket_id)).data)

    @extend_schema(request=AssignSerializer, responses={200: TicketDetailSerializer, 409: CONFLICT},
                   description="Give the ticket's conversation to an active agent of this tenant (online or "
                               "not), as a supervisor's reassign does: waiting or held by another agent.")
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        ticket_id = self._ticket_id()
        payload = AssignSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        self._act(integration.assign_ticket, ticket_id=ticket_id, agent=payload.validated_data["agent"],
                  by=acting(request))
        return Response(TicketDetailSerializer(ticket_with_timeline(ticket_id)).data)

    @extend_schema(request=StatusSerializer, responses={200: TicketDetailSerializer, 409: CONFLICT},
                   description="assigned, pending_customer or resolved, along the agent screens' transitions.")
    @action(detail=True, methods=["post"], url_path="status")
    def change_status(self, request, pk=None):
        ticket_id = self._ticket_id()
        payload = StatusSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        self._act(integration.change_status, ticket_id=ticket_id, to=payload.validated_data["status"],
                  by=acting(request))
        return Response(TicketDetailSerializer(ticket_with_timeline(ticket_id)).data)

    @extend_schema(request=TeamMoveSerializer, responses={200: TicketDetailSerializer, 409: CONFLICT},
                   description="Queue the ticket for another team (技能组), as a supervisor does on the queue page: "
                               "a waiting ticket offered outside the new team is offered within it.")
    @action(detail=True, methods=["post"])
    def team(self, request, pk=None):
        ticket_id = self._ticket_id()
        payload = TeamMoveSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        self._act(integration.move_to_team, ticket_id=ticket_id, team=payload.validated_data["team_id"],
                  by=acting(request))
        return Response(TicketDetailSerializer(ticket_with_timeline(ticket_id)).data)

    @extend_schema(request=NoteSerializer, responses={201: TicketEventSerializer, 409: CONFLICT},
                   description="A note in the ticket's timeline (for agents; the customer never sees it).")
    @action(detail=True, methods=["post"])
    def notes(self, request, pk=None):
        ticket_id = self._ticket_id()
        payload = NoteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        event = self._act(integration.note_ticket, ticket_id=ticket_id, text=payload.validated_data["text"],
                          by=acting(request))
        return Response(TicketEventSerializer(event).data, status=status.HTTP_201_CREATED)

    def _ticket_id(self) -> int:
        """The ticket of the URL, if it is this tenant's (404 otherwise, before the body is looked at)."""
        ticket_id = int(self.kwargs["pk"])
        if not Ticket.objects.filter(pk=ticket_id).exists():
            raise NotFound()
        return ticket_id

    @staticmethod
    def _act(service, **kwargs):
        try:
            return service(**kwargs)
        except ActionRefused as exc:
            raise refused(exc) from None
        except (Ticket.DoesNotExist, Conversation.DoesNotExist):
            raise NotFound() from None


# -- conversations: the human side's actions (the conversation resources themselves: conversations/api) ------

def conversation_result(conversation_id: int, **extra) -> dict:
    conversation = Conversation.objects.select_related("agent").get(pk=conversation_id)
    ticket = active_ticket(conversation)
    return {"id": conversation.pk, "state": conversation.state,
            "agent": conversation.agent.get_username() if conversation.agent_id else None,
            "ticket": TICKETS.get(pk=ticket.pk) if ticket else None, **extra}


class ConversationAction(APIView):
    api_scope = "conversations"

    @staticmethod
    def _exists(conversation_id: int) -> None:
        if not Conversation.objects.filter(pk=conversation_id).exists():
            raise NotFound()

    @staticmethod
    def _act(service, **kwargs):
        try:
            return service(**kwargs)
        except ActionRefused as exc:
            raise refused(exc) from None
        except Conversation.DoesNotExist:
            raise NotFound() from None


class HandOffView(ConversationAction):
    @extend_schema(request=HandOffSerializer, responses={200: HandOffResultSerializer, 409: CONFLICT},
                   description="Hand a conversation the AI answers to humans, as a customer asking for one does: "
                               "the handoff message, a ticket (reason manual), an offer to an online agent.")
    def post(self, request, pk: int):
        self._exists(pk)
        payload = HandOffSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        receipt = self._act(integration.hand_off_conversation, conversation_id=pk, by=acting(request),
                            subject=payload.validated_data.get("subject", ""))
        return Response(HandOffResultSerializer(conversation_result(pk, offered=receipt.offered)).data)


class HandBackView(ConversationAction):
    @extend_schema(request=None, responses={200: ConversationActionResultSerializer, 409: CONFLICT},
                   description="Give a conversation with humans back to the AI (its ticket stays as it is).")
    def post(self, request, pk: int):
        self._exists(pk)
        self._act(hand_back_to_ai, conversation_id=pk, profile=acting(request))
        return Response(ConversationActionResultSerializer(conversation_result(pk)).data)


class CloseView(ConversationAction):
    @extend_schema(request=None, responses={200: ConversationActionResultSerializer, 409: CONFLICT},
                   description="Close the conversation and its ticket with the closing message, as the agent "
                               "screen does; closing a closed conversation changes nothing.")
    def post(self, request, pk: int):
        self._exists(pk)
        self._act(integration.close, conversation_id=pk, by=acting(request))
        return Response(ConversationActionResultSerializer(conversation_result(pk)).data)


# -- agents ------------------------------------------------------------------------------------------------

class AgentViewSet(viewsets.ReadOnlyModelViewSet):
    """The tenant's agents with their presence (their open agent screens) and load; read-only (agents are
    managed in the admin)."""

    api_scope = "tickets"
    serializer_class = AgentSerializer
    queryset = AgentProfile.objects.select_related("user")
    filterset_class = AgentFilter
    ordering_fields = ["display_name", "role", "max_concurrent"]
    ordering = ["user_id"]
    lookup_field = "user_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[0-9]+"

    def get_serializer(self, *args, **kwargs):
        agents = args[0] if args else kwargs.get("instance")
        agents = list(agents) if kwargs.get("many") else [agents] if agents is not None else []
        user_ids = [agent.user_id for agent in agents]
        kwargs["context"] = {**self.get_serializer_context(),
                             "presence": presence.statuses(schema=connection.schema_name, user_ids=user_ids),
                             "load": open_load(user_ids)}
        return self.get_serializer_class()(*args, **kwargs)
