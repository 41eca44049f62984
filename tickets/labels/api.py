"""REST API of labels (docs/API.md, "Labels"): the tenant's labels (list, create, edit, delete; the model's
validation: a trimmed name no other label has in any case, a #rrggbb colour), and a conversation's labels
(read, put one on, take one off: the agent screens' service, so the active ticket follows and the timeline and
the screens are told)."""

from __future__ import annotations

import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count
from django.utils.translation import gettext as _
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.models import Conversation
from tickets.api.serializers import LabelRefSerializer
from tickets.api.views import CONFLICT, acting, refused
from tickets.labels.models import COLOR_VALIDATOR, Label
from tickets.labels.selectors import labels_by_conversation
from tickets.labels.services import label_conversation, unlabel_conversation
from tickets.services import ActionRefused

BIGINT = 2**63 - 1


class LabelSerializer(serializers.ModelSerializer):
    # The model's validator as the schema's pattern, so a client knows the format before it is refused.
    color = serializers.RegexField(COLOR_VALIDATOR.regex, max_length=7, required=False,
                                   help_text="#rrggbb (stored in lower case); default #607d8b")
    conversations_count = serializers.IntegerField(read_only=True, help_text="conversations carrying it")

    class Meta:
        model = Label
        fields = ["id", "name", "color", "description", "conversations_count", "created_at"]
        read_only_fields = ["created_at"]
        validators = []  # the model's, checked in validate() with their own messages

    def validate(self, attrs):
        label = copy.copy(self.instance) if self.instance else Label()
        for field, value in attrs.items():
            setattr(label, field, value)
        try:
            label.full_clean(validate_unique=False)  # clean() refuses a name taken in any case
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        return {**attrs, "name": label.name, "color": label.color}


class LabelFilter(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains", max_length=40, label="part of the name")

    class Meta:
        model = Label
        fields = []


class LabelViewSet(viewsets.ModelViewSet):
    """The tenant's labels (标签), which agents and integrators put on conversations and their tickets."""

    api_scope = "tickets"
    serializer_class = LabelSerializer
    queryset = Label.objects.annotate(conversations_count=Count("conversations", distinct=True)).order_by("id")
    filterset_class = LabelFilter
    ordering_fields = ["id", "name", "created_at"]
    lookup_value_regex = r"[0-9]+"

    def perform_create(self, serializer):
        serializer.save()
        serializer.instance.conversations_count = 0

    def perform_update(self, serializer):
        serializer.save()
        serializer.instance.conversations_count = serializer.instance.conversations.count()


class ConversationLabelsSerializer(serializers.Serializer):
    conversation = serializers.IntegerField()
    labels = LabelRefSerializer(many=True, help_text="by name")
    changed = serializers.BooleanField(help_text="false when the label was already on (or off) it")


class AddLabelSerializer(serializers.Serializer):
    label = serializers.IntegerField(min_value=1, max_value=BIGINT, help_text="the label's id (/api/labels/)")

    def validate_label(self, value):
        if not Label.objects.filter(pk=value).exists():
            raise serializers.ValidationError(_("No such label."))
        return value


class ConversationLabelsBase(APIView):
    api_scope = "conversations"

    @staticmethod
    def _conversation_id(pk: int) -> int:
        if not Conversation.objects.filter(pk=pk).exists():
            raise NotFound()
        return pk

    @staticmethod
    def _answer(conversation_id: int, changed: bool) -> Response:
        body = {"conversation": conversation_id, "labels": labels_by_conversation([conversation_id])[conversation_id],
                "changed": changed}
        return Response(ConversationLabelsSerializer(body).data)


class ConversationLabelsView(ConversationLabelsBase):
    """A conversation's labels; putting one on also puts it on the conversation's active ticket."""

    @extend_schema(responses=ConversationLabelsSerializer, description="The conversation's labels.")
    def get(self, request, pk: int):
        return self._answer(self._conversation_id(pk), False)

    @extend_schema(request=AddLabelSerializer, responses={200: ConversationLabelsSerializer, 409: CONFLICT},
                   description="Put a label on the conversation and its active ticket (the ticket's timeline "
                               "records it); putting on a label it has changes nothing (`changed`: false). 409 "
                               "`too_many_labels` beyond 20.")
    def post(self, request, pk: int):
        conversation_id = self._conversation_id(pk)
        payload = AddLabelSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            changed = label_conversation(conversation_id=conversation_id, label_id=payload.validated_data["label"],
                                         by=acting(request))
        except ActionRefused as exc:
            raise refused(exc) from None
        return self._answer(conversation_id, changed)


class ConversationLabelView(ConversationLabelsBase):
    @extend_schema(request=None, responses=ConversationLabelsSerializer,
                   description="Take the label off the conversation and its active ticket; a label it does not "
                               "carry changes nothing (`changed`: false).")
    def delete(self, request, pk: int, label_id: int):
        conversation_id = self._conversation_id(pk)
        if not Label.objects.filter(pk=label_id).exists():
            raise NotFound()
        try:
            changed = unlabel_conversation(conversation_id=conversation_id, label_id=label_id, by=acting(request))
        except ActionRefused as exc:
            raise refused(exc) from None
        return self._answer(conversation_id, changed)
