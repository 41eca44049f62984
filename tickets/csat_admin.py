"""Satisfaction surveys in the admin (registered by tickets/admin.py): the tenant's settings (one object, the
model validates the window and the question), the surveys as a read-only list, and each ticket's survey on
its page."""

from __future__ import annotations

from django.contrib import admin

from config.admin_singleton import SingletonModelAdmin
from tickets.csat_models import Survey

SURVEY_FIELDS = ["status", "reason", "scale", "sent_at", "expires_at", "score", "label", "answered_at", "agent"]


class CsatSettingsAdmin(SingletonModelAdmin):
    fields = ["enabled", "scale", "question", "thanks", "window_hours"]


class SurveyAdmin(admin.ModelAdmin):
    list_display = ["ticket", "status", "label", "score", "agent", "sent_at", "answered_at", "reason"]
    list_filter = ["status", "scale", "score", "agent"]
    fields = ["ticket", *SURVEY_FIELDS]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class SurveyInline(admin.StackedInline):
    model = Survey
    fields = SURVEY_FIELDS
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False
