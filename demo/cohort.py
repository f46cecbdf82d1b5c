"""A synthetic demo cohort shaped like the reference study (CLINICAL.md section 6).

55 patients infused with CD19 CAR-T, 45 reaching CR/CRi (81.8 %); among CR patients early B-cell
regenerators relapse more, and those given anti-leukemic pre-emption do better than those given
immunomodulatory therapy. Generated from a fixed seed on fixed reference dates (up to
DATA_CUTOFF), so every run gives the same cohort; `dated` then moves it to the day it is loaded
(every patient's days after infusion kept, so every statistic stays the same), and `live_patients`
adds a few patients in their first weeks today (inside the 45-day window, a count due, one fresh
early regeneration), not yet assessed, so no response, survival or rule statistic counts them.
Plain values only: `load_demo_cohort` stores them through the validated model layer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_UP, Decimal

from patients import units

SEED = 12  # chosen so the cohort's medians sit near the study's 290 (RFS) and 870 (OS) days
DATA_CUTOFF = date(2026, 6, 30)  # the reference cohort's last day (before `dated` moves it)
REFERENCE_TODAY = DATA_CUTOFF + timedelta(days=1)  # loaded on this day, the cohort is not moved
LIVE = "live"  # the group of the patients in their first weeks on the loading day
N_PATIENTS = 55
N_CR = 45

# Groups of CR patients and how many of each (early regenerators split by pre-emption).
EARLY_ANTI, EARLY_IMMUNO, EARLY_NONE, LATE, APLASIA = (
    "early_anti",
    "early_immuno",
    "early_none",
    "late",
    "aplasia",
)
CR_GROUPS = [EARLY_ANTI] * 11 + [EARLY_IMMUNO] * 7 + [EARLY_NONE] * 3 + [LATE] * 10 + [APLASIA] * 14
PRODUCTS = ["CD19 CAR-T (academic)", "tisagenlecleucel", "brexucabtagene autoleucel"]


@dataclass
class DemoLab:
    day: int
    analyte: str
    value: Decimal | None
    unit: str
    qualifier: str = ""
    method: str = ""


@dataclass
class DemoPatient:
    study_id: str
    center_code: str
    sex: str
    date_of_birth: date
    ph_positive: bool
    group: str  # one of the CR groups, or "no_cr"
    infusion_date: date
    product: str
    dose: int
    labs: list[DemoLab] = field(default_factory=list)
    responses: list[tuple[int, str, str]] = field(default_factory=list)  # day, response, MRD
    events: list[tuple[int, str, dict]] = field(default_factory=list)  # day, kind, details
    therapies: list[tuple[int, str, str, str]] = field(
        default_factory=list
    )  # day, cat, agent, detail
    second_infusion_day: int | None = None

    def on(self, day: int) -> date:
        return self.infusion_date + timedelta(days=day)


def _undetectable(day: int, analyte: str, unit: str, method: str = "") -> DemoLab:
    return DemoLab(day, analyte, None, unit, units.UNDETECTABLE, method)


def _bcell_schedule(last_day: int) -> list[int]:
    # PB B-cell counts weekly to day 90, then monthly (CLINICAL/issue: realistic lab schedules).
    days = [d for d in range(7, 91, 7)] + list(range(120, 10_000, 30))
    return [d for d in days if d <= last_day]


def _patient(rng: random.Random, index: int, group: str) -> DemoPatient:
    """One patient of `group`; the draws from `rng` come in a fixed order (the cohort's seed)."""
    p = _demographics(rng, index, group)
    max_follow = (DATA_CUTOFF - p.infusion_date).days
    relapse, death, regen, hsct = _outcome(rng, p, group)
    _preemption(rng, p, group, regen)
    last = min(x for x in (relapse, death, max_follow) if x is not None)
    end = _follow_up_events(rng, p, group, relapse, death, hsct, max_follow)
    last_lab = min(last, end)
    _blood_counts(rng, p, regen, last_lab)
    _marrow(rng, p, group, last_lab)
    if p.second_infusion_day is not None and p.second_infusion_day >= last_lab:
        p.second_infusion_day = None
        p.therapies = [(d, c, "chemotherapy", "FLAG-Ida") for d, c, _a, _x in p.therapies]
    p.therapies = [t for t in p.therapies if t[0] < last_lab]
    return p


def _demographics(rng: random.Random, index: int, group: str) -> DemoPatient:
    center = "alpha" if index % 3 else "beta"
    infusion = date(2021, 3, 1) + timedelta(days=index * 23 + rng.randint(0, 12))
    age_years = rng.randint(8, 68)
    return DemoPatient(
        study_id=f"DEMO-{index + 1:03d}",
        center_code=center,
        sex=rng.choice("FM"),
        date_of_birth=infusion - timedelta(days=age_years * 365 + rng.randint(0, 364)),
        ph_positive=rng.random() < 0.25,
        group=group,
        infusion_date=infusion,
        product=rng.choice(PRODUCTS),
        dose=rng.choice([1, 2, 3, 5]) * 1_000_000,
    )


def _outcome(rng: random.Random, p: DemoPatient, group: str) -> tuple:
    """The day-28 response, then (relapse, death, regeneration, HSCT) days from infusion, each
    None when it did not happen (before the data cutoff is applied)."""
    relapse = death = regen = hsct = None
    if group == "no_cr":
        p.responses.append((28, rng.choice(["NR", "NR", "PR", "PD"]), "positive"))
        death = rng.randint(60, 420)
        return relapse, death, regen, hsct
    p.responses.append((28, "CR" if rng.random() < 0.8 else "CRi", "negative"))
    if group.startswith("early"):
        regen = rng.choice([14, 21, 28, 35, 42])
    elif group == LATE:
        regen = rng.choice([49, 56, 70, 84, 120, 150, 180])
    if group in (EARLY_IMMUNO, EARLY_NONE):
        relapse = regen + rng.randint(25, 150)
    elif group == EARLY_ANTI:
        relapse = rng.randint(150, 600) if rng.random() < 0.5 else None
    elif group == LATE:
        relapse = regen + rng.randint(60, 500) if rng.random() < 0.4 else None
    else:
        draw = rng.random()
        if draw < 0.4:
            relapse = rng.randint(90, 600)
        elif draw < 0.55:
            death = rng.randint(60, 300)  # non-relapse mortality
    if relapse is not None:
        death = relapse + rng.randint(45, 800)
    if relapse is None and death is None and rng.random() < 0.2:
        hsct = rng.randint(70, 140)  # consolidative allogeneic transplant
    return relapse, death, regen, hsct


def _preemption(rng: random.Random, p: DemoPatient, group: str, regen: int | None) -> None:
    """Early regenerators (but EARLY_NONE) get pre-emptive therapy 2 to 7 days after."""
    if not group.startswith("early") or group == EARLY_NONE:
        return
    start = regen + rng.randint(2, 7)
    if group == EARLY_ANTI:
        agent, detail = rng.choice(
            [
                ("chemotherapy", "FLAG-Ida"),
                ("targeted", "inotuzumab ozogamicin"),
                ("targeted", "blinatumomab"),
                ("second_cart", "second CD19 CAR-T"),
            ]
        )
        p.therapies.append((start, "anti_leukemic", agent, detail))
        if agent == "second_cart":
            p.second_infusion_day = start
    else:
        agent, detail = rng.choice([("interferon", "IFN-α2b"), ("il2", "low-dose IL-2")])
        p.therapies.append((start, "immunomodulatory", agent, detail))


def _follow_up_events(rng, p: DemoPatient, group, relapse, death, hsct, max_follow) -> int:
    """The events up to the data cutoff (or an earlier loss to follow-up); returns the last day
    the patient was followed."""
    if death is not None and death > max_follow:
        death = None
    if relapse is not None and relapse > max_follow:
        relapse = None
    end = death if death is not None else max_follow
    if death is None and rng.random() < 0.1:
        end = rng.randint(min(200, max_follow), max_follow)  # lost to follow-up earlier
        if relapse is not None and relapse > end:
            relapse = None
    if hsct is not None and hsct < end:
        p.events.append((hsct, "hsct", {}))
    if relapse is not None:
        cd19 = rng.choice(["positive"] * 6 + ["negative"] * 3 + ["unknown"])
        p.events.append((relapse, "relapse", {"relapse_cd19": cd19, "relapse_site": "bone marrow"}))
    if death is None:
        p.events.append((end, "last_followup", {}))
        return end
    if relapse is not None or group == "no_cr":
        cause = "leukemia"
    else:
        cause = rng.choice(["infection", "cytokine release syndrome", "GvHD"])
    p.events.append((death, "death", {"death_cause": cause}))
    return end


def _blood_counts(rng: random.Random, p: DemoPatient, regen: int | None, last_lab: int) -> None:
    """Baseline, then PB B cells + ALC on the schedule until relapse, death or the end."""
    p.labs.append(
        DemoLab(
            -5,
            units.PB_BCELL_ABS,
            Decimal(rng.randint(20, 300)),
            units.CELLS_PER_UL,
            method="flow cytometry",
        )
    )
    count = Decimal(0)
    for day in _bcell_schedule(last_lab):
        reaplasia = p.second_infusion_day is not None and day >= p.second_infusion_day + 7
        if regen is not None and day >= regen and not reaplasia:
            # Recovering B cells rise over weeks, then plateau in the normal range.
            count = min(
                Decimal(rng.randint(150, 600)),
                max(Decimal(rng.randint(2, 9)), (count * Decimal("2.2")).quantize(Decimal(1))),
            )
            p.labs.append(
                DemoLab(day, units.PB_BCELL_ABS, count, units.CELLS_PER_UL, method="flow cytometry")
            )
        elif rng.random() < 0.15:
            p.labs.append(
                DemoLab(
                    day, units.PB_BCELL_ABS, Decimal(0), units.CELLS_PER_UL, method="flow cytometry"
                )
            )
        else:
            p.labs.append(
                _undetectable(day, units.PB_BCELL_ABS, units.CELLS_PER_UL, "flow cytometry")
            )
        p.labs.append(DemoLab(day, units.ALC, _alc(rng, p.labs[-1]), units.GIGA_PER_L))


def _alc(rng: random.Random, bcells: DemoLab) -> Decimal:
    alc = Decimal(rng.randint(3, 25)) / Decimal(10)  # ×10⁹/L, as many analysers report
    if bcells.value:
        # B cells are lymphocytes (at most about a quarter of them here): a plausible sample
        # (CLINICAL.md's same-sample check) whatever the draw above.
        floor = (bcells.value * 4 / Decimal(1000)).quantize(Decimal("0.1"), ROUND_UP)
        alc = max(alc, floor)
    return alc


def _marrow(rng: random.Random, p: DemoPatient, group: str, last_lab: int) -> None:
    """Bone marrow at about days 28, 90 and 180: MRD and CAR transgene copies."""
    car_lost = rng.random() < 0.3
    for day in (28, 90, 180):
        if day > last_lab:
            break
        if group != "no_cr" and rng.random() < 0.8:
            p.labs.append(
                _undetectable(day, units.BM_MRD_FLOW, units.PERCENT_CELLS, "flow cytometry")
            )
        else:
            mrd = Decimal(rng.choice(["0.005", "0.02", "0.08", "0.4", "3.5"]))
            p.labs.append(
                DemoLab(day, units.BM_MRD_FLOW, mrd, units.PERCENT_CELLS, method="flow cytometry")
            )
        if car_lost and day > 28:
            p.labs.append(_undetectable(day, units.BM_CAR_COPIES, units.COPIES_PER_UG, "qPCR"))
        else:
            copies = Decimal(rng.randint(200, 90_000))
            p.labs.append(
                DemoLab(day, units.BM_CAR_COPIES, copies, units.COPIES_PER_UG, method="qPCR")
            )


def generate_cohort(seed: int = SEED) -> list[DemoPatient]:
    """The whole demo cohort, the same every time for one seed."""
    rng = random.Random(seed)
    groups = CR_GROUPS + ["no_cr"] * (N_PATIENTS - N_CR)
    rng.shuffle(groups)
    return [_patient(rng, index, group) for index, group in enumerate(groups)]


def _age_years(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def dated(cohort: list[DemoPatient], today: date) -> list[DemoPatient]:
    """The cohort moved so that its last day is the day before ``today``: every date moves by
    the same number of days, every day after infusion (all the records but birth and infusion
    are kept as days) and every age at infusion stay as they were."""
    shift = today - REFERENCE_TODAY
    moved = []
    for p in cohort:
        infusion = p.infusion_date + shift
        birth = p.date_of_birth + shift
        age = _age_years(p.date_of_birth, p.infusion_date)
        while _age_years(birth, infusion) > age:  # a 29 February on the way: the same age
            birth += timedelta(days=1)
        while _age_years(birth, infusion) < age:
            birth -= timedelta(days=1)
        moved.append(replace(p, infusion_date=infusion, date_of_birth=birth))
    return moved


# (study ID, center, sex, age, days since infusion on the loading day, PB B-cell counts by day:
# None not detectable). None of them has a response assessment yet (day 28 is still ahead).
LIVE_PATIENTS = [
    # A fresh early regeneration: aplasia on days 7 and 14, 6 cells/µL on day 21 (two days ago).
    ("DEMO-L01", "alpha", "F", 34, 23, {-5: 120, 7: None, 14: None, 21: 6}),
    # A count due: the last count was day 7, twelve days ago.
    ("DEMO-L02", "beta", "M", 52, 19, {-5: 60, 7: None}),
    # Inside the window, in aplasia, counted two days ago.
    ("DEMO-L03", "alpha", "M", 19, 16, {-5: 90, 7: None, 14: None}),
    ("DEMO-L04", "beta", "F", 61, 9, {-5: 200, 7: None}),
]


def live_patients(today: date) -> list[DemoPatient]:
    """The patients in their first weeks on ``today`` (see LIVE_PATIENTS); no random draws, so
    the cohort's seed gives the same cohort with or without them."""
    patients = []
    for study_id, center, sex, age, since, counts in LIVE_PATIENTS:
        infusion = today - timedelta(days=since)
        p = DemoPatient(
            study_id=study_id,
            center_code=center,
            sex=sex,
            date_of_birth=infusion - timedelta(days=age * 365 + 100),
            ph_positive=False,
            group=LIVE,
            infusion_date=infusion,
            product=PRODUCTS[0],
            dose=2_000_000,
        )
        for day, value in counts.items():
            if value is None:
                lab = _undetectable(day, units.PB_BCELL_ABS, units.CELLS_PER_UL, "flow cytometry")
            else:
                lab = DemoLab(
                    day,
                    units.PB_BCELL_ABS,
                    Decimal(value),
                    units.CELLS_PER_UL,
                    "",
                    "flow cytometry",
                )
            p.labs.append(lab)
            p.labs.append(DemoLab(day, units.ALC, Decimal("1.2"), units.GIGA_PER_L))
        patients.append(p)
    return patients
