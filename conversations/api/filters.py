"""Query filters of the answering side's lists (django-filter; documented in the schema and docs/API.md)."""

from __future__ import annotations

from django_filters import rest_framework as filters

from conversations.models import FallbackScript, OutboundMessage
from tenants.api_filters import BooleanFilter, DateTimeFilter, IntegerFilter

INT32 = 2**31 - 1


class DeadLetterFilter(filters.FilterSet):
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte", label="created at or after (ISO 8601)")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt", label="created before (ISO 8601)")
    errcode = IntegerFilter(field_name="last_errcode", min_value=-INT32, max_value=INT32,
                            label="WeCom's errcode of the last attempt")
    recipient = filters.CharFilter(field_name="contact__external_id", max_length=128,
                                   label="the customer's UserID or external_userid")

    class Meta:
        model = OutboundMessage
        fields = []


class FallbackScriptFilter(filters.FilterSet):
    enabled = BooleanFilter()
    is_default = BooleanFilter()
    name = filters.CharFilter(lookup_expr="icontains", max_length=100, label="part of the name")
    keyword = filters.CharFilter(method="with_keyword", max_length=50, label="one of the script's keywords")

    class Meta:
        model = FallbackScript
        fields = []

    def with_keyword(self, queryset, name, value):
        return queryset.filter(keywords__contains=[value])
