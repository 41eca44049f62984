"""Business hours as pure time arithmetic: when the tenant's humans work (docs/AGENTS.md, "Business hours").

A `Schedule` is a time zone, a week of open intervals (per weekday, minutes since local midnight, the end up
to 24:00), holidays (closed all day) and extra working days (调休: a weekend worked, with the hours of one
weekday). Every question is answered on aware datetimes; the intervals are built on each local date in the
zone and then compared as instants, so a DST change (Europe/Berlin) moves nothing by an hour: an interval
is as long as the wall clock says. A disabled schedule is always open (the tenant has no business hours).

No database and no clock here: callers pass the time (`now`), so tests choose it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.translation import gettext as _

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_TIME_ZONE = "Asia/Shanghai"
DAY_MINUTES = 24 * 60
# How far ahead to look for an opening: a schedule with no hours in this long is never open again.
HORIZON_DAYS = 3 * 366
# "09:00-12:00, 13:30-18:00": commas (also Chinese ones) or semicolons between intervals; -, –, ~, ～ or 至
# between the times of one.
_SEPARATORS = re.compile(r"[,，;；、\s]+")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})\s*[-–—~～至]\s*(\d{1,2}):(\d{2})$")

Interval = tuple[int, int]  # minutes since local midnight, start < end <= 24:00


class ScheduleInvalid(ValueError):
    """A schedule's text cannot be used; the message says why (shown to the operator)."""


def parse_intervals(text: str) -> tuple[Interval, ...]:
    """One weekday's line ("09:00-12:00, 13:30-18:00"; empty: closed) as sorted intervals, refusing a
    malformed one, an empty or reversed one and overlapping ones."""
    text = (text or "").strip()
    if not text:
        return ()
    intervals = []
    for part in filter(None, re.split(r"\s*[,，;；、]\s*", text)):
        match = _INTERVAL.match(part.strip())
        if match is None:
            raise ScheduleInvalid(_("“%(part)s” is not an interval like 09:00-18:00.") % {"part": part})
        sh, sm, eh, em = (int(g) for g in match.groups())
        start, end = sh * 60 + sm, eh * 60 + em
        if sm > 59 or em > 59 or start >= DAY_MINUTES or end > DAY_MINUTES:
            raise ScheduleInvalid(_("“%(part)s” is not a time of day (00:00 to 24:00).") % {"part": part})
        if start >= end:
            raise ScheduleInvalid(_("“%(part)s” ends before it starts.") % {"part": part})
        intervals.append((start, end))
    intervals.sort()
    for (_s1, e1), (s2, _e2) in zip(intervals, intervals[1:], strict=False):
        if s2 < e1:
            raise ScheduleInvalid(_("%(a)s and %(b)s overlap.") % {
                "a": format_interval((_s1, e1)), "b": format_interval((s2, _e2))})
    return tuple(intervals)


def format_interval(interval: Interval) -> str:
    return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in interval)


def format_intervals(intervals: tuple[Interval, ...]) -> str:
    return ", ".join(format_interval(i) for i in intervals)


def parse_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo((name or "").strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleInvalid(_("“%(name)s” is not a time zone (an IANA name such as Asia/Shanghai).")
                              % {"name": name}) from exc


@dataclass(frozen=True, kw_only=True)
class Schedule:
    enabled: bool = True
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIME_ZONE))
    week: tuple[tuple[Interval, ...], ...] = ((),) * 7  # Monday first
    holidays: frozenset[date] = frozenset()
    extra_days: frozenset[date] = frozenset()  # 调休: worked with the hours of `extra_day_weekday`
    extra_day_weekday: int = 0

    @classmethod
    def always_open(cls) -> Schedule:
        return cls(enabled=False)

    # --- the questions ---------------------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        if not self.enabled:
            return True
        at = _utc(at)
        return any(start <= at < end for start, end in self._intervals_on(at.astimezone(self.zone).date()))

    def next_opening(self, after: datetime) -> datetime | None:
        """`after` itself when open then, else the start of the next open interval (None: never open again)."""
        if not self.enabled:
            return after
        for opens, _closes in self._intervals_from(after):
            return max(opens, _utc(after))
        return None

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        """Open time from `start` to `end` (0 if end is not after start)."""
        if not self.enabled:
            return max(0.0, (end - start).total_seconds())
        start, end = _utc(start), _utc(end)
        total = 0.0
        for opens, closes in self._intervals_from(start):
            if opens >= end:
                break
            total += (min(closes, end) - max(opens, start)).total_seconds()
        return total

    def add_business_time(self, start: datetime, seconds: float) -> datetime | None:
        """The instant when `seconds` of open time have passed since `start` (0: the next opening);
        None if the schedule never opens again."""
        if not self.enabled:
            return start + timedelta(seconds=seconds)
        left = timedelta(seconds=max(0.0, seconds))
        for opens, closes in self._intervals_from(start):
            opens = max(opens, _utc(start))
            if opens + left <= closes:
                return opens + left
            left -= closes - opens
        return None

    def intervals_on(self, day: date) -> tuple[Interval, ...]:
        """The local intervals of one date: none on a holiday, the extra day's weekday's on an extra day."""
        if day in self.holidays:
            return ()
        if day in self.extra_days:
            return self.week[self.extra_day_weekday]
        return self.week[day.weekday()]

    # --- helpers -----------------------------------------------------------------------------------------

    def _intervals_on(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        midnight = datetime.combine(day, time.min, tzinfo=self.zone)
        for start, end in self.intervals_on(day):
            # Wall-clock arithmetic on the zone's date, then the instant: 09:00 is 09:00 on a DST day too.
            opens = (midnight + timedelta(minutes=start)).astimezone(UTC)
            closes = (midnight + timedelta(minutes=end)).astimezone(UTC)
            if closes > opens:
                yield opens, closes

    def _intervals_from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals (as UTC instants) that end after `at`, in order, for HORIZON_DAYS."""
        at = _utc(at)
        day = at.astimezone(self.zone).date() - timedelta(days=1)  # yesterday's may run past local midnight
        for offset in range(HORIZON_DAYS):
            for opens, closes in self._intervals_on(day + timedelta(days=offset)):
                if closes > at:
                    yield opens, closes


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("business hours need aware datetimes")
    return moment.astimezone(UTC)


def parse_dates(text: str) -> list[date]:
    """Dates separated by commas, spaces or lines ("2026-10-01, 2026-10-02"), sorted, each once."""
    days = set()
    for part in filter(None, _SEPARATORS.split(text or "")):
        try:
            days.add(date.fromisoformat(part))
        except ValueError as exc:
            raise ScheduleInvalid(_("“%(part)s” is not a date like 2026-10-01.") % {"part": part}) from exc
    return sorted(days)
