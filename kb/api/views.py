"""REST API of the knowledge base: entries (CRUD through the services) and a search endpoint."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from kb.api.filters import KnowledgeEntryFilter
from kb.models import QUESTION_MAX_LENGTH, KnowledgeEntry
from kb.selectors import search_knowledge
from kb.services import EntryInvalid, create_entry, delete_entries, update_entry


class EntrySerializer(serializers.ModelSerializer):
    tags = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        model = KnowledgeEntry
        fields = ["id", "question", "answer", "tags", "enabled", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=QUESTION_MAX_LENGTH, help_text="the customer's question")
    limit = serializers.IntegerField(min_value=1, max_value=50, default=5)


class SearchMatchSerializer(serializers.Serializer):
    entry = EntrySerializer()
    score = serializers.FloatField(help_text="0 to 1, higher is closer")
    matched_terms = serializers.ListField(child=serializers.CharField())


class KnowledgeEntryViewSet(viewsets.ModelViewSet):
    """The tenant's knowledge entries (written through kb.services, so they are indexed and embedded)."""

    api_scope = "knowledge"
    serializer_class = EntrySerializer
    queryset = KnowledgeEntry.objects.order_by("id")
    filterset_class = KnowledgeEntryFilter
    ordering_fields = ["id", "created_at", "updated_at", "question"]

    def create(self, request, *args, **kwargs):
        data = self._validated(request)
        try:
            entry = create_entry(question=data["question"], answer=data["answer"], tags=data.get("tags", []),
                                 enabled=data.get("enabled", True))
        except EntryInvalid as exc:
            raise _invalid(exc) from None
        return Response(EntrySerializer(entry).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        entry = self.get_object()
        data = {**EntrySerializer(entry).data, **self._validated(request, partial=kwargs.get("partial", False))}
        try:
            entry = update_entry(entry=entry, question=data["question"], answer=data["answer"], tags=data["tags"],
                                 enabled=data["enabled"])
        except EntryInvalid as exc:
            raise _invalid(exc) from None
        return Response(EntrySerializer(entry).data)

    def destroy(self, request, *args, **kwargs):
        delete_entries(entry_ids=[self.get_object().pk])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[SearchQuerySerializer], responses=SearchMatchSerializer(many=True),
                   description="The entries closest to a question, best first (enabled entries only).")
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def search(self, request):
        params = SearchQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        matches = search_knowledge(params.validated_data["q"].strip(), limit=params.validated_data["limit"])
        return Response([{"entry": EntrySerializer(m.entry).data, "score": round(m.score, 4),
                          "matched_terms": m.matched_terms} for m in matches])

    @staticmethod
    def _validated(request, *, partial: bool = False) -> dict:
        serializer = EntrySerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


def _invalid(exc: EntryInvalid) -> ValidationError:
    """The services' field problems as the API's validation error (docs/API.md)."""
    return ValidationError({field: [message] for field, message in exc.errors.items()})
