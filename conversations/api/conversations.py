"""REST API of conversations: list them (state, channel, agent, time, text), read one with its contact and latest
messages, page through its messages (cursor), and send a message to its customer through the outbound ledger
with an optional Idempotency-Key (docs/API.md, "Sending a message")."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from config.api_schema import ErrorSerializer
from conversations.api.contacts import ContactSerializer
from conversations.api.resource_filters import ConversationFilter, TranscriptFilter
from conversations.models import Conversation, Message, OutboundMessage, WeComApp
from conversations.selectors_api import (
    access_contact,
    access_conversation,
    conversations,
    latest_lines,
    transcript,
    transcript_lines,
)
from conversations.services.api_sends import IdempotencyClaim, IdempotencyKeyReused, SendRefused, send_from_api
from conversations.services.reply_limits import Refusal, reply_allowance

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Visible ASCII, as HTTP header values travel safely everywhere; a UUID fits.
IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")
MAX_SEND_CHARACTERS = 4000
MEDIA_KINDS = ["image", "voice", "video", "file"]
MEDIA_STATUSES = ["stored", "pending", "refused"]


class MediaSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=MEDIA_KINDS)
    status = serializers.ChoiceField(choices=MEDIA_STATUSES,
                                     help_text="a customer's file: fetched from WeCom, still fetching, or refused")
    content_type = serializers.CharField(allow_blank=True)
    size = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    name = serializers.CharField(allow_blank=True)


class TranscriptLineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    conversation = serializers.IntegerField()
    author = serializers.ChoiceField(choices=Message.Author.choices,
                                     help_text="customer, the AI's kinds of answer, agent, or api (an integrator)")
    author_label = serializers.CharField()
    text = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    delivery = serializers.ChoiceField(choices=OutboundMessage.Status.choices, allow_null=True,
                                       help_text="our messages: the least advanced part's ledger state; null for the "
                                                 "customer's")
    media = MediaSerializer(allow_null=True)
    sensitive_words = serializers.ListField(child=serializers.CharField(),
                                            help_text="a customer's message: the sensitive words it contains")


class ReplyAllowanceSerializer(serializers.Serializer):
    window_ends_at = serializers.DateTimeField(allow_null=True, help_text="微信客服: 48 hours after the customer's "
                                                                        "last message")
    replies_left = serializers.IntegerField(allow_null=True, help_text="微信客服: of the 5 per customer message")
    per_minute_left = serializers.IntegerField(allow_null=True, help_text="self-built app: this minute")
    refusal = serializers.ChoiceField(choices=Refusal.choices, allow_null=True,
                                      help_text="why a message would be refused now (null: it would go)")


class ConversationSerializer(serializers.ModelSerializer):
    channel = serializers.ChoiceField(choices=WeComApp.Kind.choices, read_only=True,
                                      help_text="app: with a self-built app's member; kf: with a 微信客服 customer")
    app = serializers.IntegerField(source="contact.app_id", read_only=True)
    agent_name = serializers.SerializerMethodField(help_text="the owning agent's user name; null when none")

    class Meta:
        model = Conversation
        fields = ["id", "contact", "channel", "app", "state", "agent", "agent_name", "started_at", "last_message_at",
                  "closed_at"]
        read_only_fields = fields

    def get_agent_name(self, conversation) -> str | None:
        return conversation.agent.get_username() if conversation.agent_id else None


class ConversationDetailSerializer(ConversationSerializer):
    contact = ContactSerializer(source="api_contact", read_only=True)
    messages = TranscriptLineSerializer(source="api_messages", many=True, read_only=True,
                                        help_text="the latest 20 lines, oldest first (all: its messages endpoint)")
    reply_allowance = ReplyAllowanceSerializer(source="api_allowance", read_only=True,
                                               help_text="what WeCom would accept from us now")

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "messages", "reply_allowance"]
        read_only_fields = fields


class SendSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_SEND_CHARACTERS,
                                 help_text="sent as text (long texts in parts of 2,048 bytes, each counting "
                                           "towards WeCom's limits)")


class TranscriptCursor(CursorPagination):
    """Cursor pages of a transcript: stable while new lines arrive (an offset would shift)."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_page_size, "default": self.page_size})
        return parameters


class SendRefusedError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = gettext_lazy("WeCom would refuse this message now.")


class IdempotencyKeyReusedError(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = gettext_lazy("This Idempotency-Key was used for another request.")


def _caller(user) -> str:
    """Whose Idempotency-Keys these are: an API key's, or a signed-in staff user's."""
    api_key = getattr(user, "api_key", None)
    return f"k{api_key.pk}" if api_key is not None else f"u{user.pk}"


class ConversationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tenant's conversations, their messages, and sending to their customers."""

    api_scope = "conversations"
    serializer_class = ConversationSerializer
    filterset_class = ConversationFilter
    ordering_fields = ["id", "started_at", "last_message_at"]
    ordering = ["-last_message_at", "-id"]

    def get_queryset(self):
        if self.action in ("messages", "send_message"):  # the lines are what these filter and page
            return Message.objects.none()
        return conversations()

    def _conversation(self, pk) -> Conversation:
        """The addressed conversation, without the list's filters (the messages' own apply to the lines)."""
        conversation = access_conversation(pk)
        if conversation is None:
            raise NotFound(_("No conversation with this id."))
        return conversation

    @extend_schema(responses=ConversationDetailSerializer)
    def retrieve(self, request, pk=None):
        conversation = self.get_object()
        conversation.api_contact = access_contact(conversation.contact_id)
        conversation.api_messages = latest_lines(conversation)
        conversation.api_allowance = reply_allowance(contact=conversation.contact).as_dict()
        return Response(ConversationDetailSerializer(conversation).data)

    @extend_schema(responses=TranscriptLineSerializer(many=True), filters=True,
                   description="The conversation's transcript, newest first (`ordering=id`: oldest first), in cursor "
                               "pages: follow `next`. `after=<message id>` gives only what came after a line.")
    @action(detail=True, methods=["get"], pagination_class=TranscriptCursor, filterset_class=TranscriptFilter,
            ordering_fields=["id"], ordering=["-id"])
    def messages(self, request, pk=None):
        conversation = self._conversation(pk)
        page = self.paginate_queryset(self.filter_queryset(transcript(conversation.pk)))
        return self.get_paginated_response(TranscriptLineSerializer(transcript_lines(page), many=True).data)

    @extend_schema(
        request=SendSerializer,
        parameters=[
            OpenApiParameter(IDEMPOTENCY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                             pattern=IDEMPOTENCY_KEY.pattern,
                             description="optional; the same key (1-255 visible ASCII characters) from the same "
                                         "API key returns the first request's message instead of sending again"),
            OpenApiParameter(REPLAYED_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
                             enum=["true"], description="the message was sent by an earlier request with this "
                                                        "Idempotency-Key"),
        ],
        responses={201: TranscriptLineSerializer, 200: TranscriptLineSerializer, 409: ErrorSerializer,
                   422: ErrorSerializer},
        description="Send a text to the conversation's customer through the outbound ledger (201; 200 with "
                    "`Idempotent-Replayed: true` for a repeated Idempotency-Key). A closed conversation's customer "
                    "is written to in their open conversation, a new one if none is open (the message's "
                    "`conversation` says which). 409 with a code when WeCom would refuse the message now "
                    "(`window_closed`, `no_replies_left`, `no_customer_message`, `answered_in_wecom_client`, "
                    "`app_disabled`, `account_unavailable`); 422 `idempotency_key_reused` for a key used with "
                    "another request.")
    @messages.mapping.post
    def send_message(self, request, pk=None):
        conversation = self._conversation(pk)
        payload = SendSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        text = payload.validated_data["text"]
        claim = None
        header = request.headers.get(IDEMPOTENCY_HEADER)
        if header is not None:
            if not IDEMPOTENCY_KEY.fullmatch(header):
                raise ValidationError({IDEMPOTENCY_HEADER: [_("1 to 255 visible ASCII characters.")]})
            claim = IdempotencyClaim.of(caller=_caller(request.user), header=header, conversation_id=conversation.pk,
                                        text=text)
        try:
            sent = send_from_api(conversation_id=conversation.pk, text=text, claim=claim)
        except SendRefused as refused:
            raise SendRefusedError(refused.message, refused.code) from None
        except IdempotencyKeyReused:
            raise IdempotencyKeyReusedError from None
        body = TranscriptLineSerializer(transcript_lines([sent.message])[0]).data
        if sent.replayed:
            return Response(body, status=status.HTTP_200_OK, headers={REPLAYED_HEADER: "true"})
        return Response(body, status=status.HTTP_201_CREATED)
