"""The analysis dataset: one row per infused patient, the contract between the exporter and
the statistics.

- `columns`: every column declared once (``COLUMNS``);
- `dictionary`: the data dictionary generated from them (``DATA_DICTIONARY``, its table, Markdown,
  the page), so the documentation a statistician reads and the validation the code runs cannot
  drift apart;
- `cells`, `checks` and `validation`: a table read (``read_analysis_csv``) or checked
  (``validate_analysis_frame``) cell by cell and row by row, every problem named by line, study
  ID and column.

Blank cells (and ``NA``, which R's ``write.csv`` writes) mean "not applicable / not known".
The names below are the package's public interface, used across analytics and the tests.
"""

from analytics.dataset_schema.columns import (
    COLUMN_NAMES,
    COLUMNS,
    CR_RESPONSES,
    EARLY_REGENERATION_WINDOW_DAYS,
    PREEMPTIVE_CATEGORIES,
    Column,
)
from analytics.dataset_schema.dictionary import (
    DATA_DICTIONARY,
    data_dictionary_markdown,
    data_dictionary_shown,
    data_dictionary_table,
)
from analytics.dataset_schema.validation import (
    MAX_REPORTED_PROBLEMS,
    ExcludedRow,
    read_analysis_csv,
    read_analysis_csv_lenient,
    split_analysis_frame,
    validate_analysis_frame,
)

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "CR_RESPONSES",
    "DATA_DICTIONARY",
    "EARLY_REGENERATION_WINDOW_DAYS",
    "MAX_REPORTED_PROBLEMS",
    "PREEMPTIVE_CATEGORIES",
    "Column",
    "ExcludedRow",
    "data_dictionary_markdown",
    "data_dictionary_shown",
    "data_dictionary_table",
    "read_analysis_csv",
    "read_analysis_csv_lenient",
    "split_analysis_frame",
    "validate_analysis_frame",
]
