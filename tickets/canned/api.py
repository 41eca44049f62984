"""REST API of canned replies (docs/API.md, "Canned replies"): shared ones (owner null) and agents' own, with
the model's validation (shortcode, variables, one shortcode per scope). The attachment is read-only here:
the API takes JSON bodies only, so files are uploaded in the admin."""

from __future__ import annotations

import copy

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.utils.translation import gettext as _
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from tenants.api_filters import BooleanFilter, IntegerFilter
from tickets.canned.models import TEXT_MAX_LENGTH, CannedReply

INT32 = 2**31 - 1


class CannedAttachmentSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["image", "file"], help_text="how it is sent (WeCom's rules)")


class CannedReplySerializer(serializers.ModelSerializer):
    owner = serializers.IntegerField(
        source="owner_id", allow_null=True, required=False, min_value=1, max_value=INT32,
        help_text="null: shared by every agent of the tenant; else the user id of the agent it belongs to "
                  "(as in /api/agents/{id}/)")
    text = serializers.CharField(max_length=TEXT_MAX_LENGTH, help_text=(
        "the reply; {customer_name} and {agent_name} are filled when an agent picks it (other {…} are refused)"))
    attachment = serializers.SerializerMethodField(help_text="uploaded in the admin; null when none")

    class Meta:
        model = CannedReply
        fields = ["id", "shortcode", "title", "text", "owner", "enabled", "attachment", "usage_count",
                  "created_at", "updated_at"]
        read_only_fields = ["usage_count", "created_at", "updated_at"]
        validators = []  # the model's constraints, checked in validate() with their own messages

    @extend_schema_field(CannedAttachmentSerializer(allow_null=True))
    def get_attachment(self, reply):
        if not reply.attachment:
            return None
        return {"name": reply.attachment_name, "kind": reply.attachment_kind}

    def validate_owner(self, value):
        if value is not None and not get_user_model().objects.filter(pk=value, agent_profile__isnull=False).exists():
            raise serializers.ValidationError(_("No such agent."))
        return value

    def validate(self, attrs):
        reply = copy.copy(self.instance) if self.instance else CannedReply()
        for field, value in attrs.items():
            setattr(reply, field, value)
        try:
            reply.full_clean(exclude=["attachment"] if not reply.attachment else None)
        except DjangoValidationError as exc:
            errors = exc.message_dict
            if NON_FIELD_ERRORS in errors:  # a constraint: one shortcode per scope
                errors.setdefault("shortcode", []).extend(errors.pop(NON_FIELD_ERRORS))
            raise serializers.ValidationError(errors) from None
        return attrs


class CannedReplyFilter(filters.FilterSet):
    owner = IntegerFilter(field_name="owner_id", min_value=1, max_value=INT32, label="an agent's user id: their own")
    shared = BooleanFilter(method="with_shared", label="true: the shared ones (owner null); false: agents' own")
    enabled = BooleanFilter()
    text = filters.CharFilter(method="with_text", max_length=100, label="part of the shortcode, title or text")

    class Meta:
        model = CannedReply
        fields = []

    def with_shared(self, queryset, name, value):
        return queryset.filter(owner__isnull=value)

    def with_text(self, queryset, name, value):
        return queryset.filter(Q(shortcode__icontains=value) | Q(title__icontains=value) | Q(text__icontains=value))


class CannedReplyViewSet(viewsets.ModelViewSet):
    """The tenant's canned replies (快捷回复), shared and agents' own, as the agent screens offer them."""

    api_scope = "tickets"
    serializer_class = CannedReplySerializer
    queryset = CannedReply.objects.order_by("id")
    filterset_class = CannedReplyFilter
    ordering_fields = ["id", "shortcode", "usage_count", "created_at", "updated_at"]
    lookup_value_regex = r"[0-9]+"
