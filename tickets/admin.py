"""Tenant admin of the human side: agents, ticket policy, tickets with their timeline and SLA state."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from config.admin_singleton import SingletonModelAdmin
from kb.services import clean_entry_fields, parse_tags
from tickets.business_hours_admin import BusinessHoursAdmin
from tickets.csat_admin import CsatSettingsAdmin, SurveyAdmin, SurveyInline
from tickets.csat_models import CsatSettings, Survey
from tickets.knowledge_proposals import ProposalRefused, approve_proposal, reject_proposals, update_proposal
from tickets.models import AgentProfile, BusinessHours, KnowledgeProposal, Ticket, TicketEvent, TicketSettings
from tickets.services import ActionRefused, change_ticket_status
from tickets.teams.admin import TeamMembershipInline, TicketSettingsForm


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "display_name", "role", "max_concurrent", "team_names", "wecom_userid", "is_active"]
    list_filter = ["role", "is_active", "teams"]
    search_fields = ["user__username", "display_name", "wecom_userid"]
    autocomplete_fields = ["user"]
    inlines = [TeamMembershipInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("teams")

    @admin.display(description=_("teams"))
    def team_names(self, obj):
        return "、".join(team.name for team in obj.teams.all()) or "—"


@admin.register(TicketSettings)
class TicketSettingsAdmin(SingletonModelAdmin):
    form = TicketSettingsForm


admin.site.register(BusinessHours, BusinessHoursAdmin)
admin.site.register(CsatSettings, CsatSettingsAdmin)
admin.site.register(Survey, SurveyAdmin)


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
    list_filter = ["status", "priority", "reason", "assignee", "labels"]
    search_fields = ["subject", "conversation__contact__external_id", "tags"]
    # Labels are put on by agents with the conversation (the timeline records who): shown here, not edited.
    fields = ["conversation", "status", "priority", "tags", "label_names", "assignee", "reason", "subject",
              "created_at", "first_response_due_at", "first_responded_at", "resolution_due_at", "resolved_at",
              "closed_at"]
    readonly_fields = ["conversation", "status", "label_names", "reason", "created_at", "first_response_due_at",
                       "first_responded_at", "resolution_due_at", "resolved_at", "closed_at"]
    inlines = [TicketEventInline, SurveyInline]
    actions = ["resolve", "close"]

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("labels"))
    def label_names(self, ticket):
        return "、".join(label.name for label in ticket.labels.all()) or "—"

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


class KnowledgeProposalForm(forms.ModelForm):
    tags = forms.CharField(label=_("tags"), required=False, help_text=_("Separated by commas (, or ，)."))

    class Meta:
        model = KnowledgeProposal
        fields = ["question", "answer", "tags"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["tags"] = ", ".join(self.instance.tags or [])

    def clean_tags(self):
        return parse_tags(self.cleaned_data.get("tags"))

    def clean(self):
        cleaned = super().clean()
        _fields, errors = clean_entry_fields(question=cleaned.get("question", ""), answer=cleaned.get("answer", ""),
                                             tags=cleaned.get("tags", []))
        for field, message in errors.items():
            if field not in self.errors:
                self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(KnowledgeProposal)
class KnowledgeProposalAdmin(admin.ModelAdmin):
    """Agents' answers on resolved tickets, for the knowledge base: edit, then approve (the entry is
    created) or reject. Writes go through tickets.knowledge_proposals."""

    form = KnowledgeProposalForm
    change_form_template = "admin/tickets/knowledgeproposal/change_form.html"
    list_display = ["question", "short_answer", "agent", "ticket_link", "status", "created_at", "entry_link"]
    list_filter = ["status"]
    search_fields = ["question", "answer"]
    decided = ["ticket_link", "agent", "status", "entry_link", "created_at", "decided_by", "decided_at"]
    actions = ["approve", "reject"]

    def has_add_permission(self, request):
        return False

    def get_fields(self, request, obj=None):
        return ["question", "answer", "tags", *self.decided]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != KnowledgeProposal.Status.PROPOSED:
            return ["question", "answer", "tags", *self.decided]
        return self.decided

    @admin.display(description=_("answer"))
    def short_answer(self, obj):
        return obj.answer if len(obj.answer) <= 60 else obj.answer[:60] + "…"

    @admin.display(description=_("ticket"))
    def ticket_link(self, obj):
        return format_html('<a href="{}">#{}</a>', reverse("admin:tickets_ticket_change", args=[obj.ticket_id]),
                           obj.ticket_id)

    @admin.display(description=_("knowledge entry"))
    def entry_link(self, obj):
        if obj.entry_id is None:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:kb_knowledgeentry_change", args=[obj.entry_id]),
                           obj.entry)

    def save_model(self, request, obj, form, change):
        try:
            update_proposal(proposal=obj, question=form.cleaned_data["question"], answer=form.cleaned_data["answer"],
                            tags=form.cleaned_data["tags"])
        except ProposalRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def response_change(self, request, obj):
        if "_approve" not in request.POST:
            return super().response_change(request, obj)
        if self._approve_one(request, obj):
            return HttpResponseRedirect(reverse("admin:tickets_knowledgeproposal_changelist"))
        return HttpResponseRedirect(request.path)

    def _approve_one(self, request, proposal) -> bool:
        try:
            entry = approve_proposal(proposal_id=proposal.pk, by=request.user)
        except ProposalRefused as exc:
            self.message_user(request, f"{proposal.question}: {exc}", messages.ERROR)
            return False
        self.message_user(request, format_html(gettext('Added to the knowledge base: <a href="{}">{}</a>'),
                                               reverse("admin:kb_knowledgeentry_change", args=[entry.pk]), entry),
                          messages.SUCCESS)
        return True

    @admin.action(description=_("Approve selected proposals (add them to the knowledge base)"),
                  permissions=["change"])
    def approve(self, request, queryset):
        for proposal in queryset.order_by("pk"):
            self._approve_one(request, proposal)

    @admin.action(description=_("Reject selected proposals"), permissions=["change"])
    def reject(self, request, queryset):
        count = reject_proposals(proposal_ids=queryset.values_list("pk", flat=True), by=request.user)
        self.message_user(request, ngettext("Rejected %(count)d proposal.", "Rejected %(count)d proposals.", count)
                          % {"count": count})


from tickets.canned import admin as canned_admin  # noqa: E402, F401  (registers CannedReply)
from tickets.labels import admin as labels_admin  # noqa: E402, F401  (registers Label)
