"""Query filters of the answering side's lists (django-filter; documented in the schema and docs/API.md)."""

from __future__ import annotations

import datetime

from django import forms
from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField

from conversations.models import FallbackScript, OutboundMessage

INT32 = 2**31 - 1


class IntegerFilter(filters.NumberFilter):
    """A whole number (NumberFilter takes decimals, which an integer column would silently truncate)."""

    field_class = forms.IntegerField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, compared in UTC: PostgreSQL refuses offsets beyond ±15:59 (a 500 otherwise)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.UTC)
        except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is past year 9999 in UTC
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class DateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


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
    enabled = filters.BooleanFilter()
    is_default = filters.BooleanFilter()
    name = filters.CharFilter(lookup_expr="icontains", max_length=100, label="part of the name")
    keyword = filters.CharFilter(method="with_keyword", max_length=50, label="one of the script's keywords")

    class Meta:
        model = FallbackScript
        fields = []

    def with_keyword(self, queryset, name, value):
        return queryset.filter(keywords__contains=[value])
