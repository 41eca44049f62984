"""Tenant admin of the audit log: read-only, filtered by actor, action and date."""

from __future__ import annotations

from django.contrib import admin

from conversations.models import AuditLogEntry


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "action", "target", "request_id"]
    list_filter = ["actor", "action", "at"]
    date_hierarchy = "at"
    search_fields = ["actor", "action", "target", "request_id", "trace_id"]
    readonly_fields = ["at", "actor", "action", "target", "detail", "request_id", "trace_id"]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
