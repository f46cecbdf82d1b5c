"""One patient's timeline as plain values: what the rules engine reads.

The rules never see the database or the clock. A selector (or the JSON loader behind the
``check_timeline`` command) turns the stored records into these frozen values, with every lab value
already in its analyte's canonical unit (``patients.units``) and every collection date already the
calendar date in the center's time zone.

Time follows CLINICAL.md section 3: day 0 is the infusion date, a result's day is the calendar-day
difference from the most recent infusion on or before it, results before the first infusion are
baseline, and each infusion opens its own window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from patients.units import (
    ALC,
    ANALYTES,
    BELOW_LOD,
    PB,
    PB_BCELL_ABS,
    PB_BCELL_PCT,
    UNDETECTABLE,
    bcell_count_from_percent,
)
from patients.vocabulary import (  # the clinical vocabulary (noqa: re-exported for the rules)
    CR,  # noqa: F401
    CRI,  # noqa: F401
    DEATH,  # noqa: F401
    EVENT_KINDS,
    HSCT,  # noqa: F401
    LAST_FOLLOWUP,  # noqa: F401
    NE,  # noqa: F401
    NR,  # noqa: F401
    PD,  # noqa: F401
    PR,  # noqa: F401
    RELAPSE,  # noqa: F401
    REMISSION,  # noqa: F401
    RESPONSES,
)

QUALIFIERS = ("", UNDETECTABLE, BELOW_LOD)


# Day 0 samples are usually drawn before the cells go in (and after lymphodepletion), so they say
# nothing about what the CAR-T cells did: every rule looks at day 1 onwards.
FIRST_POST_INFUSION_DAY = 1


@dataclass(frozen=True)
class InfusionPoint:
    id: int
    date: date
    number: int


@dataclass(frozen=True)
class ResultPoint:
    """One lab result; ``value`` is in the analyte's canonical unit, or None with a qualifier."""

    id: int
    analyte: str
    specimen: str
    collected_on: date
    collected_at: datetime | None
    value: Decimal | None
    qualifier: str = ""

    def __post_init__(self) -> None:
        if self.analyte not in ANALYTES:
            raise ValueError(f"result {self.id}: unknown analyte {self.analyte!r}")
        if self.qualifier not in QUALIFIERS:
            raise ValueError(f"result {self.id}: unknown qualifier {self.qualifier!r}")
        # "Undetectable" is stored as a qualifier, never as a made-up number (CLINICAL.md §2).
        if (self.value is None) == (self.qualifier == ""):
            raise ValueError(f"result {self.id}: give either a value or a qualifier")

    @property
    def unit(self) -> str:
        return ANALYTES[self.analyte].canonical_unit

    @property
    def order_key(self) -> tuple:
        # Same-day results without a time sort before timed ones, then by id (entry order).
        if self.collected_at is None:
            return (self.collected_on, 0, self.id)
        return (self.collected_on, 1, self.collected_at, self.id)

    @property
    def sample_key(self) -> tuple[date, datetime | None]:
        """Results sharing this key come from one sample (one blood draw)."""
        return (self.collected_on, self.collected_at)


@dataclass(frozen=True)
class ResponsePoint:
    id: int
    date: date
    response: str
    mrd_status: str = ""

    def __post_init__(self) -> None:
        if self.response not in RESPONSES:
            raise ValueError(f"response {self.id}: unknown response {self.response!r}")


@dataclass(frozen=True)
class EventPoint:
    id: int
    kind: str
    date: date

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"event {self.id}: unknown kind {self.kind!r}")


@dataclass(frozen=True)
class BCellSample:
    """The PB B-cell measurements of one sample: an absolute count, a % of lymphocytes, an ALC.

    Whether it is detectable depends on the center's definition: `monitoring.rules.recovery`."""

    day: int
    collected_on: date
    collected_at: datetime | None
    absolute: ResultPoint | None = None
    percent: ResultPoint | None = None
    alc: ResultPoint | None = None

    @property
    def results(self) -> tuple[ResultPoint, ...]:
        return tuple(r for r in (self.absolute, self.percent, self.alc) if r is not None)

    def count(self) -> Decimal | None:
        """B cells per µL: measured directly, or a % of lymphocytes times the sample's ALC."""
        if self.absolute is not None:
            return self.absolute.value  # None when below the limit of detection
        if self.percent is None or self.percent.value is None:
            return None
        if self.percent.value == 0:
            return Decimal(0)
        if self.alc is None or self.alc.value is None:
            return None
        return bcell_count_from_percent(self.percent.value, self.alc.value)


@dataclass(frozen=True)
class Window:
    """One infusion's window: results from its date up to, not including, the next infusion's."""

    infusion: InfusionPoint
    end: date | None
    results: tuple[ResultPoint, ...]

    @property
    def infusion_id(self) -> int:
        return self.infusion.id

    @property
    def start(self) -> date:
        return self.infusion.date

    def day_of(self, when: date) -> int:
        return (when - self.start).days

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def covers_day(self, day: int) -> bool:
        """Whether ``day`` belongs to this window (the next infusion starts a new day 0)."""
        return day >= 0 and (self.end is None or self.date_of(day) < self.end)

    def post_infusion(self, analyte: str, specimen: str) -> tuple[ResultPoint, ...]:
        """Results of one analyte from day 1 on, in collection order."""
        return tuple(
            r
            for r in self.results
            if r.analyte == analyte
            and r.specimen == specimen
            and self.day_of(r.collected_on) >= FIRST_POST_INFUSION_DAY
        )

    def bcell_samples(self) -> tuple[BCellSample, ...]:
        """PB B-cell samples in collection order, from day 0; a % is paired with the ALC of the
        same sample (same collection date and time) to give an absolute count."""
        # Several rules read them: computed once per window (the values are frozen).
        cached = self.__dict__.get("_bcell_samples")
        if cached is None:
            cached = self._bcell_samples_compute()
            object.__setattr__(self, "_bcell_samples", cached)
        return cached

    def _bcell_samples_compute(self) -> tuple[BCellSample, ...]:
        by_sample: dict[tuple, dict[str, ResultPoint]] = {}
        order: list[tuple] = []
        for r in self.results:  # already in collection order
            if r.specimen != PB or r.analyte not in (PB_BCELL_ABS, PB_BCELL_PCT, ALC):
                continue
            key = r.sample_key
            if key not in by_sample:
                by_sample[key] = {}
                order.append(key)
            # Should a sample hold two results of one analyte, the later entry (higher id) wins.
            by_sample[key][r.analyte] = r
        samples = []
        for key in order:
            parts = by_sample[key]
            if PB_BCELL_ABS not in parts and PB_BCELL_PCT not in parts:
                continue  # an ALC alone is not a B-cell count
            collected_on, collected_at = key
            samples.append(
                BCellSample(
                    day=self.day_of(collected_on),
                    collected_on=collected_on,
                    collected_at=collected_at,
                    absolute=parts.get(PB_BCELL_ABS),
                    percent=parts.get(PB_BCELL_PCT),
                    alc=parts.get(ALC),
                )
            )
        return tuple(samples)

    def post_infusion_bcell_samples(self) -> tuple[BCellSample, ...]:
        return tuple(s for s in self.bcell_samples() if s.day >= FIRST_POST_INFUSION_DAY)


@dataclass(frozen=True)
class Timeline:
    patient_ref: str
    birth_date: date | None
    infusions: tuple[InfusionPoint, ...] = ()
    results: tuple[ResultPoint, ...] = ()
    responses: tuple[ResponsePoint, ...] = ()
    events: tuple[EventPoint, ...] = ()

    def __post_init__(self) -> None:
        # Ids name the records a finding rests on (the infusion, the evidence): they must be unique.
        for section in ("infusions", "results", "responses", "events"):
            ids = [item.id for item in getattr(self, section)]
            if len(ids) != len(set(ids)):
                raise ValueError(f"{section}: ids must be unique")
        # Keep everything in a canonical order so that every consumer sees the same sequence.
        object.__setattr__(
            self, "infusions", tuple(sorted(self.infusions, key=lambda i: (i.date, i.number, i.id)))
        )
        awareness = {r.collected_at.tzinfo is not None for r in self.results if r.collected_at}
        if len(awareness) > 1:
            raise ValueError("collection times mix time-zone-aware and naive datetimes")
        object.__setattr__(self, "results", tuple(sorted(self.results, key=lambda r: r.order_key)))
        object.__setattr__(
            self, "responses", tuple(sorted(self.responses, key=lambda r: (r.date, r.id)))
        )
        object.__setattr__(self, "events", tuple(sorted(self.events, key=lambda e: (e.date, e.id))))

    def windows(self) -> tuple[Window, ...]:
        # Every rule reads the windows: built once per timeline (the values are frozen).
        cached = self.__dict__.get("_windows")
        if cached is None:
            cached = self._windows_compute()
            object.__setattr__(self, "_windows", cached)
        return cached

    def _windows_compute(self) -> tuple[Window, ...]:
        windows = []
        for index, infusion in enumerate(self.infusions):
            following = self.infusions[index + 1] if index + 1 < len(self.infusions) else None
            end = following.date if following else None
            results = tuple(
                r
                for r in self.results
                if infusion.date <= r.collected_on and (end is None or r.collected_on < end)
            )
            windows.append(Window(infusion=infusion, end=end, results=results))
        return tuple(windows)

    def until(self, as_of: date | None) -> Timeline:
        """The timeline as it was known on ``as_of``: nothing dated later."""
        if as_of is None:
            return self
        last = self.last_known_date()
        if last is None or last <= as_of:
            return self  # nothing is dated later (the sweep's usual case): the same timeline
        return replace(
            self,
            infusions=_on_or_before(self.infusions, as_of, lambda i: i.date),
            results=_on_or_before(self.results, as_of, lambda r: r.collected_on),
            responses=_on_or_before(self.responses, as_of, lambda r: r.date),
            events=_on_or_before(self.events, as_of, lambda e: e.date),
        )

    def last_known_date(self) -> date | None:
        """The latest date recorded anywhere in the timeline (the horizon without a clock)."""
        if "_last_known_date" in self.__dict__:
            return self.__dict__["_last_known_date"]
        dates = [i.date for i in self.infusions]
        dates += [r.collected_on for r in self.results]
        dates += [r.date for r in self.responses]
        dates += [e.date for e in self.events]
        last = max(dates, default=None)
        object.__setattr__(self, "_last_known_date", last)
        return last


def _on_or_before(items: Iterable, as_of: date, when) -> tuple:
    return tuple(item for item in items if when(item) <= as_of)
