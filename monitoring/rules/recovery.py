"""B-cell recovery decided once (CLINICAL.md section 4, "Definitions of B-cell recovery").

"Detectable", aplasia, regeneration after it and "a count is due" are decided here and only here:
the rules (`monitoring.rules.bcell`), the course chart's marks, the worklist's last count and
count due, the analysis dataset and the calibration's course table all call these functions
with the parameters in force for the patient's center, so a chart mark, a worklist row and an
export cannot disagree with the alert beside them.

Pure functions of timeline values (`monitoring.timeline`) and `RuleParams`; no database, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from monitoring.params import RuleParams
from monitoring.timeline import FIRST_POST_INFUSION_DAY, BCellSample, ResultPoint, Window


def is_detectable(sample: BCellSample, params: RuleParams) -> bool | None:
    """True/False by the configured definition, None if this sample cannot tell.

    Any measure that shows B cells above its threshold makes the sample detectable; a qualifier
    (undetectable, below the limit of detection) is never detectable. A directly measured count
    wins over one derived from a % of lymphocytes and the ALC of the same sample.
    """
    verdicts: list[bool] = []
    threshold = params.bcell_threshold
    if sample.absolute is not None:
        value = sample.absolute.value
        verdicts.append(value is not None and value > threshold)
    elif sample.percent is not None:
        count = sample.count()
        if sample.percent.value is None or sample.percent.value == 0:
            verdicts.append(False)
        elif count is not None:
            verdicts.append(count > threshold)
        elif threshold == 0:
            # B cells were seen, so under the study's "> 0/µL" definition the count is above
            # zero whatever the ALC; a higher threshold cannot be judged without the ALC.
            verdicts.append(True)
    if params.bcell_pct_threshold is not None and sample.percent is not None:
        pct = sample.percent.value
        verdicts.append(pct is not None and pct > params.bcell_pct_threshold)
    if not verdicts:
        return None
    return any(verdicts)


def result_detectable(result: ResultPoint) -> bool:
    """One result (CAR copies, MRD) shows its analyte: a value above zero; a qualifier never."""
    return result.value is not None and result.value > 0


@dataclass(frozen=True)
class Regeneration:
    """The first return of detectable PB B cells after aplasia in one window."""

    first_aplasia: BCellSample  # the first post-infusion count that was not detectable
    last_aplasia: BCellSample  # the last count before the onset that was not detectable
    onset: BCellSample  # the first detectable sample (the regeneration day)
    confirmation: BCellSample | None  # the confirming repeat sample, in confirmation mode

    @property
    def alert_sample(self) -> BCellSample:
        """The sample that raises the alert: the confirming one when confirmation is required."""
        return self.confirmation or self.onset


def judged_samples(window: Window, params: RuleParams) -> list[tuple[BCellSample, bool]]:
    """The window's post-infusion B-cell samples that can be judged, with their verdict.

    Samples that cannot be judged (a % without an ALC under an absolute threshold) are skipped.
    """
    return [
        (sample, status)
        for sample in window.post_infusion_bcell_samples()
        if (status := is_detectable(sample, params)) is not None
    ]


def first_aplasia(window: Window, params: RuleParams) -> BCellSample | None:
    """The first post-infusion count that was not detectable: B-cell aplasia reached."""
    return next((s for s, detectable in judged_samples(window, params) if not detectable), None)


def find_regeneration(window: Window, params: RuleParams) -> Regeneration | None:
    """The first regeneration after aplasia, by the configured definition of "detectable".

    A detectable count before aplasia was reached is the B cells that CAR-T has not yet cleared,
    not a regeneration. In confirmation mode a detectable sample followed by an undetectable one
    does not count; the next detectable pair may.
    """
    judged = judged_samples(window, params)
    first_aplasia_at = next((i for i, (_, status) in enumerate(judged) if not status), None)
    if first_aplasia_at is None:
        return None
    first = last = judged[first_aplasia_at][0]
    index = first_aplasia_at + 1
    while index < len(judged):
        sample, detectable = judged[index]
        if not detectable:
            last = sample
            index += 1
            continue
        if not params.require_confirmation:
            return Regeneration(first, last, sample, None)
        if index + 1 == len(judged):
            return None  # awaiting the confirming sample
        repeat, repeat_detectable = judged[index + 1]
        if repeat_detectable:
            return Regeneration(first, last, sample, repeat)
        last = repeat
        index += 2
    return None


def is_early(regeneration: Regeneration, params: RuleParams) -> bool:
    """Inside the window (day 1..window_days). With confirmation the regeneration day is the first
    sample's, so a pair that starts on the window's last day and is confirmed later is early."""
    return regeneration.onset.day <= params.window_days


@dataclass(frozen=True)
class CountStatus:
    """The B-cell count situation of a window on a given day: what the worklist shows and what
    the count-due rule decides."""

    day: int  # today's day of the window
    last: BCellSample | None  # the latest count from day 0 on, as known on that day
    days_since_last_count: int  # from the last count, or from day 0 without one
    in_window: bool  # today is day 1..window_days
    regenerated: bool  # a regeneration was found: counts no longer needed for the rule
    due: bool


def count_status(window: Window, params: RuleParams, *, as_of: date) -> CountStatus:
    """Whether a PB B-cell count is due in this window on ``as_of`` (CLINICAL.md section 4).

    Inside the window the last count is older than ``count_due_days``; with no count since the
    infusion the interval runs from day 0. Once the window has passed, or a regeneration has been
    found, counts are no longer needed for the early-regeneration rule. ``window`` must be the
    window as known on ``as_of`` (nothing dated later).
    """
    today = window.day_of(as_of)
    samples = [s for s in window.bcell_samples() if s.collected_on <= as_of]
    last = samples[-1] if samples else None
    since = (as_of - (last.collected_on if last else window.start)).days
    in_window = FIRST_POST_INFUSION_DAY <= today <= params.window_days
    regenerated = in_window and find_regeneration(window, params) is not None
    return CountStatus(
        day=today,
        last=last,
        days_since_last_count=since,
        in_window=in_window,
        regenerated=regenerated,
        due=in_window and not regenerated and since > params.count_due_days,
    )
