"""The tenant's business hours (one row; `BusinessHours.current()`), imported by tickets/models.py.

The week is stored as one line of intervals per weekday, as the operator types it ("09:00-12:00, 13:30-18:00");
tickets.business_hours parses and validates it (`clean`), and `schedule()` is what the time arithmetic uses.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from tickets.business_hours import (
    DEFAULT_TIME_ZONE,
    WEEKDAYS,
    Schedule,
    ScheduleInvalid,
    parse_intervals,
    parse_time_zone,
)

DEFAULT_OFF_HOURS_MESSAGE = ("您好，现在是非工作时间（工作时间：周一至周五 9:00-18:00），您的问题已记录，"
                             "客服上班后会第一时间回复您。")
WORKDAY = "09:00-18:00"
WEEKDAY_CHOICES = [(0, _("Monday")), (1, _("Tuesday")), (2, _("Wednesday")), (3, _("Thursday")), (4, _("Friday")),
                   (5, _("Saturday")), (6, _("Sunday"))]
HOURS_HELP = _("Open intervals like 09:00-12:00, 13:30-18:00; empty: closed all day.")


def _day(label, default: str = ""):
    return models.CharField(label, max_length=200, blank=True, default=default, help_text=HOURS_HELP)


class BusinessHours(models.Model):
    enabled = models.BooleanField(
        _("business hours apply"), default=False,
        help_text=_("Off: always open (agents are offered conversations at any time, SLAs count every minute)."))
    time_zone = models.CharField(_("time zone"), max_length=64, default=DEFAULT_TIME_ZONE,
                                 help_text=_("An IANA name such as Asia/Shanghai."))
    monday = _day(_("Monday"), WORKDAY)
    tuesday = _day(_("Tuesday"), WORKDAY)
    wednesday = _day(_("Wednesday"), WORKDAY)
    thursday = _day(_("Thursday"), WORKDAY)
    friday = _day(_("Friday"), WORKDAY)
    saturday = _day(_("Saturday"))
    sunday = _day(_("Sunday"))
    holidays = ArrayField(models.DateField(), default=list, blank=True, verbose_name=_("holidays"),
                          help_text=_("Dates closed all day."))
    extra_workdays = ArrayField(models.DateField(), default=list, blank=True, verbose_name=_("extra working days"),
                                help_text=_("Dates worked although the week says closed (调休), with the hours of "
                                            "the weekday below."))
    extra_workday_hours_of = models.PositiveSmallIntegerField(
        _("extra working days have the hours of"), choices=WEEKDAY_CHOICES, default=0)
    off_hours_message = models.CharField(
        _("message outside business hours"), max_length=500, default=DEFAULT_OFF_HOURS_MESSAGE,
        help_text=_("Sent instead of the waiting message when a customer is handed to humans outside business "
                    "hours."))

    class Meta:
        verbose_name = verbose_name_plural = _("business hours")

    def __str__(self) -> str:
        return str(_("Business hours"))

    @classmethod
    def current(cls) -> BusinessHours:
        return cls.objects.get_or_create(pk=1)[0]

    def clean(self):
        errors = {}
        try:
            parse_time_zone(self.time_zone)
        except ScheduleInvalid as exc:
            errors["time_zone"] = str(exc)
        week = []
        for day in WEEKDAYS:
            try:
                week.append(parse_intervals(getattr(self, day)))
            except ScheduleInvalid as exc:
                errors[day] = str(exc)
        if self.enabled and not errors and not any(week):
            errors["monday"] = _("Business hours that apply need open hours on at least one weekday.")
        if self.extra_workdays and not errors and not week[self.extra_workday_hours_of]:
            errors["extra_workday_hours_of"] = _("Extra working days need a weekday with open hours.")
        both = sorted(set(self.holidays or []) & set(self.extra_workdays or []))
        if both:
            errors["extra_workdays"] = _("A date cannot be a holiday and an extra working day: %(dates)s.") % {
                "dates": ", ".join(d.isoformat() for d in both)}
        if errors:
            raise ValidationError(errors)

    def schedule(self) -> Schedule:
        """The arithmetic's view (always open when disabled). Rows are validated on save, so this parses."""
        if not self.enabled:
            return Schedule.always_open()
        return Schedule(zone=parse_time_zone(self.time_zone),
                        week=tuple(parse_intervals(getattr(self, day)) for day in WEEKDAYS),
                        holidays=frozenset(self.holidays or ()), extra_days=frozenset(self.extra_workdays or ()),
                        extra_day_weekday=self.extra_workday_hours_of)
