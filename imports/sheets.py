"""What an import spreadsheet holds: one sheet (or one CSV file) per record type, its columns
with their kinds and help, and the empty template a center downloads.

Reading a file is ``imports.spreadsheet``; its rows become import records in
``imports.sheet_records``.
"""

from __future__ import annotations

from dataclasses import dataclass

import tablib
from django.utils.translation import gettext_lazy as _

from carttrack.csv_safety import write_csv


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "text"  # text, date, datetime, decimal, int, bool
    required: bool = False
    field: str = ""  # the record's field, when it differs from the column's name
    help: str = ""  # shown in the template's guide, in the downloader's language


SHEETS: dict[str, tuple[Column, ...]] = {
    "patients": (
        Column("study_id", required=True, help=_("pseudonymous ID: letters, digits, - _ .")),
        Column("center", field="center_code", help=_("center code; empty: your own center")),
        Column("sex", help="F, M or U"),
        Column("date_of_birth", "date"),
        Column("mrn", help=_("restricted identifier")),
        Column("full_name", help=_("restricted identifier")),
        Column("diagnosis"),
        Column("ph_positive", "bool", help=_("yes / no / empty")),
    ),
    "infusions": (
        Column("study_id", required=True),
        Column("infusion_date", "date", required=True, help=_("day 0")),
        Column("product", required=True),
        Column("infusion_number", "int", help=_("empty: numbered by date")),
        Column("target_antigen", help=_("default CD19")),
        Column("dose_cells_per_kg", "decimal"),
        Column("lymphodepletion"),
    ),
    "labs": (
        Column("study_id", required=True),
        Column(
            "collected_at",
            "datetime",
            required=True,
            help=_("YYYY-MM-DD HH:MM in the center's time zone, or with an offset"),
        ),
        Column("analyte", required=True, help="pb_bcell_abs, pb_bcell_pct, alc, bm_mrd_flow, ..."),
        Column("value", "decimal", help=_("empty with a qualifier")),
        Column("unit", help="cells/uL, 10^9/L, 10^6/L, % lymphocytes, % cells, fraction, ..."),
        Column("qualifier", help=_("undetectable or below_lod instead of a value")),
        Column("method"),
        Column(
            "confirmed",
            "bool",
            help=_("yes: the value was checked and is correct though refused as unusual"),
        ),
    ),
    "responses": (
        Column("study_id", required=True),
        Column("assessed_on", "date", required=True),
        Column("response", required=True, help="CR, CRi, PR, NR, PD, NE"),
        Column("mrd_status", help="negative, positive, unknown"),
        Column("notes"),
    ),
    "events": (
        Column("study_id", required=True),
        Column("kind", required=True, help="relapse, death, hsct, last_followup"),
        Column("event_date", "date", required=True),
        Column("relapse_cd19", help="positive, negative, unknown"),
        Column("relapse_site"),
        Column("death_cause"),
        Column("notes"),
    ),
    "therapies": (
        Column("study_id", required=True),
        Column("start_date", "date", required=True),
        Column("category", required=True, help="anti_leukemic, immunomodulatory, other"),
        Column("agent", required=True, help="chemotherapy, targeted, second_cart, interferon, ..."),
        Column("agent_detail"),
        Column("notes"),
    ),
}
FIELD_COLUMNS = {c.field: c.name for cols in SHEETS.values() for c in cols if c.field}


def template(fmt: str, sheet: str = "labs") -> bytes:
    """An empty spreadsheet with the right headers (XLSX: every sheet and a column guide)."""
    if fmt == "csv":
        return write_csv([c.name for c in SHEETS[sheet]], []).encode()
    book = tablib.Databook(
        [
            tablib.Dataset(headers=[c.name for c in columns], title=name)
            for name, columns in SHEETS.items()
        ]
        + [
            tablib.Dataset(
                *[
                    (name, c.name, "yes" if c.required else "", c.kind, str(c.help))
                    for name, columns in SHEETS.items()
                    for c in columns
                ],
                headers=["sheet", "column", "required", "type", "meaning"],
                title="guide",
            )
        ]
    )
    return book.export("xlsx")
