"""REST API of inbound messages: everything WeCom told us (customer messages, events), with each one's trace from
its callback to the delivery of its replies. (`messages/<id>/trace/` also finds a message by its trace id.)"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.response import Response

from conversations.api.resource_filters import InboundMessageFilter
from conversations.api.views import MessageTraceSerializer
from conversations.models import InboundMessage
from conversations.selectors import message_trace
from conversations.selectors_api import inbound_messages


class InboundMessageSerializer(serializers.ModelSerializer):
    has_media = serializers.SerializerMethodField(help_text="a picture, voice, video or file was stored")

    class Meta:
        model = InboundMessage
        fields = ["id", "app", "source", "msg_type", "event", "sender", "open_kfid", "origin", "content", "sent_at",
                  "received_at", "status", "processed_at", "trace_id", "has_media", "media_content_type", "media_size",
                  "media_error"]
        read_only_fields = fields

    def get_has_media(self, inbound) -> bool:
        return bool(inbound.media)


class InboundMessageDetailSerializer(InboundMessageSerializer):
    trace = MessageTraceSerializer(source="api_trace", read_only=True,
                                   help_text="its path from the callback to the delivery of its replies")

    class Meta(InboundMessageSerializer.Meta):
        fields = [*InboundMessageSerializer.Meta.fields, "trace"]
        read_only_fields = fields


class InboundMessageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """What WeCom sent us, newest first."""

    api_scope = "conversations"
    serializer_class = InboundMessageSerializer
    filterset_class = InboundMessageFilter
    ordering_fields = ["id", "received_at"]
    ordering = ["-id"]

    def get_queryset(self):
        return inbound_messages()

    @extend_schema(responses=InboundMessageDetailSerializer)
    def retrieve(self, request, pk=None):
        inbound = self.get_object()
        inbound.api_trace = message_trace(inbound)
        return Response(InboundMessageDetailSerializer(inbound).data)
