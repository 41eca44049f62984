"""The period a report covers: whole local days of the tenant's time zone (the business hours' zone), from one
date to another inclusive, and the day and week buckets inside it (docs/REPORTS.md, "Periods")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from tickets.business_hours import ScheduleInvalid, parse_time_zone
from tickets.business_hours_models import BusinessHours

DEFAULT_DAYS = 7
# A report reads every ticket of the period in one query: bounded, as WeCom bounds its own (31 days a call).
MAX_DAYS = 92
# Dates a report may name: wide enough for any real period, far from the calendar's ends (a day after 9999-12-31
# does not exist).
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)


class PeriodInvalid(ValueError):
    """The dates asked for cannot make a period; the message says why (shown to the caller)."""


@dataclass(frozen=True)
class Period:
    first: date  # local dates, both included
    last: date
    zone: tzinfo

    @property
    def start(self) -> datetime:
        return local_midnight(self.first, self.zone)

    @property
    def end(self) -> datetime:
        """The instant after the period: the local midnight that ends its last day."""
        return local_midnight(self.last + timedelta(days=1), self.zone)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def weeks(self) -> list[date]:
        """The Mondays of the weeks the period touches (a week bucket holds only the period's days of it)."""
        return sorted({week_of(day) for day in self.days})


def local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=zone)


def week_of(day: date) -> date:
    """The Monday of `day`'s week (ISO weeks, as WeCom's and China's calendars count them)."""
    return day - timedelta(days=day.weekday())


def tenant_zone() -> tzinfo:
    """The time zone the tenant set with its business hours (read without creating the row); the
    deployment's TIME_ZONE for a tenant that never saved them."""
    name = BusinessHours.objects.filter(pk=1).values_list("time_zone", flat=True).first()
    try:
        return parse_time_zone(name or settings.TIME_ZONE)
    except ScheduleInvalid:
        return parse_time_zone(settings.TIME_ZONE)


def parse_period(*, first: str | None, last: str | None, zone: tzinfo, now: datetime | None = None) -> Period:
    """The period from the request's `from` and `to` (YYYY-MM-DD, local, inclusive); missing ones default to
    the last DEFAULT_DAYS days, today included."""
    today = (now or timezone.now()).astimezone(zone).date()
    last_day = _date(last, "to") if last else today
    first_day = _date(first, "from") if first else last_day - timedelta(days=DEFAULT_DAYS - 1)
    if first_day > last_day:
        raise PeriodInvalid(_("The period starts (%(first)s) after it ends (%(last)s).")
                            % {"first": first_day.isoformat(), "last": last_day.isoformat()})
    if (last_day - first_day).days + 1 > MAX_DAYS:
        raise PeriodInvalid(_("A report covers at most %(max)d days.") % {"max": MAX_DAYS})
    return Period(first=first_day, last=last_day, zone=zone)


def _date(text: str, name: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError as exc:
        raise PeriodInvalid(_("“%(value)s” is not a date like 2026-01-31 (%(name)s).")
                            % {"value": text[:40], "name": name}) from exc
    if not EARLIEST <= day <= LATEST:
        raise PeriodInvalid(_("A report covers dates from %(earliest)s to %(latest)s.")
                            % {"earliest": EARLIEST.isoformat(), "latest": LATEST.isoformat()})
    return day
