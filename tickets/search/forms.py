"""The search's filters, one form for the agent page, its CSV export and the REST API, so a bad value gets the
same clear message everywhere (and never reaches the database). Dates are days in the tenant's time zone (the
business hours'): from the start of `from` to the end of `to`."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.utils.translation import gettext_lazy as _

from conversations.models import WeComApp
from conversations.search.selectors import ConversationCriteria
from conversations.search.terms import MAX_QUERY_CHARS, UnsearchableText, parse_search_text
from tickets.business_hours import DEFAULT_TIME_ZONE, ScheduleInvalid, parse_time_zone
from tickets.business_hours_models import BusinessHours
from tickets.labels.models import Label
from tickets.models import AgentProfile
from tickets.search.selectors import STATE_LABELS, SearchCriteria

ANY = ("", _("Any"))
EARLIEST_DAY = datetime(2000, 1, 1).date()  # days outside these are typing mistakes, not searches
LATEST_DAY = datetime(2999, 12, 31).date()


def tenant_time_zone() -> ZoneInfo:
    """The tenant's time zone (its business hours' setting, even while they are switched off)."""
    name = BusinessHours.objects.filter(pk=1).values_list("time_zone", flat=True).first()
    try:
        return parse_time_zone(name or DEFAULT_TIME_ZONE)
    except ScheduleInvalid:  # rows are validated on save; a zone the system lost since then
        return ZoneInfo(DEFAULT_TIME_ZONE)


def _day_start(day, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


class ConversationSearchForm(forms.Form):
    q = forms.CharField(label=_("Message text"), max_length=MAX_QUERY_CHARS, required=False,
                        help_text=_("every word must appear in one message, e.g. 退款 发票"))
    customer = forms.CharField(label=_("Customer"), max_length=128, required=False,
                               help_text=_("part of the name or of the WeCom id"))
    agent = forms.TypedChoiceField(label=_("Agent"), coerce=int, empty_value=None, required=False)
    label = forms.TypedChoiceField(label=_("Label"), coerce=int, empty_value=None, required=False)
    state = forms.ChoiceField(label=_("State"), required=False,
                              choices=[ANY, *STATE_LABELS.items()])
    channel = forms.ChoiceField(label=_("Channel"), required=False, choices=[ANY, *WeComApp.Kind.choices])
    app = forms.TypedChoiceField(label=_("WeCom app"), coerce=int, empty_value=None, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # "from" and "to" are Python keywords: declared here rather than as attributes.
        self.fields["from"] = forms.DateField(label=_("From"), required=False,
                                              widget=forms.DateInput(attrs={"type": "date"}))
        self.fields["to"] = forms.DateField(label=_("To"), required=False,
                                            widget=forms.DateInput(attrs={"type": "date"}))
        agents = AgentProfile.objects.select_related("user").order_by("-is_active", "display_name", "user__username")
        self.fields["agent"].choices = [ANY, *((profile.user_id, profile.name) for profile in agents)]
        self.fields["label"].choices = [ANY, *Label.objects.values_list("pk", "name")]
        self.fields["app"].choices = [ANY, *WeComApp.objects.order_by("name", "pk").values_list("pk", "name")]

    def clean_q(self):
        typed = self.cleaned_data["q"].strip()
        if not typed:
            return None
        try:
            return parse_search_text(typed)
        except UnsearchableText as exc:
            raise forms.ValidationError(str(exc), code="unsearchable") from None

    def clean(self):
        cleaned = super().clean()
        for name in ("from", "to"):
            day = cleaned.get(name)
            if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
                self.add_error(name, forms.ValidationError(_("Choose a day between 2000 and 2999."), code="invalid"))
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end and start > end:
            self.add_error("to", forms.ValidationError(_("The end date is before the start date."), code="invalid"))
        return cleaned

    def criteria(self) -> SearchCriteria:
        """The valid form as search criteria (call after is_valid())."""
        data = self.cleaned_data
        zone = tenant_time_zone()
        return SearchCriteria(
            label_id=data["label"],
            conversation=ConversationCriteria(
                text=data["q"], customer=data["customer"].strip(), agent_id=data["agent"], state=data["state"],
                channel=data["channel"], app_id=data["app"],
                active_from=_day_start(data["from"], zone) if data.get("from") else None,
                active_until=_day_start(data["to"] + timedelta(days=1), zone) if data.get("to") else None))
