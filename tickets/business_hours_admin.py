"""The business hours' admin page (registered by tickets/admin.py): one line of intervals per weekday, holidays
and extra working days as lists of dates, and whether the desk is open now. Saving goes through
tickets.business_hours_services.update_business_hours, the API's write too."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.admin_singleton import SingletonModelAdmin
from tickets.business_hours import ScheduleInvalid, parse_dates
from tickets.business_hours_models import BusinessHours
from tickets.business_hours_services import EDITABLE, opening_status, update_business_hours


class DateListField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3, "cols": 60})

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(d.isoformat() for d in value)
        return value

    def to_python(self, value):
        try:
            return parse_dates(super().to_python(value))
        except ScheduleInvalid as exc:
            raise ValidationError(str(exc)) from exc


class BusinessHoursForm(forms.ModelForm):
    holidays = DateListField(label=_("holidays"), required=False,
                             help_text=_("Dates closed all day (public holidays)."))
    extra_workdays = DateListField(label=_("extra working days"), required=False,
                                   help_text=_("Dates worked although the week says closed (调休)."))

    class Meta:
        model = BusinessHours
        fields = list(EDITABLE)

    def clean_holidays(self):
        return self.cleaned_data.get("holidays") or []

    def clean_extra_workdays(self):
        return self.cleaned_data.get("extra_workdays") or []


class BusinessHoursAdmin(SingletonModelAdmin):
    form = BusinessHoursForm
    readonly_fields = ["now_line"]
    fieldsets = [
        (None, {"fields": ["now_line", "enabled", "time_zone"]}),
        (_("Week"), {"fields": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]}),
        (_("Holidays and extra working days"), {"fields": ["holidays", "extra_workdays", "extra_workday_hours_of"]}),
        (None, {"fields": ["off_hours_message"]}),
    ]

    @admin.display(description=_("now"))
    def now_line(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        status = opening_status(now=timezone.now(), hours=obj)
        if not obj.enabled:
            return gettext("Open (business hours do not apply).")
        if status.open:
            return gettext("Open.")
        if status.next_opening is None:
            return gettext("Closed, and no opening ahead.")
        opens = status.next_opening.astimezone(obj.schedule().zone)
        return gettext("Closed; opens %(when)s (%(zone)s).") % {
            "when": opens.strftime("%Y-%m-%d %H:%M"), "zone": obj.time_zone}

    def save_model(self, request, obj, form, change):
        update_business_hours(changes={name: form.cleaned_data[name] for name in EDITABLE
                                       if name in form.cleaned_data})
