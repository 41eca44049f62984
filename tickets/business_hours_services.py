"""The tenant's business hours as the human side uses them: the schedule now, SLA due times counted in open
time, and the one write (admin and API share its validation). docs/AGENTS.md, "Business hours"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from tickets.business_hours import Schedule
from tickets.business_hours_models import BusinessHours

EDITABLE = ("enabled", "time_zone", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
            "holidays", "extra_workdays", "extra_workday_hours_of", "off_hours_message")


def current_schedule() -> Schedule:
    """The tenant's schedule (always open when business hours are off). Read in the current schema, on the
    handoff's path: a tenant that never saved business hours has no row, and none is created here (two
    first handoffs at once would race to insert it)."""
    hours = BusinessHours.objects.filter(pk=1).first()
    return hours.schedule() if hours else Schedule.always_open()


def due_after(schedule: Schedule, start: datetime, minutes: int) -> datetime | None:
    """An SLA's due time: `minutes` of business time after `start` (a ticket opened Friday 20:00 with 30
    minutes is due Monday 09:30). None when the schedule never opens again."""
    return schedule.add_business_time(start, minutes * 60)


@dataclass(frozen=True, kw_only=True)
class OpeningStatus:
    open: bool
    next_opening: datetime | None  # `now` when open


def opening_status(*, now: datetime, hours: BusinessHours | None = None) -> OpeningStatus:
    schedule = (hours or BusinessHours.current()).schedule()
    return OpeningStatus(open=schedule.is_open(now), next_opening=schedule.next_opening(now))


def update_business_hours(*, changes: dict) -> BusinessHours:
    """Apply `changes` (fields of EDITABLE) to the tenant's business hours; ValidationError (by field) refuses
    a schedule that cannot be used, and nothing changes then."""
    with transaction.atomic():
        hours = BusinessHours.current()
        hours = BusinessHours.objects.select_for_update().get(pk=hours.pk)
        for name, value in changes.items():
            if name not in EDITABLE:
                raise ValidationError({name: "not editable"})
            setattr(hours, name, value)
        hours.full_clean()
        hours.holidays = sorted(set(hours.holidays))
        hours.extra_workdays = sorted(set(hours.extra_workdays))
        hours.save()
    return hours
