"""Tenant admin of the customers' ratings of answers (conversations.services.answer_feedback): read-only, newest
first, filtered by rating; each row links the rated answer's knowledge entry, so an operator goes from a 👎 to
the entry that needs work. Ratings are written by customers only."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from conversations.models import AnswerFeedback


@admin.register(AnswerFeedback)
class AnswerFeedbackAdmin(admin.ModelAdmin):
    list_display = ["updated_at", "rating", "answer_text", "entry", "contact"]
    list_filter = ["rating", "updated_at"]
    search_fields = ["answer__text", "contact__external_id", "contact__display_name"]
    list_select_related = ["answer", "contact", "knowledge_entry"]
    fields = ["rating", "answer_text", "entry", "contact", "created_at", "updated_at"]
    readonly_fields = fields
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("answer"))
    def answer_text(self, obj):
        text = obj.answer.text
        return text if len(text) <= 80 else text[:80] + "…"

    @admin.display(description=gettext_lazy("knowledge entry"))
    def entry(self, obj):
        if obj.knowledge_entry is None:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:kb_knowledgeentry_change",
                                                          args=[obj.knowledge_entry_id]), obj.knowledge_entry)
