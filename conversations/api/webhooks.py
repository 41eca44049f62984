"""REST API of webhooks out (docs/API.md, "Webhooks"): the tenant's endpoints (the signing secret is returned
on create and on rotation only), their deliveries with filters, and re-sending dead ones. Writes go through
conversations/services/webhooks.py, the same services as the admin."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from config.api_schema import ErrorSerializer
from conversations.api.views import ResendResultSerializer, ResendSerializer
from conversations.services.webhooks import (
    WebhookRefused,
    create_endpoint,
    delete_endpoint,
    resend_dead_deliveries,
    rotate_secret,
    send_test_event,
    update_endpoint,
)
from conversations.webhooks.models import TEST_EVENT, EventType, WebhookDelivery, WebhookEndpoint, webhook_url_problems
from tenants.api_filters import BooleanFilter, DateTimeFilter, IntegerFilter

BIGINT = 2**63 - 1


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices), min_length=1,
                                   max_length=len(EventType.choices), help_text="the events it receives")
    url = serializers.URLField(max_length=500, help_text="http(s); public addresses only (SSRF policy)")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "events", "is_active", "disabled_reason", "disabled_at",
                  "consecutive_failures", "consecutive_dead", "created_at"]
        read_only_fields = ["disabled_reason", "disabled_at", "consecutive_failures", "consecutive_dead",
                            "created_at"]

    def validate_url(self, value: str) -> str:
        problems = webhook_url_problems(value)
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate_events(self, value: list[str]) -> list[str]:
        return sorted(set(value))


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="the signing secret; shown now only (rotate to change)")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="the new signing secret; shown now only")


class TestEventSerializer(serializers.Serializer):
    event_id = serializers.UUIDField(help_text="the X-WecomDesk-Event-Id of the test event")
    delivery_id = serializers.IntegerField()


def _saved(save):
    """A model validation error (the services' full_clean) as the API's 400."""
    try:
        return save()
    except DjangoValidationError as exc:
        raise ApiValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None


class WebhookEndpointFilter(filters.FilterSet):
    is_active = BooleanFilter()
    event = filters.ChoiceFilter(choices=EventType.choices, method="subscribed_to", label="subscribed to this event")

    class Meta:
        model = WebhookEndpoint
        fields = []

    def subscribed_to(self, queryset, name, value):
        return queryset.filter(events__contains=[value])


class WebhookEndpointViewSet(viewsets.ModelViewSet):
    """The tenant's webhook endpoints. Turning `is_active` on again re-enables one that was disabled."""

    api_scope = "webhooks"
    serializer_class = WebhookEndpointSerializer
    queryset = WebhookEndpoint.objects.all()
    filterset_class = WebhookEndpointFilter
    ordering_fields = ["id", "created_at"]
    ordering = ["id"]

    @extend_schema(request=WebhookEndpointSerializer, responses={201: WebhookEndpointCreatedSerializer},
                   description="Create an endpoint; the response carries its signing secret (shown this once).")
    def create(self, request, *args, **kwargs):
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint = _saved(lambda: create_endpoint(**payload.validated_data))
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = _saved(lambda: update_endpoint(endpoint=serializer.instance,
                                                             **serializer.validated_data))

    def perform_destroy(self, instance):
        delete_endpoint(endpoint=instance)

    @extend_schema(request=None, responses={200: SecretSerializer},
                   description="A new signing secret, used from the next attempt on; the old one stops working.")
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        return Response({"secret": rotate_secret(endpoint=self.get_object())})

    @extend_schema(request=None, responses={
        202: TestEventSerializer,
        409: OpenApiResponse(ErrorSerializer, description="The endpoint is disabled (code `endpoint_disabled`)")},
        description="Send a `webhook.test` event to this endpoint only; see its delivery under webhook-deliveries.")
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        try:
            event = send_test_event(endpoint=self.get_object())
        except WebhookRefused as exc:
            raise Conflict(detail=str(exc), code="endpoint_disabled") from None
        return Response({"event_id": event.event_id, "delivery_id": event.deliveries.get().pk},
                        status=status.HTTP_202_ACCEPTED)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="event.event_id", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "endpoint", "event_id", "event_type", "status", "attempts", "next_attempt_at",
                  "last_status_code", "last_error", "created_at", "delivered_at"]
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    payload = serializers.JSONField(source="event.payload", read_only=True, help_text="the event's `data`")

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "payload"]
        read_only_fields = fields


class WebhookDeliveryFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=WebhookDelivery.Status.choices)
    endpoint = IntegerFilter(field_name="endpoint_id", min_value=1, max_value=BIGINT, label="the endpoint's id")
    event_type = filters.ChoiceFilter(field_name="event__type", choices=[*EventType.choices, (TEST_EVENT, TEST_EVENT)],
                                      label="the event's type")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte", label="created at or after (ISO 8601)")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt", label="created before (ISO 8601)")

    class Meta:
        model = WebhookDelivery
        fields = []


class WebhookDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Each event's delivery to each endpoint: pending, retrying, delivered or dead; re-send dead ones."""

    api_scope = "webhooks"
    queryset = WebhookDelivery.objects.select_related("event")
    filterset_class = WebhookDeliveryFilter
    ordering_fields = ["id", "created_at", "attempts"]
    ordering = ["-id"]

    def get_serializer_class(self):
        return WebhookDeliveryDetailSerializer if self.action == "retrieve" else WebhookDeliverySerializer

    @extend_schema(request=ResendSerializer,
                   responses={200: ResendResultSerializer, 409: ResendResultSerializer},
                   description="Re-send dead deliveries by id (same event id, attempts from 1): 200 when at least "
                               "one was re-sent, 409 when none was.")
    @action(detail=False, methods=["post"])
    def resend(self, request):
        payload = ResendSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        ids = payload.validated_data["ids"]
        known = set(WebhookDelivery.objects.filter(pk__in=ids).values_list("pk", flat=True))
        resent, refused = resend_dead_deliveries(ids=ids)
        refused += [f"#{pk} not found" for pk in ids if pk not in known]
        code = status.HTTP_200_OK if resent else status.HTTP_409_CONFLICT
        return Response({"resent": resent, "refused": refused}, status=code)
