"""The teams (技能组) in the tenant admin: who answers which kind of question, how conversations find them.
Registered by tickets/admin.py."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import connection
from django.utils.translation import gettext_lazy as _

from conversations.admin import KeywordListField
from tickets import presence
from tickets.teams.models import Team
from tickets.teams.routing import team_keywords
from tickets.teams.validation import team_problems


class TeamForm(forms.ModelForm):
    keywords = KeywordListField(
        label=_("keywords"), required=False,
        help_text=_("one per line; a handed-off customer whose recent messages contain one is queued for this team "
                    "(teams are tried in their order)"))

    class Meta:
        model = Team
        fields = ["name", "keywords", "menu_choice", "is_default", "priority", "members"]
        help_texts = {"menu_choice": _("the text of a welcome menu item (微信客服); a customer who clicked it is "
                                       "queued for this team")}

    def clean(self):
        cleaned = super().clean()
        problems = team_problems(name=cleaned.get("name") or "", keywords=cleaned.get("keywords") or [],
                                 menu_choice=cleaned.get("menu_choice") or "",
                                 is_default=bool(cleaned.get("is_default")), team_id=self.instance.pk)
        for field, message in problems.items():
            if field not in self.errors:
                self.add_error(field, message)
        cleaned["keywords"] = [k.strip() for k in cleaned.get("keywords") or []]
        return cleaned


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    form = TeamForm
    list_display = ["name", "keyword_list", "menu_choice", "is_default", "priority", "member_count", "online_count"]
    search_fields = ["name", "menu_choice"]
    filter_horizontal = ["members"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("members")

    @admin.display(description=_("keywords"))
    def keyword_list(self, obj):
        return "、".join(team_keywords(obj)) or "—"

    @admin.display(description=_("members"))
    def member_count(self, obj):
        return len(obj.members.all())

    @admin.display(description=_("online now"))
    def online_count(self, obj):
        user_ids = [m.user_id for m in obj.members.all() if m.is_active]
        states = presence.statuses(schema=connection.schema_name, user_ids=user_ids)
        return sum(1 for state in states.values() if state == "online")


class TeamMembershipInline(admin.TabularInline):
    """The agent's teams, on the agent's page."""

    model = Team.members.through
    extra = 0
    verbose_name = _("team")
    verbose_name_plural = _("teams")


class TicketSettingsForm(forms.ModelForm):
    """The ticket settings (the admin builds the fields from the model), with the queue position message checked:
    it must say the place."""

    def clean_queue_position_message(self):
        text = self.cleaned_data["queue_position_message"].strip()
        if "{position}" not in text:
            raise forms.ValidationError(_("Put {position} where the number of customers ahead goes."))
        return text
