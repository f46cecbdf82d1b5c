"""``manage.py survival_report`` and the dataset contract it reads (no database: pytest-django
blocks any query here, so these tests also prove the command needs none)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analytics.dataset_schema import (
    COLUMN_NAMES,
    DATA_DICTIONARY,
    data_dictionary_markdown,
    data_dictionary_table,
    read_analysis_csv,
)
from analytics.report import headline_report
from carttrack.csv_safety import write_csv
from tests.analytics.synthetic_cohort import synthetic_rows, write_synthetic_csv

HEADLINE_KEYS = {
    "options",
    "cohort",
    "cr_rate",
    "rfs",
    "os",
    "logrank",
    "landmark",
    "cox",
    "cumulative_incidence",
}


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("survival_report", *args, stdout=out)
    return out.getvalue()


def _write_rows(path: Path, rows: list[dict[str, str]], columns=COLUMN_NAMES) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _no_nan(text: str):
    def refuse(constant: str):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def cohort_csv(tmp_path: Path) -> Path:
    return write_synthetic_csv(tmp_path / "cohort.csv")


def test_report_prints_every_headline_figure(cohort_csv):
    output = _run("--csv", str(cohort_csv))
    report = headline_report(read_analysis_csv(cohort_csv))
    cr = report["cr_rate"]
    assert f"CR rate {cr['successes']}/{cr['n']} = {cr['proportion'] * 100:.1f} %" in output
    assert "Clopper-Pearson exact" in output
    rfs = report["rfs"]["median_brookmeyer_crowley"]
    assert f"{rfs['median']:.1f} days, 95 % CI {rfs['lower']:.1f}-{rfs['upper']:.1f}" in output
    assert "Collett" in output and "Brookmeyer-Crowley" in output
    for comparison in ("early regeneration", "preemptive category", "mrd positive", "car loss"):
        assert comparison in output
    assert "Landmark at day 45" in output
    assert f"HR {report['cox']['time_varying']['hazard_ratio']:.3f}" in output
    assert "relapse day 365" in output and "death without relapse day 180" in output


def test_json_output_parses_has_the_keys_and_no_nan(cohort_csv):
    report = _no_nan(_run("--csv", str(cohort_csv), "--json"))
    assert HEADLINE_KEYS <= set(report)
    assert set(report["logrank"]) == {
        "early_regeneration",
        "preemptive_category",
        "mrd_positive",
        "car_loss",
    }
    assert {"median_brookmeyer_crowley", "median_symmetric", "risk_table"} <= set(report["rfs"])
    assert report["cox"]["time_varying"]["ties"] == "efron"
    assert [p["day"] for p in report["cumulative_incidence"]["relapse"]] == [180, 365]


def test_options_reach_the_report(cohort_csv):
    report = json.loads(
        _run("--csv", str(cohort_csv), "--json", "--rfs-origin", "cr", "--censor-at-hsct")
    )
    assert report["options"]["rfs_origin"] == "cr"
    assert report["options"]["censor_at_hsct"] is True
    assert report["rfs"]["origin"] == "first CR assessment"


def test_tiny_cohort_reports_untestable_comparisons_without_nan(tmp_path):
    # six CR patients, none given immunomodulatory therapy, MRD never measured
    rows = [r for r in synthetic_rows(40, seed=5) if r["cr"] == "1"][:6]
    for row in rows:
        row.update(
            mrd_positive="",
            early_regen="1",
            regen_day="20",
            late_regen="0",
            preemptive_category="anti_leukemic",
            preemptive_day="23",
        )
    report = _no_nan(_run("--csv", str(_write_rows(tmp_path / "tiny.csv", rows)), "--json"))
    preemptive = report["logrank"]["preemptive_category"]
    assert preemptive["p_value"] is None
    assert "no patients in group 'immunomodulatory'" in preemptive["reason"]
    assert [g["n"] for g in preemptive["groups"]] == [6, 0]
    assert report["logrank"]["mrd_positive"]["n_excluded"] == 6
    assert report["cox"]["time_varying"]["hazard_ratio"] is None


def test_missing_column_is_a_clear_command_error(tmp_path):
    columns = [c for c in COLUMN_NAMES if c != "regen_day"]
    path = _write_rows(tmp_path / "bad.csv", synthetic_rows(10), columns)
    with pytest.raises(CommandError, match="missing column\\(s\\) 'regen_day'"):
        _run("--csv", str(path))


def test_non_numeric_day_names_line_patient_and_column(tmp_path):
    rows = synthetic_rows(10)
    target = next(i for i, r in enumerate(rows) if r["cr"] == "1")
    rows[target]["rfs_days"] = "abc"
    path = _write_rows(tmp_path / "bad.csv", rows)
    line = target + 2  # header is line 1
    study_id = rows[target]["study_id"]
    expected = f"line {line} \\(study_id {study_id}\\), column 'rfs_days': 'abc' is not a number"
    with pytest.raises(CommandError, match=expected):
        _run("--csv", str(path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"os_days": "-3"}, "column 'os_days': '-3' is negative"),
        ({"cr": "0"}, "column 'cr': is 0 but best_response is"),
        ({"early_regen": "0", "regen_day": "12"}, "column 'early_regen': is 0 but regen_day is 12"),
        ({"cir_event": "2", "rfs_event": "0"}, "column 'cir_event': is 2 but rfs_event is 0"),
        ({"preemptive_category": "interferon"}, "'interferon' is not one of anti_leukemic"),
        ({"first_infusion_date": "03/01/2024"}, "is not an ISO date"),
        ({"rfs_event": ""}, "column 'rfs_event': is blank but the patient is in CR"),
        ({"rfs_days": "5000"}, "column 'rfs_days': \\(5000\\) is longer than os_days"),
    ],
)
def test_inconsistent_rows_are_rejected_with_the_field_named(tmp_path, change, message):
    rows = synthetic_rows(10)
    next(r for r in rows if r["cr"] == "1").update(change)
    with pytest.raises(CommandError, match=message):
        _run("--csv", str(_write_rows(tmp_path / "bad.csv", rows)))


def test_unreadable_inputs_are_command_errors(tmp_path):
    with pytest.raises(CommandError, match="not found"):
        _run("--csv", str(tmp_path / "absent.csv"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CommandError, match="not a readable CSV"):
        _run("--csv", str(empty))
    rows = synthetic_rows(10)
    next(r for r in rows if r["cr"] == "1")["rfs_from_cr_days"] = ""
    path = _write_rows(tmp_path / "no_cr_time.csv", rows)
    with pytest.raises(CommandError, match="rfs_from_cr_days for every CR patient"):
        _run("--csv", str(path), "--rfs-origin", "cr")


def test_blank_and_r_style_na_read_as_missing_and_types_are_set(tmp_path):
    rows = synthetic_rows(10)
    cr_row = next(r for r in rows if r["cr"] == "1")
    cr_row.update(hsct_day="NA", age_at_infusion="")
    df = read_analysis_csv(_write_rows(tmp_path / "ok.csv", rows))
    assert list(df.columns) == list(COLUMN_NAMES)
    assert str(df["rfs_event"].dtype) == "Int64" and str(df["rfs_days"].dtype) == "float64"
    assert str(df["first_infusion_date"].dtype).startswith("datetime64")
    row = df[df["study_id"] == cr_row["study_id"]].iloc[0]
    assert row.isna()["hsct_day"] and row.isna()["age_at_infusion"]


def test_data_dictionary_describes_every_column():
    assert [d["name"] for d in DATA_DICTIONARY] == list(COLUMN_NAMES)
    assert all(d["meaning"] and d["allowed_values"] for d in DATA_DICTIONARY)
    parsed = list(csv.DictReader(io.StringIO(write_csv(*data_dictionary_table()))))
    assert parsed == DATA_DICTIONARY
    markdown = data_dictionary_markdown()
    table = markdown.split("\n\n")[0]  # then the note on spreadsheet formulas
    assert table.count("\n") == len(COLUMN_NAMES) + 1
    assert "single quote" in markdown
    assert "| best_response | choice |" in markdown
