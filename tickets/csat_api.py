"""REST API of satisfaction surveys (docs/API.md, "Satisfaction surveys"): the tenant's survey settings, one
object (GET /api/csat-settings/, PATCH /api/csat-settings/update/, scope "settings"), shaped like the desk
settings; each ticket's survey is a field of the ticket (tickets/api/serializers.py)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from tenants.api_views import SingletonSettingsViewSet, settings_schema
from tickets.csat_models import CsatSettings, Survey


@extend_schema_serializer(many=False)  # one object, though served by the viewset's list route
class CsatSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = CsatSettings
        exclude = ["id"]
        extra_kwargs = {"window_hours": {"min_value": 1, "max_value": 48}}

    def validate_question(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The question cannot be empty.")
        return value.strip()


class SurveySerializer(serializers.ModelSerializer):
    """A ticket's satisfaction survey: sent (or why not) and the customer's answer."""

    class Meta:
        model = Survey
        fields = ["status", "reason", "scale", "sent_at", "expires_at", "score", "label", "answered_at"]
        read_only_fields = fields


@settings_schema(CsatSettingsSerializer)
class CsatSettingsViewSet(SingletonSettingsViewSet):
    """The tenant's satisfaction survey settings (a single object)."""

    serializer_class = CsatSettingsSerializer
