"""Tenant admin of the human side: agents, ticket policy, tickets with their timeline and SLA state."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from config.admin_singleton import SingletonModelAdmin
from tickets.models import AgentProfile, Ticket, TicketEvent, TicketSettings
from tickets.services import ActionRefused, change_ticket_status


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "display_name", "role", "max_concurrent", "wecom_userid", "is_active"]
    list_filter = ["role", "is_active"]
    search_fields = ["user__username", "display_name", "wecom_userid"]
    autocomplete_fields = ["user"]


@admin.register(TicketSettings)
class TicketSettingsAdmin(SingletonModelAdmin):
    pass


class TicketEventInline(admin.TabularInline):
    model = TicketEvent
    fields = ["created_at", "actor", "kind", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ["id", "subject", "status", "priority", "assignee", "reason", "created_at",
                    "first_response_sla", "resolution_sla"]
    list_filter = ["status", "priority", "reason", "assignee"]
    search_fields = ["subject", "conversation__contact__external_id", "tags"]
    fields = ["conversation", "status", "priority", "tags", "assignee", "reason", "subject", "created_at",
              "first_response_due_at", "first_responded_at", "resolution_due_at", "resolved_at", "closed_at"]
    readonly_fields = ["conversation", "status", "reason", "created_at", "first_response_due_at",
                       "first_responded_at", "resolution_due_at", "resolved_at", "closed_at"]
    inlines = [TicketEventInline]
    actions = ["resolve", "close"]

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("first response"), boolean=True)
    def first_response_sla(self, obj):
        return not obj.first_response_breached

    @admin.display(description=_("resolution"), boolean=True)
    def resolution_sla(self, obj):
        return not obj.resolution_breached

    def _move(self, request, queryset, to):
        done, refused = 0, []
        for ticket in queryset:
            try:
                change_ticket_status(ticket=ticket, to=to, actor=request.user)
                done += 1
            except ActionRefused as exc:
                refused.append(f"#{ticket.pk}: {exc}")
        if done:
            self.message_user(request, _("%(n)d ticket(s) updated.") % {"n": done})
        if refused:
            self.message_user(request, "; ".join(refused), messages.WARNING)

    @admin.action(description=_("Resolve selected tickets"))
    def resolve(self, request, queryset):
        self._move(request, queryset, Ticket.Status.RESOLVED)

    @admin.action(description=_("Close selected tickets"))
    def close(self, request, queryset):
        self._move(request, queryset, Ticket.Status.CLOSED)
