"""REST API of the knowledge base: entries (CRUD through the services) and a search endpoint."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from kb.models import KnowledgeEntry
from kb.selectors import search_knowledge
from kb.services import EntryInvalid, create_entry, delete_entries, update_entry


class EntrySerializer(serializers.ModelSerializer):
    tags = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        model = KnowledgeEntry
        fields = ["id", "question", "answer", "tags", "enabled", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class KnowledgeEntryViewSet(viewsets.ModelViewSet):
    serializer_class = EntrySerializer
    queryset = KnowledgeEntry.objects.order_by("id")

    def create(self, request, *args, **kwargs):
        data = self._validated(request)
        try:
            entry = create_entry(question=data["question"], answer=data["answer"], tags=data.get("tags", []),
                                 enabled=data.get("enabled", True))
        except EntryInvalid as exc:
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        return Response(EntrySerializer(entry).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        entry = self.get_object()
        data = {**EntrySerializer(entry).data, **self._validated(request, partial=kwargs.get("partial", False))}
        try:
            entry = update_entry(entry=entry, question=data["question"], answer=data["answer"], tags=data["tags"],
                                 enabled=data["enabled"])
        except EntryInvalid as exc:
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        return Response(EntrySerializer(entry).data)

    def destroy(self, request, *args, **kwargs):
        delete_entries(entry_ids=[self.get_object().pk])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[OpenApiParameter("q", str, required=True), OpenApiParameter("limit", int)])
    @action(detail=False, methods=["get"])
    def search(self, request):
        query = request.query_params.get("q", "").strip()
        if not query:
            return Response({"detail": "Give the question to search for as ?q=..."}, status=400)
        try:
            limit = min(max(int(request.query_params.get("limit", 5)), 1), 50)
        except ValueError:
            return Response({"detail": "limit must be a number."}, status=400)
        matches = search_knowledge(query, limit=limit)
        return Response([{"entry": EntrySerializer(m.entry).data, "score": round(m.score, 4),
                          "matched_terms": m.matched_terms} for m in matches])

    @staticmethod
    def _validated(request, *, partial: bool = False) -> dict:
        serializer = EntrySerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)
