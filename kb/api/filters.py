"""Query filters of the knowledge list (django-filter; documented in the schema and docs/API.md)."""

from __future__ import annotations

from django.db.models import Q
from django_filters import rest_framework as filters

from kb.models import QUESTION_MAX_LENGTH, TAG_MAX_LENGTH, KnowledgeEntry
from tenants.api_filters import BooleanFilter


class KnowledgeEntryFilter(filters.FilterSet):
    enabled = BooleanFilter()
    tag = filters.CharFilter(method="with_tag", max_length=TAG_MAX_LENGTH, label="one of the entry's tags")
    text = filters.CharFilter(method="with_text", max_length=QUESTION_MAX_LENGTH,
                              label="part of the question or the answer")

    class Meta:
        model = KnowledgeEntry
        fields = []

    def with_tag(self, queryset, name, value):
        return queryset.filter(tags__contains=[value])

    def with_text(self, queryset, name, value):
        return queryset.filter(Q(question__icontains=value) | Q(answer__icontains=value))
