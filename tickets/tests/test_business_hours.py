"""The business hours' time arithmetic (tickets.business_hours), on chosen instants: weekends, lunch breaks,
holidays and extra working days (调休), spans of several days, a DST zone (Europe/Berlin), the parsing of an
operator's lines and a disabled schedule (always open)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import translation

from tickets.business_hours import Schedule, ScheduleInvalid, parse_dates, parse_intervals, parse_time_zone

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
WORKDAY = parse_intervals("09:00-12:00, 13:30-18:00")
# 2026-10-01..07 is China's National Day week (Thu-Wed here); Sat 2026-10-10 a worked make-up day.
NATIONAL_DAY = frozenset(date(2026, 10, d) for d in range(1, 8))


def week(hours=WORKDAY, weekend=()):
    return (hours,) * 5 + (weekend, weekend)


def at(zone, *args) -> datetime:
    return datetime(*args, tzinfo=zone)


SH = Schedule(zone=SHANGHAI, week=week(), holidays=NATIONAL_DAY, extra_days=frozenset({date(2026, 10, 10)}))


def test_parsing_an_operators_line():
    assert parse_intervals("09:00-12:00, 13:30-18:00") == ((540, 720), (810, 1080))
    assert parse_intervals("13:30～18:00，9:00-12:00") == ((540, 720), (810, 1080))  # sorted, full-width too
    assert parse_intervals("  ") == ()
    assert parse_intervals("00:00-24:00") == ((0, 1440),)
    with translation.override("en"):
        refusals_in_english()
    with translation.override("zh-hans"), pytest.raises(ScheduleInvalid, match="重叠"):
        parse_intervals("09:00-12:00, 11:00-13:00")


def refusals_in_english():
    for bad, says in [("9-18", "not an interval"), ("18:00-09:00", "ends before"), ("09:00-09:00", "ends before"),
                      ("09:00-12:00, 11:00-13:00", "overlap"), ("09:70-10:00", "time of day"),
                      ("23:00-24:30", "time of day")]:
        with pytest.raises(ScheduleInvalid, match=says):
            parse_intervals(bad)
    with pytest.raises(ScheduleInvalid):
        parse_time_zone("Mars/Olympus")
    assert parse_time_zone("Europe/Berlin") == BERLIN
    assert parse_dates("2026-10-02\n2026-10-01, 2026-10-01") == [date(2026, 10, 1), date(2026, 10, 2)]
    with pytest.raises(ScheduleInvalid, match="2026-13-01"):
        parse_dates("2026-13-01")


def test_open_within_intervals_closed_at_lunch_at_night_and_on_weekends():
    monday = (2026, 11, 30)
    assert SH.is_open(at(SHANGHAI, *monday, 9, 0))
    assert SH.is_open(at(SHANGHAI, *monday, 11, 59))
    assert not SH.is_open(at(SHANGHAI, *monday, 12, 0))  # the end is not open
    assert not SH.is_open(at(SHANGHAI, *monday, 8, 59))
    assert not SH.is_open(at(SHANGHAI, 2026, 12, 5, 10, 0))  # Saturday
    assert SH.is_open(at(UTC, *monday, 2, 0))  # 10:00 in Shanghai: the instant counts, not its zone
    assert SH.next_opening(at(SHANGHAI, *monday, 12, 15)) == at(SHANGHAI, *monday, 13, 30)
    assert SH.next_opening(at(SHANGHAI, *monday, 10, 0)) == at(SHANGHAI, *monday, 10, 0)
    assert SH.next_opening(at(SHANGHAI, 2026, 12, 4, 20, 0)) == at(SHANGHAI, 2026, 12, 7, 9, 0)  # Fri -> Mon
    with pytest.raises(ValueError):
        SH.is_open(datetime(2026, 11, 30, 10, 0))  # naive: refused, never guessed


def test_holidays_close_and_extra_working_days_open_with_a_weekdays_hours():
    assert not SH.is_open(at(SHANGHAI, 2026, 10, 1, 10, 0))  # Thursday, but National Day
    # Closed from Wednesday 30 Sept 18:00 to Thursday 8 Oct 09:00.
    assert SH.next_opening(at(SHANGHAI, 2026, 9, 30, 18, 0)) == at(SHANGHAI, 2026, 10, 8, 9, 0)
    assert SH.is_open(at(SHANGHAI, 2026, 10, 10, 10, 0))  # Saturday worked (调休), Monday's hours
    assert not SH.is_open(at(SHANGHAI, 2026, 10, 10, 12, 30))
    assert not SH.is_open(at(SHANGHAI, 2026, 10, 11, 10, 0))  # the Sunday after is not
    saturday_hours = Schedule(zone=SHANGHAI, week=(*week()[:5], parse_intervals("10:00-15:00"), ()),
                              extra_days=frozenset({date(2026, 10, 11)}), extra_day_weekday=5)
    assert saturday_hours.is_open(at(SHANGHAI, 2026, 10, 11, 14, 0))  # a Sunday worked with Saturday's hours


def test_business_seconds_and_adding_business_time_across_days():
    friday_evening = at(SHANGHAI, 2026, 12, 4, 20, 0)
    assert SH.add_business_time(friday_evening, 30 * 60) == at(SHANGHAI, 2026, 12, 7, 9, 30)
    assert SH.add_business_time(at(SHANGHAI, 2026, 12, 7, 11, 30), 60 * 60) == at(SHANGHAI, 2026, 12, 7, 14, 0)
    assert SH.add_business_time(friday_evening, 0) == at(SHANGHAI, 2026, 12, 7, 9, 0)  # the next opening
    # A working day is 7.5 h: 240 minutes from Friday 16:00 is 2 h Friday + 2 h Monday.
    assert SH.add_business_time(at(SHANGHAI, 2026, 12, 4, 16, 0), 240 * 60) == at(SHANGHAI, 2026, 12, 7, 11, 0)
    assert SH.add_business_time(at(SHANGHAI, 2026, 9, 30, 17, 0), 2 * 3600) == at(SHANGHAI, 2026, 10, 8, 10, 0)
    assert SH.business_seconds_between(friday_evening, at(SHANGHAI, 2026, 12, 7, 9, 30)) == 30 * 60
    monday, friday = at(SHANGHAI, 2026, 11, 30, 0, 0), at(SHANGHAI, 2026, 12, 5, 0, 0)
    assert SH.business_seconds_between(monday, friday) == 5 * 7.5 * 3600
    assert SH.business_seconds_between(friday, monday) == 0
    assert SH.business_seconds_between(at(SHANGHAI, 2026, 11, 30, 10, 0), at(SHANGHAI, 2026, 11, 30, 14, 0)) \
        == 2.5 * 3600
    for start in (friday_evening, at(SHANGHAI, 2026, 12, 2, 11, 0), at(SHANGHAI, 2026, 9, 29, 15, 5)):
        for seconds in (1, 3600, 8 * 3600, 40 * 3600):
            assert SH.business_seconds_between(start, SH.add_business_time(start, seconds)) == seconds


def test_dst_changes_keep_the_wall_clock_hours():
    berlin = Schedule(zone=BERLIN, week=week(parse_intervals("09:00-17:00")),
                      holidays=frozenset({date(2026, 12, 25)}))
    # Sunday 29 March 2026 02:00 the clocks go forward: Monday 09:00 is 07:00 UTC, Friday before 08:00 UTC.
    assert berlin.next_opening(at(BERLIN, 2026, 3, 28, 12, 0)) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert berlin.is_open(datetime(2026, 3, 27, 8, 0, tzinfo=UTC))
    assert not berlin.is_open(datetime(2026, 3, 30, 6, 30, tzinfo=UTC))  # 08:30 CEST
    # Friday 16:00 CET + 2 h of business time is Monday 10:00 CEST, though 65 wall hours but 64 real ones passed.
    due = berlin.add_business_time(at(BERLIN, 2026, 3, 27, 16, 0), 2 * 3600)
    assert due == at(BERLIN, 2026, 3, 30, 10, 0) and due.astimezone(UTC).hour == 8
    # 25 October the clocks go back: the week still has 5 x 8 h.
    assert berlin.business_seconds_between(at(BERLIN, 2026, 10, 19, 0, 0), at(BERLIN, 2026, 10, 31, 0, 0)) \
        == 10 * 8 * 3600
    # An interval over the change itself (00:00-24:00 on the short day) is 23 real hours.
    always = Schedule(zone=BERLIN, week=(parse_intervals("00:00-24:00"),) * 7)
    assert always.business_seconds_between(at(BERLIN, 2026, 3, 29, 0, 0), at(BERLIN, 2026, 3, 30, 0, 0)) \
        == 23 * 3600
    assert always.is_open(at(BERLIN, 2026, 3, 29, 23, 59))
    assert berlin.next_opening(at(BERLIN, 2026, 12, 24, 18, 0)) == at(BERLIN, 2026, 12, 28, 9, 0)  # Christmas Fri


def test_a_disabled_schedule_is_always_open_and_an_empty_one_never_opens():
    always = Schedule.always_open()
    moment = at(SHANGHAI, 2026, 12, 5, 3, 0)
    assert always.is_open(moment) and always.next_opening(moment) == moment
    assert always.add_business_time(moment, 90) == moment + timedelta(seconds=90)
    assert always.business_seconds_between(moment, moment + timedelta(hours=2)) == 7200
    never = Schedule(zone=SHANGHAI)
    assert not never.is_open(moment)
    assert never.next_opening(moment) is None and never.add_business_time(moment, 60) is None
