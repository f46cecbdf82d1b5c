"""Clinical days: day 0 is the infusion date (CLINICAL.md section 3).

A result's day is the calendar-day difference between its collection date, in the center's time
zone, and the date of the most recent infusion on or before it. Results before the first infusion
are baseline: their day is negative, counted from the first infusion, and they never trigger rules.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from django.utils.translation import gettext


@dataclass(frozen=True)
class ClinicalDay:
    infusion_number: int | None  # None for baseline (before the first infusion)
    day: int

    @property
    def is_baseline(self) -> bool:
        return self.infusion_number is None

    def __str__(self) -> str:
        if self.is_baseline:
            return gettext("baseline (day %(day)s)") % {"day": self.day}
        if self.infusion_number == 1:
            return gettext("day %(day)s") % {"day": self.day}
        return gettext("day %(day)s after infusion %(number)s") % {
            "day": self.day,
            "number": self.infusion_number,
        }


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar date of an aware datetime in a center's time zone."""
    return moment.astimezone(tz).date()


class LocalTimeError(ValueError):
    """A wall-clock time that a clock change skips or repeats in the zone."""


def at_local_time(wall_clock: datetime, tz: ZoneInfo) -> datetime:
    """A naive date-time read as the wall-clock time in `tz` (a center's zone, never the
    server's). A time the clock skips (spring) or shows twice (autumn) is refused: only an
    explicit UTC offset can say which moment was meant."""
    if wall_clock.tzinfo is not None:
        return wall_clock
    try:
        first = wall_clock.replace(tzinfo=tz, fold=0)
        second = wall_clock.replace(tzinfo=tz, fold=1)
        round_trip = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    except OverflowError:
        raise LocalTimeError(
            gettext("%(time)s is out of range.") % {"time": f"{wall_clock:%Y-%m-%d %H:%M}"}
        ) from None
    if round_trip != wall_clock:
        raise LocalTimeError(
            gettext(
                "%(time)s does not exist in %(zone)s (the clocks were put forward): check the "
                "time, or give it with its UTC offset."
            )
            % {"time": f"{wall_clock:%d %b %Y %H:%M}", "zone": tz.key}
        )
    if first.utcoffset() != second.utcoffset():
        raise LocalTimeError(
            gettext(
                "%(time)s happened twice in %(zone)s (the clocks were put back): give the time "
                "with its UTC offset, e.g. +02:00 or +01:00."
            )
            % {"time": f"{wall_clock:%d %b %Y %H:%M}", "zone": tz.key}
        )
    return first


def clinical_day(on: date, infusion_dates: list[date]) -> ClinicalDay | None:
    """The day of `on` relative to the most recent infusion on or before it.

    `infusion_dates` are in order, first infusion first. With no infusion there is no day.
    """
    if not infusion_dates:
        return None
    index = bisect.bisect_right(infusion_dates, on) - 1
    if index < 0:
        return ClinicalDay(None, (on - infusion_dates[0]).days)
    return ClinicalDay(index + 1, (on - infusion_dates[index]).days)
