"""Tenant admin of the unanswered questions (knowledge gaps): the groups with their counts and
examples, a link that opens the knowledge entry's add form filled in from a group, dismiss and reopen.

Groups are made by the collector (conversations.services.knowledge_gaps), never by hand.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from conversations.models import KnowledgeGap
from conversations.services.knowledge_gaps import dismiss_gaps, entry_draft, reopen_gaps


class GapStatusFilter(admin.SimpleListFilter):
    """Open groups first: that is the to-do list; the others one click away."""

    title = gettext_lazy("status")
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request, model_admin):
        return [*KnowledgeGap.Status.choices, (self.ALL, gettext_lazy("All"))]

    def choices(self, changelist):
        current = self.value() or KnowledgeGap.Status.OPEN
        for value, label in self.lookup_choices:
            yield {"selected": current == value, "display": label,
                   "query_string": changelist.get_query_string({self.parameter_name: value})}

    def queryset(self, request, queryset):
        value = self.value() or KnowledgeGap.Status.OPEN
        if value == self.ALL:
            return queryset
        return queryset.filter(status=value) if value in KnowledgeGap.Status.values else queryset.none()


@admin.register(KnowledgeGap)
class KnowledgeGapAdmin(admin.ModelAdmin):
    list_display = ["question", "message_count", "example_questions", "first_seen_at", "last_seen_at", "status",
                    "knowledge"]
    list_filter = [GapStatusFilter]
    search_fields = ["question"]
    fields = ["question", "status", "message_count", "example_questions", "first_seen_at", "last_seen_at",
              "knowledge", "resolved_at"]
    readonly_fields = fields
    actions = ["dismiss", "reopen"]
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("examples"))
    def example_questions(self, obj):
        return format_html("<ul style=\"margin:0;padding-left:1em\">{}</ul>", format_html_join(
            "", "<li>{}</li>", ((example["text"],) for example in obj.examples)))

    @admin.display(description=gettext_lazy("knowledge entry"))
    def knowledge(self, obj):
        if obj.entry_id is not None:
            return format_html('<a href="{}">{}</a>', reverse("admin:kb_knowledgeentry_change", args=[obj.entry_id]),
                               obj.entry)
        if obj.status != KnowledgeGap.Status.OPEN:
            return "—"
        return format_html('<a class="button" href="{}">{}</a>',
                           reverse("admin:conversations_knowledgegap_add_entry", args=[obj.pk]),
                           _("Add to the knowledge base"))

    def get_urls(self):
        return [path("<int:gap_id>/add-entry/", self.admin_site.admin_view(self.add_entry_view),
                     name="conversations_knowledgegap_add_entry"), *super().get_urls()]

    def add_entry_view(self, request, gap_id):
        """The knowledge entry's add form, filled in from the group; saving it resolves the group (kb.origins)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        gap = KnowledgeGap.objects.filter(pk=gap_id).first()
        if gap is None:
            raise Http404
        draft = entry_draft(gap)
        query = urlencode({"question": draft.question, "tags": ", ".join(draft.tags), "origin": f"gap:{gap.pk}"})
        return redirect(f"{reverse('admin:kb_knowledgeentry_add')}?{query}")

    @admin.action(description=gettext_lazy("Dismiss selected questions (noise)"), permissions=["change"])
    def dismiss(self, request, queryset):
        count = dismiss_gaps(gap_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, ngettext("Dismissed %(count)d question.", "Dismissed %(count)d questions.",
                                            count) % {"count": count})

    @admin.action(description=gettext_lazy("Reopen selected questions"), permissions=["change"])
    def reopen(self, request, queryset):
        count = reopen_gaps(gap_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, ngettext("Reopened %(count)d question.", "Reopened %(count)d questions.",
                                            count) % {"count": count})
