from django.contrib import admin

from tickets.models import Ticket


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "status", "reason", "subject", "created_at"]
    list_filter = ["status", "reason"]
    search_fields = ["subject", "conversation__contact__external_id"]
    readonly_fields = ["conversation", "reason", "created_at", "updated_at"]
