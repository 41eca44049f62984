"""The conversation search through the REST API (scope `conversations`, read): the agent page's filters
(tickets/search/forms.py) over the whole tenant, as the conversation list sees it; JSON in pages, or every match
as the same CSV as the page's export (docs/API.md, "Searching conversations")."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.views import APIView

from config.api_schema import ValidationErrorSerializer
from conversations.models import Conversation, Message, WeComApp
from tickets.api.serializers import LabelRefSerializer
from tickets.search.export import TooManyToExport, csv_response, export_ids
from tickets.search.forms import ConversationSearchForm, tenant_time_zone
from tickets.search.selectors import SearchCriteria, SearchResult, results, search, with_result_relations
from tickets.search.views import conversation_link

PARAMETERS = [
    OpenApiParameter("q", OpenApiTypes.STR, description="message text: every word (segmented like the knowledge "
                                                         "base) in one message of the conversation; up to 200 "
                                                         "characters"),
    OpenApiParameter("customer", OpenApiTypes.STR, description="part of the customer's name or WeCom id"),
    OpenApiParameter("agent", OpenApiTypes.INT, description="the id of the user (agent) who owns it"),
    OpenApiParameter("label", OpenApiTypes.INT, description="a label's id"),
    OpenApiParameter("state", OpenApiTypes.STR, enum=Conversation.State.values),
    OpenApiParameter("channel", OpenApiTypes.STR, enum=WeComApp.Kind.values,
                     description="app: with a self-built app's member; kf: with a 微信客服 customer"),
    OpenApiParameter("app", OpenApiTypes.INT, description="the WeCom app's id"),
    OpenApiParameter("from", OpenApiTypes.DATE, description="active on or after this day (tenant's time zone); "
                                                              "with q: the matching message is"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="active on or before this day (tenant's time zone)"),
]


class ShownMessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    author = serializers.ChoiceField(choices=Message.Author.choices)
    text = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class SearchResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="conversation.pk")
    state = serializers.ChoiceField(source="conversation.state", choices=Conversation.State.choices)
    app = serializers.IntegerField(source="conversation.contact.app_id")
    contact = serializers.IntegerField(source="conversation.contact_id")
    customer_name = serializers.CharField()
    customer_id = serializers.CharField(help_text="the customer's UserID or external_userid")
    agent = serializers.IntegerField(source="conversation.agent_id", allow_null=True)
    agent_name = serializers.CharField(allow_blank=True, help_text="empty when nobody owns it")
    labels = LabelRefSerializer(many=True)
    started_at = serializers.DateTimeField(source="conversation.started_at")
    last_message_at = serializers.DateTimeField(source="conversation.last_message_at")
    message = ShownMessageSerializer(allow_null=True, help_text="its latest message matching q (without q: its "
                                                                "latest message)")
    snippet = serializers.CharField(source="snippet.text", allow_blank=True,
                                    help_text="the part of the message around the first hit")
    highlights = serializers.SerializerMethodField(help_text="[start, end) of each hit in snippet")

    def get_highlights(self, result: SearchResult) -> list[list[int]]:
        return [[start, end] for start, end in result.snippet.highlights]


class TooManyToExportError(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "too_many"


def _criteria(request) -> SearchCriteria:
    form = ConversationSearchForm(request.query_params)
    if not form.is_valid():
        raise ValidationError({name: [str(error) for error in errors] for name, errors in form.errors.items()})
    return form.criteria()


class ConversationSearchView(GenericAPIView):
    """Conversations whose messages contain every word of `q` (and the other filters), latest message first."""

    api_scope = "conversations"
    filter_backends = []
    serializer_class = SearchResultSerializer

    @extend_schema(parameters=PARAMETERS,
                   responses={200: SearchResultSerializer(many=True), 400: ValidationErrorSerializer})
    def get(self, request):
        criteria = _criteria(request)
        page = self.paginate_queryset(with_result_relations(search(criteria, profile=None)))
        return self.get_paginated_response(SearchResultSerializer(results(page, criteria), many=True).data)


class ConversationSearchExportView(APIView):
    """The same search as CSV (UTF-8 with a byte-order mark, formula-safe cells), every match, streamed."""

    api_scope = "conversations"

    @extend_schema(parameters=PARAMETERS, responses={
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="one line per conversation"),
        400: ValidationErrorSerializer})
    def get(self, request):
        criteria = _criteria(request)
        try:
            ids = export_ids(search(criteria, profile=None))
        except TooManyToExport as exc:
            raise TooManyToExportError(str(exc)) from None
        return csv_response(request, ids, criteria, zone=tenant_time_zone(), link=conversation_link(request))
