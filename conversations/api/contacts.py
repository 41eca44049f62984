"""REST API of contacts: list and search them, read one, keep its notes and custom attributes."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from conversations.api.resource_filters import ContactFilter
from conversations.models import Contact, WeComApp
from conversations.selectors_api import access_contact, contacts
from conversations.services.contacts import (
    MAX_NOTES_LENGTH,
    ContactInvalid,
    attribute_patch_problems,
    update_contact,
)


class ContactSerializer(serializers.ModelSerializer):
    app_name = serializers.CharField(source="app.name", read_only=True)
    channel = serializers.ChoiceField(choices=WeComApp.Kind.choices, read_only=True,
                                      help_text="app: a self-built app's member; kf: a 微信客服 customer")
    attributes = serializers.DictField(child=serializers.JSONField(), read_only=True,
                                       help_text="custom attributes: names to strings, numbers or booleans")
    avatar_url = serializers.CharField(read_only=True, help_text="the avatar WeCom gives (its URL); empty when none "
                                       "(self-built apps created after 2022-06 get none)")
    profile_fetched_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                                   help_text="when WeCom last gave the name and avatar")
    open_conversation = serializers.IntegerField(source="open_conversation_id", allow_null=True, read_only=True,
                                                 help_text="the id of its open conversation; null when none is open")

    class Meta:
        model = Contact
        fields = ["id", "app", "app_name", "channel", "external_id", "open_kfid", "display_name", "avatar_url",
                  "profile_fetched_at", "scene", "scene_param", "notes", "attributes", "open_conversation",
                  "created_at"]
        read_only_fields = fields


class ContactUpdateSerializer(serializers.Serializer):
    notes = serializers.CharField(required=False, allow_blank=True, max_length=MAX_NOTES_LENGTH,
                                  trim_whitespace=False, help_text="replaces the notes")
    attributes = serializers.DictField(
        child=serializers.JSONField(allow_null=True), required=False,
        help_text="merged into the custom attributes: a name with a value sets it, with null removes it; names "
                  "of 1-64 characters, values a string (up to 1,000 characters), a number or a boolean; at most "
                  "50 attributes and 16 KB per contact")

    def validate_attributes(self, value):
        problems = attribute_patch_problems(value)
        if problems:
            raise ValidationError(problems)
        return value


class ContactViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tenant's contacts (customers as seen through one WeCom app or 微信客服 account)."""

    api_scope = "contacts"
    serializer_class = ContactSerializer
    filterset_class = ContactFilter
    ordering_fields = ["id", "created_at", "display_name"]
    ordering = ["id"]
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        return contacts()

    @extend_schema(request=ContactUpdateSerializer, responses=ContactSerializer,
                   description="Replace the notes and/or merge custom attributes (JSON merge patch: null removes "
                               "an attribute).")
    def partial_update(self, request, pk=None):
        contact = self.get_object()
        payload = ContactUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            update_contact(contact_id=contact.pk, **payload.validated_data)
        except ContactInvalid as exc:
            raise ValidationError(exc.errors) from None
        return Response(ContactSerializer(access_contact(contact.pk)).data)
