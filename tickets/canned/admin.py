"""Admin of canned replies: shared ones (owner empty) for supervisors and operators, and agents' own.
Imported by tickets/admin.py. The model's clean() checks the variables and the attachment."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from tickets.canned.models import CannedReply


class OwnerScopeFilter(admin.SimpleListFilter):
    title = _("scope")
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("shared", _("shared")), ("personal", _("personal"))]

    def queryset(self, request, queryset):
        if self.value() == "shared":
            return queryset.filter(owner__isnull=True)
        if self.value() == "personal":
            return queryset.filter(owner__isnull=False)
        return queryset


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin):
    list_display = ["shortcode", "title", "owner", "enabled", "usage_count", "updated_at"]
    list_filter = [OwnerScopeFilter, "enabled", "owner"]
    search_fields = ["shortcode", "title", "text"]
    fields = ["shortcode", "title", "text", "attachment", "owner", "enabled", "usage_count"]
    readonly_fields = ["usage_count"]
    autocomplete_fields = ["owner"]
