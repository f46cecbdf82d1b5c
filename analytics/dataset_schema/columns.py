"""The columns of the analysis dataset, each declared once: name, type, meaning, allowed values.

The data dictionary (`analytics.dataset_schema.dictionary`) is generated from ``COLUMNS`` and the
validation (`analytics.dataset_schema.validation`) reads it, so the documentation a statistician
reads and the checks the code runs cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext, gettext_noop

from patients.vocabulary import CR, CRI, RESPONSES, TherapyCategory

#: The window that defines early regeneration (CLINICAL.md section 4); ``early_regen`` in the
#: dataset must agree with ``regen_day`` under this window.
EARLY_REGENERATION_WINDOW_DAYS = 45

CR_RESPONSES = (CR, CRI)
PREEMPTIVE_CATEGORIES = (*(c.value for c in TherapyCategory), "none")


@dataclass(frozen=True)
class Column:
    """One column of the analysis dataset."""

    name: str
    kind: str  # "text", "date", "number", "day", "flag", "code", "choice"
    meaning: str  # a message (gettext_noop): English in the files, translated on the page
    required: bool = False  # blank not allowed
    choices: tuple[str, ...] = ()  # for "choice" and "code" (codes are integers as strings)

    @property
    def allowed_values(self) -> str:
        return self.allowed_values_text(translate=False)

    def meaning_text(self, *, translate: bool) -> str:
        """The meaning in English (files) or in the active language (the page)."""
        text = gettext(self.meaning) if translate else self.meaning
        return text.replace("{window}", str(EARLY_REGENERATION_WINDOW_DAYS))

    def allowed_values_text(self, *, translate: bool) -> str:
        if self.kind in ("choice", "code", "flag"):
            values = self.choices or ("0", "1")
            text = ", ".join(values)
        elif self.kind == "day":
            text = gettext_noop("number >= 0 (days since the first infusion)")
        elif self.kind == "number":
            text = gettext_noop("number >= 0")
        elif self.kind == "date":
            text = gettext_noop("ISO date YYYY-MM-DD")
        else:
            text = gettext_noop("text (a leading = + - @ tab or CR is written after a ')")
        if translate and self.kind not in ("choice", "code", "flag"):
            text = gettext(text)
        if self.required:
            return text
        return (
            gettext("{values}; blank allowed") if translate else "{values}; blank allowed"
        ).replace("{values}", text)

    @property
    def pandas_dtype(self) -> str:
        return {
            "text": "object",
            "choice": "object",
            "date": "datetime64[ns]",
            "number": "float64",
            "day": "float64",
            "flag": "Int64",
            "code": "Int64",
        }[self.kind]


COLUMNS: tuple[Column, ...] = (
    Column("study_id", "text", gettext_noop("Pseudonymous study ID (unique)."), required=True),
    Column("center", "text", gettext_noop("Center code."), required=True),
    Column("product", "text", gettext_noop("CAR-T product of the first infusion."), required=True),
    Column(
        "synthetic",
        "flag",
        gettext_noop("1 if the patient is synthetic (demo data)."),
        required=True,
    ),
    Column(
        "first_infusion_date",
        "date",
        gettext_noop("Date of the first CAR-T infusion (day 0)."),
        True,
    ),
    Column("age_at_infusion", "number", gettext_noop("Age in years at the first infusion.")),
    Column("sex", "choice", gettext_noop("Sex."), choices=("M", "F")),
    Column(
        "best_response",
        "choice",
        gettext_noop("Best response after the first infusion; NE = not evaluable / not assessed."),
        required=True,
        choices=RESPONSES,
    ),
    Column(
        "cr", "flag", gettext_noop("1 if the best response is CR or CRi, else 0."), required=True
    ),
    Column("cr_day", "day", gettext_noop("Day of the first CR/CRi assessment; blank if none.")),
    Column("rfs_days", "day", gettext_noop("RFS time from the first infusion; blank if not CR.")),
    Column("rfs_event", "flag", gettext_noop("1 relapse or death, 0 censored; blank if not CR.")),
    Column(
        "rfs_from_cr_days", "day", gettext_noop("RFS time measured from cr_day; blank if not CR.")
    ),
    Column("os_days", "day", gettext_noop("OS time from the first infusion."), required=True),
    Column("os_event", "flag", gettext_noop("1 death, 0 censored."), required=True),
    Column("relapse_day", "day", gettext_noop("Day of relapse; blank if none.")),
    Column("death_day", "day", gettext_noop("Day of death; blank if none.")),
    Column("hsct_day", "day", gettext_noop("Day of allogeneic HSCT; blank if none.")),
    Column(
        "last_followup_day",
        "day",
        gettext_noop("Day of the last follow-up contact."),
        required=True,
    ),
    Column(
        "cir_event",
        "code",
        gettext_noop(
            "CR patients: 1 relapse, 2 death without relapse, 0 censored (time = rfs_days); "
            "blank if not CR."
        ),
        choices=("0", "1", "2"),
    ),
    Column(
        "regen_day",
        "day",
        gettext_noop("Day of the first detectable PB B-cell count after aplasia."),
    ),
    Column(
        "early_regen",
        "flag",
        gettext_noop(
            "1 if regen_day <= {window} else 0; blank if B-cell aplasia was never documented."
        ),
    ),
    Column(
        "late_regen",
        "flag",
        gettext_noop("1 if regen_day > {window} else 0; blank if aplasia was never documented."),
    ),
    Column(
        "mrd_positive",
        "flag",
        gettext_noop("1 if any post-infusion BM MRD >= threshold; blank if none."),
    ),
    Column(
        "car_loss",
        "flag",
        gettext_noop("1 if BM CAR copies became undetectable after being detectable."),
    ),
    Column(
        "preemptive_category",
        "choice",
        gettext_noop("Category of the first pre-emptive therapy."),
        required=True,
        choices=PREEMPTIVE_CATEGORIES,
    ),
    Column(
        "preemptive_day", "day", gettext_noop("Day the pre-emptive therapy started; blank if none.")
    ),
    # The center's alert definition, beside the study's (regen_day, early_regen, late_regen keep
    # the study's 45 days and > 0 cells/µL whatever the center's parameters are).
    Column(
        "center_regen_day",
        "day",
        gettext_noop(
            "Day of regeneration by the definition the patient's center's alerts use (its "
            "window, threshold, % x ALC and confirmation in force), unlike regen_day (the "
            "study's); blank if none."
        ),
    ),
    Column(
        "center_early_regen",
        "flag",
        gettext_noop(
            "1 if the center's alert for center_regen_day is early regeneration (inside the "
            "center's window), 0 if late recovery; blank if center_regen_day is blank. Unlike "
            "early_regen, not the study's 45-day window."
        ),
    ),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
