"""Clinical days: day 0 is the infusion date (CLINICAL.md section 3).

A result's day is the calendar-day difference between its collection date, in the center's time
zone, and the date of the most recent infusion on or before it. Results before the first infusion
are baseline: their day is negative, counted from the first infusion, and they never trigger rules.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ClinicalDay:
    infusion_number: int | None  # None for baseline (before the first infusion)
    day: int

    @property
    def is_baseline(self) -> bool:
        return self.infusion_number is None

    def __str__(self) -> str:
        if self.is_baseline:
            return f"baseline (day {self.day})"
        if self.infusion_number == 1:
            return f"day {self.day}"
        return f"day {self.day} after infusion {self.infusion_number}"


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar date of an aware datetime in a center's time zone."""
    return moment.astimezone(tz).date()


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
