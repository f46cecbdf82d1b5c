"""The analysis dataset built from the database: one row per infused patient.

Definitions follow CLINICAL.md section 5; the columns and their meaning are declared once in
`analytics.dataset_schema` (the data dictionary). Only the pseudonymous study ID leaves: no name,
no MRN, no dates of birth. Statistics never read the database: they run on this table, so the
dashboard, the CSV export, `survival_report` and R all see the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

import pandas as pd
from django.utils.translation import gettext, gettext_noop

from analytics.dataset_schema import COLUMN_NAMES
from carttrack.csv_safety import frame_table, write_csv
from monitoring.params import RuleParams
from monitoring.rules.recovery import (
    find_regeneration,
    first_aplasia,
    is_early,
    result_detectable,
)
from monitoring.selectors import params_in_force_for_centers, timelines_read
from monitoring.timeline import Timeline, Window
from patients import units
from patients.models import Infusion, Patient, PreemptiveTherapy

RESPONSE_ORDER = ["CR", "CRi", "PR", "NR", "PD", "NE"]  # best first
STUDY_DEFINITION = RuleParams(version="study")


@dataclass(frozen=True)
class CohortFilter:
    center: str = ""
    product: str = ""
    infused_from: date | None = None
    infused_to: date | None = None

    @property
    def key(self) -> str:
        parts = [
            f"center={self.center}",
            f"product={self.product}",
            f"from={self.infused_from or ''}",
            f"to={self.infused_to or ''}",
        ]
        return "&".join(parts)

    def describe(self, translate: bool = True) -> str:
        """The cohort in words: in the active language (pages), or in English (``translate``
        False: the label a snapshot stores, the same whoever started the computation)."""
        say = gettext if translate else (lambda text: text)
        bits = []
        if self.center:
            bits.append(say(gettext_noop("center {center}")).replace("{center}", self.center))
        if self.product:
            bits.append(say(gettext_noop("product {product}")).replace("{product}", self.product))
        if self.infused_from or self.infused_to:
            bits.append(
                say(gettext_noop("infused {start} to {end}"))
                .replace("{start}", str(self.infused_from or "…"))
                .replace("{end}", str(self.infused_to or "…"))
            )
        return ", ".join(bits) or say(gettext_noop("all infused patients"))


def _regeneration_day(window: Window, params: RuleParams) -> tuple[int | None, bool]:
    """(regeneration day after documented aplasia, whether aplasia was documented), as the
    rules decide them (`monitoring.rules.recovery`)."""
    regeneration = find_regeneration(window, params)
    if regeneration is not None:
        return regeneration.onset.day, True
    return None, first_aplasia(window, params) is not None


def _day(when: date | None, origin: date) -> int | None:
    return None if when is None else (when - origin).days


class PatientRecords(NamedTuple):
    """One patient's records as the dataset reads them: plain values, no model instances (for
    large cohorts, building hundreds of thousands of instances dominated the time)."""

    study_id: str
    center: str
    center_id: int
    synthetic: bool
    sex: str
    date_of_birth: date | None
    infusions: list[tuple[date, str]]  # (infusion_date, product), in stored order
    therapies: list[tuple[date, str]]  # (start_date, category), in stored order
    timeline: Timeline  # dates in the center's zone (monitoring.selectors.timeline_build)
    patient_id: int | None = None  # the Patient's pk (where the derived row is stored)
    center_time_zone: str = ""  # the zone the timeline's dates are in


def _age(birth: date | None, day: date) -> int | None:  # as Patient.age_on
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _last_known_date(records: PatientRecords, responses: list) -> date:
    """The latest date in the records (the responses from the first infusion on)."""
    timeline = records.timeline
    return max(
        [e.date for e in timeline.events]
        + [r.date for r in responses]
        + [r.collected_on for r in timeline.results]
        + [on for on, _ in records.therapies]
        + [on for on, _ in records.infusions]
    )


def _rfs(cr_dates: list[date], relapse, death, last_contact: date, origin: date) -> tuple:
    """(RFS days, RFS event, RFS days from CR, competing-risk event) for a CR patient; all None
    without CR. The competing-risk event: 0 censored, 1 relapse, 2 death without relapse."""
    if not cr_dates:
        return None, None, None, None
    rfs_end = min([d for d in (relapse, death) if d is not None], default=None)
    rfs_days = _day(rfs_end or last_contact, origin)
    rfs_event = 1 if rfs_end else 0
    rfs_from_cr = rfs_days - _day(cr_dates[0], origin)
    cir = 0 if rfs_end is None else (1 if relapse is not None and relapse == rfs_end else 2)
    return rfs_days, rfs_event, rfs_from_cr, cir


def _mrd_positive(results: list, params: RuleParams) -> int | None:
    """1 if any marrow MRD result reached its method's threshold, 0 if none; None: no MRD."""
    mrd = [r for r in results if r.analyte in (units.BM_MRD_FLOW, units.BM_MRD_NGS)]
    if not mrd:
        return None

    def threshold(r):
        if r.analyte == units.BM_MRD_FLOW:
            return params.mrd_flow_threshold_pct
        return params.mrd_ngs_threshold

    return int(
        any(not r.qualifier and r.value is not None and r.value >= threshold(r) for r in mrd)
    )


def _car_loss(results: list) -> int | None:
    """1 if CAR transgene copies became undetectable after being detectable; None: no copies."""
    car = sorted(
        [r for r in results if r.analyte == units.BM_CAR_COPIES], key=lambda r: r.collected_at
    )
    if not car:
        return None
    seen_detectable = False
    for r in car:
        if result_detectable(r):
            seen_detectable = True
        elif seen_detectable:
            return 1
    return 0


def _center_regeneration(
    timeline: Timeline, ended: date | None, params: RuleParams
) -> tuple[int | None, int | None]:
    """(regeneration day, 1 early / 0 late) of the first window by the center's alert definition
    (its window, threshold, % × ALC and confirmation), as the rules see it: the counts known the
    day before a relapse or an allogeneic HSCT that ended monitoring; (None, None) when there is
    no regeneration."""
    if ended is not None:
        timeline = timeline.until(ended - timedelta(days=1))
    windows = timeline.windows()
    regeneration = find_regeneration(windows[0], params) if windows else None
    if regeneration is None:
        return None, None
    return regeneration.onset.day, int(is_early(regeneration, params))


def patient_row(
    records: PatientRecords, params: RuleParams, *, center_params: RuleParams | None = None
) -> dict | None:
    """One row of the analysis table from one patient's records: the study columns by
    ``params`` (the study's definition), the ``center_*`` columns by ``center_params`` (the
    patient's center's alert parameters in force; ``params`` when not given)."""
    infusions = sorted(records.infusions, key=lambda i: i[0])
    if not infusions:
        return None
    origin, product = infusions[0]
    timeline = records.timeline
    responses = [r for r in timeline.responses if r.date >= origin]
    best = min((r.response for r in responses), key=RESPONSE_ORDER.index, default="NE")
    cr_dates = [r.date for r in responses if r.response in ("CR", "CRi")]
    events = timeline.events  # by date

    def first_of(kind):
        return next((e.date for e in events if e.kind == kind and e.date >= origin), None)

    relapse, death, hsct = first_of("relapse"), first_of("death"), first_of("hsct")
    results = timeline.results  # collected_on: the date in the center's zone
    last_contact = death or _last_known_date(records, responses)
    os_days = _day(last_contact, origin)

    cr = 1 if cr_dates else 0
    rfs_days, rfs_event, rfs_from_cr, cir = _rfs(cr_dates, relapse, death, last_contact, origin)

    windows = timeline.windows()
    window = windows[0] if windows else None
    regen_day, aplasia = _regeneration_day(window, params) if window else (None, False)
    if regen_day is not None and relapse is not None and window.date_of(regen_day) >= relapse:
        regen_day = None  # counts at or after relapse are disease, not regeneration
    if regen_day is not None and hsct is not None and window.date_of(regen_day) >= hsct:
        # B cells on or after an allogeneic HSCT are the donor's engrafting, not a loss of the
        # CAR-T's aplasia (CLINICAL.md 4: the transplant ends the window on its date), as the
        # chart and the rules read them.
        regen_day = None

    ended = min((d for d in (relapse, hsct) if d is not None), default=None)
    center_regen_day, center_early = _center_regeneration(timeline, ended, center_params or params)

    before_relapse = [
        r
        for r in results
        if r.collected_on >= origin and (relapse is None or r.collected_on < relapse)
    ]
    therapy = min(records.therapies, key=lambda t: t[0], default=None)
    return {
        "study_id": records.study_id,
        "center": records.center,
        "product": product,
        "synthetic": int(records.synthetic),
        "first_infusion_date": origin.isoformat(),
        "age_at_infusion": _age(records.date_of_birth, origin),
        "sex": records.sex if records.sex in ("M", "F") else None,
        "best_response": best,
        "cr": cr,
        "cr_day": _day(cr_dates[0], origin) if cr_dates else None,
        "rfs_days": rfs_days,
        "rfs_event": rfs_event,
        "rfs_from_cr_days": rfs_from_cr,
        "os_days": os_days,
        "os_event": 1 if death else 0,
        "relapse_day": _day(relapse, origin),
        "death_day": _day(death, origin),
        "hsct_day": _day(hsct, origin),
        "last_followup_day": os_days,
        "cir_event": cir,
        "regen_day": regen_day,
        "early_regen": (
            None if not aplasia else int(regen_day is not None and regen_day <= params.window_days)
        ),
        "late_regen": (
            None if not aplasia else int(regen_day is not None and regen_day > params.window_days)
        ),
        "mrd_positive": _mrd_positive(before_relapse, params),
        "car_loss": _car_loss(before_relapse),
        "preemptive_category": therapy[1] if therapy else "none",
        "preemptive_day": _day(therapy[0], origin) if therapy else None,
        "center_regen_day": center_regen_day,
        "center_early_regen": center_early,
    }


_BATCH = 1000  # patients per round of queries: bounded memory for large registries


def cohort_patients(cohort: CohortFilter):
    """The cohort's patients (with an infusion), ordered by study ID, without their records."""
    qs = Patient.objects.filter(infusions__isnull=False).distinct()
    if cohort.center:
        qs = qs.filter(center__code=cohort.center)
    if cohort.product:
        qs = qs.filter(infusions__infusion_number=1, infusions__product=cohort.product)
    if cohort.infused_from:
        qs = qs.filter(
            infusions__infusion_number=1, infusions__infusion_date__gte=cohort.infused_from
        )
    if cohort.infused_to:
        qs = qs.filter(
            infusions__infusion_number=1, infusions__infusion_date__lte=cohort.infused_to
        )
    return qs.order_by("study_id")


def records_read(patient_ids: list[int]) -> list[PatientRecords]:
    """The patients' records, by study ID, in a constant number of queries (one per record type,
    plain tuples); the timelines through the sweep's reader (`monitoring.selectors`)."""
    timelines = {read.patient_id: read.timeline for read in timelines_read(patient_ids)}
    infusions: dict[int, list] = {pk: [] for pk in patient_ids}
    therapies: dict[int, list] = {pk: [] for pk in patient_ids}
    for patient_id, on, product in Infusion.objects.filter(patient_id__in=patient_ids).values_list(
        "patient_id", "infusion_date", "product"
    ):
        infusions[patient_id].append((on, product))
    for patient_id, on, category in PreemptiveTherapy.objects.filter(
        patient_id__in=patient_ids
    ).values_list("patient_id", "start_date", "category"):
        therapies[patient_id].append((on, category))
    patients = (
        Patient.objects.filter(pk__in=patient_ids)
        .order_by("study_id")
        .values_list(
            "pk",
            "study_id",
            "center__code",
            "center_id",
            "is_synthetic",
            "sex",
            "date_of_birth",
            "center__time_zone",
        )
    )
    return [
        PatientRecords(*values, infusions[pk], therapies[pk], timelines[pk], pk, zone)
        for pk, *values, zone in patients
    ]


def cohort_records(cohort: CohortFilter):
    """Every patient of the cohort with their records, by study ID, read in batches."""
    ids = list(cohort_patients(cohort).values_list("pk", flat=True))
    for start in range(0, len(ids), _BATCH):
        yield from records_read(ids[start : start + _BATCH])


def rows_build(
    records: list[PatientRecords], in_force: dict[int | None, RuleParams] | None = None
) -> list[tuple[PatientRecords, dict | None]]:
    """Each patient's analysis row from their records (None: no infusion), as the analysis
    defines it: the study's definitions (detectable > 0 cells/µL, 45-day window, MRD ≥ 0.01 %),
    whatever a center's alert parameters are, so that centers and published figures are compared
    on one definition and the data dictionary's meaning holds; the center_* columns alone follow
    each center's alert definition (the one resolver). The rows stored per patient
    (`analytics.derived`) and the rows rebuilt from raw records are both built here. ``in_force``:
    the centers' alert parameters, when the caller has read them."""
    if in_force is None:
        in_force = params_in_force_for_centers({r.center_id for r in records}) if records else {}
    return [
        (r, patient_row(r, STUDY_DEFINITION, center_params=in_force[r.center_id])) for r in records
    ]


def analysis_frame(cohort: CohortFilter | None = None) -> pd.DataFrame:
    """The analysis dataset for a cohort, with exactly the data dictionary's columns, rebuilt
    from the raw records (`analytics.derived.analysis_frame_stored`: the same rows, as stored)."""
    cohort = cohort or CohortFilter()
    rows = []
    ids = list(cohort_patients(cohort).values_list("pk", flat=True))
    for start in range(0, len(ids), _BATCH):
        built = rows_build(records_read(ids[start : start + _BATCH]))
        rows.extend(row for _records, row in built if row is not None)
    return pd.DataFrame(rows, columns=list(COLUMN_NAMES))


def analysis_table(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The analysis table as header and rows of text: what ``analysis_csv`` writes and the
    export serves (whole numbers print as 12, not 12.0; blanks stay blank)."""
    out = frame.copy()
    for column in out.columns:
        if (
            pd.api.types.is_float_dtype(out[column])
            and (out[column].dropna() == out[column].dropna().round()).all()
        ):
            out[column] = out[column].astype("Int64")
    return frame_table(out)


def analysis_csv(frame: pd.DataFrame) -> str:
    """The analysis table as CSV text (``carttrack.csv_safety``: a formula cell is quoted, and
    ``read_analysis_csv`` removes that quote)."""
    return write_csv(*analysis_table(frame))


def rows_of_center(
    table: list[list[str]], center_code: str | None
) -> tuple[list[str], list[list[str]]]:
    """An analysis table (header first, as ``read_csv`` gives it) as header and rows, cut
    down to one center's rows (``center_code`` None: every row)."""
    if not table:
        return [], []
    header, *rows = table
    if center_code is None:
        return header, rows
    where = header.index("center")
    return header, [row for row in rows if row[where] == center_code]
