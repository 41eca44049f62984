"""REST API of the answering side: dead letters (list, re-send), fallback scripts, desk settings, and the
trace of a message (callback to delivery)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema, extend_schema_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.api.filters import DeadLetterFilter, FallbackScriptFilter
from conversations.models import DeskSettings, FallbackScript, OutboundMessage
from conversations.selectors import find_inbound, message_trace
from conversations.services.answer_feedback import feedback_keyword_problems
from conversations.services.inactivity import inactivity_problems
from conversations.services.menus import items_from_setting, menu_problems, welcome_items
from conversations.services.outbound import resend_dead_letters
from conversations.vocabulary import Stage
from tenants.api_views import SingletonSettingsViewSet, settings_schema


class OutboundSerializer(serializers.ModelSerializer):
    recipient = serializers.CharField(source="contact.external_id", read_only=True)

    class Meta:
        model = OutboundMessage
        fields = ["id", "recipient", "author", "part", "parts_total", "content", "status", "attempts",
                  "last_errcode", "last_error", "next_attempt_at", "wecom_msgid", "trace_id", "created_at",
                  "sent_at"]
        read_only_fields = fields


class ResendSerializer(serializers.Serializer):
    """The ids of dead rows to re-send (dead letters of the ledger, dead webhook deliveries)."""

    ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), min_length=1,
                                max_length=1000)


class ResendResultSerializer(serializers.Serializer):
    resent = serializers.IntegerField(help_text="how many are pending delivery again")
    refused = serializers.ListField(child=serializers.CharField(), help_text="why the others were not re-sent")


class DeadLetterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Outbound messages that went dead, with the reason and attempts; re-send one or many."""

    api_scope = "deliveries"
    serializer_class = OutboundSerializer
    queryset = OutboundMessage.objects.filter(status=OutboundMessage.Status.DEAD).select_related("contact")
    filterset_class = DeadLetterFilter
    ordering_fields = ["id", "created_at", "attempts"]
    ordering = ["id"]

    @extend_schema(request=ResendSerializer, responses={200: ResendResultSerializer, 409: ResendResultSerializer},
                   description="Re-send dead rows by id: 200 when at least one was re-sent, 409 when none was.")
    @action(detail=False, methods=["post"])
    def resend(self, request):
        payload = ResendSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        ids = payload.validated_data["ids"]
        known = set(OutboundMessage.objects.filter(pk__in=ids).values_list("pk", flat=True))
        resent, refused = resend_dead_letters(ids=ids)
        refused += [f"#{pk} not found" for pk in ids if pk not in known]
        code = status.HTTP_200_OK if resent else status.HTTP_409_CONFLICT
        return Response({"resent": resent, "refused": refused}, status=code)


class FallbackScriptSerializer(serializers.ModelSerializer):
    keywords = serializers.ListField(child=serializers.CharField(max_length=50), required=False)

    class Meta:
        model = FallbackScript
        fields = ["id", "name", "keywords", "text", "is_default", "enabled", "used_count"]
        read_only_fields = ["used_count"]


class FallbackScriptViewSet(viewsets.ModelViewSet):
    """The tenant's fallback scripts."""

    api_scope = "settings"
    serializer_class = FallbackScriptSerializer
    queryset = FallbackScript.objects.all()
    filterset_class = FallbackScriptFilter
    ordering_fields = ["id", "name", "used_count"]
    ordering = ["-is_default", "name", "id"]


@extend_schema_serializer(many=False)  # one object, though served by the viewset's list route
class DeskSettingsSerializer(serializers.ModelSerializer):
    handoff_keywords = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    feedback_helpful_keywords = serializers.ListField(child=serializers.CharField(max_length=50), required=False,
                                                      max_length=50)
    feedback_unhelpful_keywords = serializers.ListField(child=serializers.CharField(max_length=50), required=False,
                                                        max_length=50)

    class Meta:
        model = DeskSettings
        exclude = ["id"]
        extra_kwargs = {name: {"min_value": 1} for name in (
            "conversation_idle_minutes", "context_turns", "user_rate_limit", "user_rate_window_seconds",
            "tenant_rate_limit", "tenant_rate_window_seconds", "knowledge_top_k", "max_consecutive_fallbacks",
            "inactivity_warn_minutes", "inactivity_close_minutes")}
        extra_kwargs["knowledge_min_score"] = {"min_value": 0.0, "max_value": 1.0}

    def validate_welcome_menu(self, value):
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise serializers.ValidationError('A list of {"id", "content"} items.')
        return [{"id": str(item.get("id", "")).strip(), "content": str(item.get("content", "")).strip()}
                for item in value]

    def validate(self, attrs):
        # The welcome menu as it will be sent (welcome as head, "转人工客服" added): what WeCom would refuse.
        current = self.instance
        raw = attrs.get("welcome_menu", current.welcome_menu if current else [])
        items = welcome_items(items=items_from_setting(raw),
                              with_human=attrs.get("handoff_menu_enabled",
                                                   current.handoff_menu_enabled if current else True))
        problems = menu_problems(head=attrs.get("welcome_message", current.welcome_message if current else ""),
                                 items=items) if items else []
        if problems:
            raise serializers.ValidationError({"welcome_menu": problems})
        keyword_problems = feedback_keyword_problems(
            helpful=attrs.get("feedback_helpful_keywords", current.feedback_helpful_keywords if current else []),
            unhelpful=attrs.get("feedback_unhelpful_keywords", current.feedback_unhelpful_keywords if current else []))
        if keyword_problems:
            raise serializers.ValidationError({field: [problem] for field, problem in keyword_problems.items()})
        inactivity = inactivity_problems(
            enabled=attrs.get("inactivity_close", current.inactivity_close if current else False),
            warn_minutes=attrs.get("inactivity_warn_minutes", current.inactivity_warn_minutes if current else None),
            close_minutes=attrs.get("inactivity_close_minutes", current.inactivity_close_minutes if current else None),
            warning=attrs.get("inactivity_warning", current.inactivity_warning if current else ""))
        if inactivity:
            raise serializers.ValidationError({field: [problem] for field, problem in inactivity.items()})
        return attrs


@settings_schema(DeskSettingsSerializer)
class DeskSettingsViewSet(SingletonSettingsViewSet):
    """The tenant's answering policy (a single object)."""

    serializer_class = DeskSettingsSerializer


class TraceEventSerializer(serializers.Serializer):
    stage = serializers.ChoiceField(choices=Stage.choices)
    label = serializers.CharField()
    at = serializers.DateTimeField()
    since_previous_ms = serializers.IntegerField(allow_null=True, help_text="null for the first stage")
    since_received_ms = serializers.IntegerField()
    outbound_id = serializers.IntegerField(allow_null=True, help_text="the ledger row of a delivery stage")
    detail = serializers.DictField(help_text="errcode, reason, attempts, latency (ms), outcome, ... by stage")


class TraceDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = OutboundMessage
        fields = ["id", "part", "parts_total", "author", "status", "attempts", "last_errcode", "last_error",
                  "created_at", "sent_at"]
        read_only_fields = fields


class MessageTraceSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="inbound.pk")
    trace_id = serializers.UUIDField()
    status = serializers.CharField(source="inbound.status")
    received_at = serializers.DateTimeField()
    total_ms = serializers.SerializerMethodField(help_text="received to the last stage")
    events = TraceEventSerializer(source="steps", many=True)
    deliveries = TraceDeliverySerializer(many=True)

    def get_total_ms(self, trace) -> int:
        return round(trace.total.total_seconds() * 1000)


class MessageTraceView(APIView):
    """The trace of one inbound message of this tenant, from its callback to the delivery of its replies."""

    api_scope = "conversations"

    @extend_schema(
        parameters=[OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH,
                                     description="the inbound message's id, or its trace id (a UUID)")],
        responses={200: MessageTraceSerializer})
    def get(self, request, id: str):
        inbound = find_inbound(id)
        if inbound is None:
            raise NotFound("No message with this id or trace id.")
        return Response(MessageTraceSerializer(message_trace(inbound)).data)
