"""The data dictionary of the analysis dataset, generated from its columns: as plain rows, as
a table (the CSV download), as Markdown (with the spreadsheet-safety and small-cell notes) and as
the page shows it."""

from __future__ import annotations

from django.utils.translation import pgettext_lazy

from analytics.dataset_schema.columns import COLUMNS
from analytics.disclosure import DISCLOSURE_NOTE
from carttrack.csv_safety import FORMULA_NOTE

#: The data dictionary as plain rows (name, type, meaning, allowed values), in English: the
#: CSV and Markdown files are the same for every reader, like the column names they describe.
DATA_DICTIONARY: list[dict[str, str]] = [
    {
        "name": c.name,
        "type": c.kind,
        "meaning": c.meaning_text(translate=False),
        "allowed_values": c.allowed_values,
    }
    for c in COLUMNS
]

_KIND_SHOWN = {
    "text": pgettext_lazy("column type", "text"),
    "date": pgettext_lazy("column type", "date"),
    "number": pgettext_lazy("column type", "number"),
    "day": pgettext_lazy("column type", "day"),
    "flag": pgettext_lazy("column type", "flag"),
    "code": pgettext_lazy("column type", "code"),
    "choice": pgettext_lazy("column type", "choice"),
}


def data_dictionary_shown() -> list[dict[str, str]]:
    """The data dictionary as the page shows it: column names and values as they are in the
    file, type, meaning and allowed values in the active language."""
    return [
        {
            "name": c.name,
            "type": str(_KIND_SHOWN[c.kind]),
            "meaning": c.meaning_text(translate=True),
            "allowed_values": c.allowed_values_text(translate=True),
        }
        for c in COLUMNS
    ]


def data_dictionary_table() -> tuple[list[str], list[list[str]]]:
    """The data dictionary as header and rows (its CSV download: ``csv_response``)."""
    header = list(DATA_DICTIONARY[0])
    return header, [[row[key] for key in header] for row in DATA_DICTIONARY]


def data_dictionary_markdown() -> str:
    """The data dictionary as a Markdown table."""
    lines = ["| column | type | meaning | allowed values |", "|---|---|---|---|"]
    for row in DATA_DICTIONARY:
        cells = [row["name"], row["type"], row["meaning"], row["allowed_values"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return (
        "\n".join(lines)
        + "\n\n**Spreadsheet safety.** "
        + FORMULA_NOTE
        + "\n\n**Small cells and differencing.** "
        + DISCLOSURE_NOTE
        + "\n"
    )
