"""``manage.py check_timeline``: findings as JSON from a file, with no database.

These tests have no ``db`` fixture, so pytest-django would fail any query the command made.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "early-regeneration.json"


def run(*args: str) -> dict:
    out = io.StringIO()
    call_command("check_timeline", *args, stdout=out)
    return json.loads(out.getvalue())


def test_prints_the_findings_of_the_example_as_json():
    report = run(str(EXAMPLE), "--as-of", "2025-04-09")
    assert report["patient"] == "CT-0007"
    assert report["as_of"] == "2025-04-09"
    assert [(f["rule"], f["day"], f["severity"]) for f in report["findings"]] == [
        ("early_regeneration", 35, "high")
    ]
    assert report["params"]["version"] == "default-1"


def test_as_of_limits_what_is_known():
    report = run(str(EXAMPLE), "--as-of", "2025-04-06")  # day 34: the day-35 count is not known
    assert report["findings"] == []
    assert report["evaluated_through"] == "2025-04-06"
    assert run(str(EXAMPLE))["evaluated_through"] == "2025-04-09"  # the latest date in the file


def test_count_due_reminder_with_as_of(tmp_path):
    document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    document["results"] = [r for r in document["results"] if r["id"] <= 3]  # counts to day 14
    path = tmp_path / "sparse.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    report = run(str(path), "--as-of", "2025-03-25")  # day 22: last count 8 days old
    assert [(f["rule"], f["day"], f["severity"]) for f in report["findings"]] == [
        ("bcell_count_due", 22, "reminder")
    ]
    assert run(str(path))["findings"] == []  # no clock, no reminder


def test_params_file_changes_the_definition(tmp_path):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"version": "strict-1", "bcell_threshold": "20"}))
    report = run(str(EXAMPLE), "--params", str(params))
    assert report["findings"] == []  # 13.44 cells/µL is not above 20
    assert report["params"]["bcell_threshold"] == "20"
    assert "above 20 cells/µL" in report["definition"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "{not json",
            "not valid JSON: Expecting property name enclosed in double quotes at line 1",
        ),
        ('{"infusions": [{"date": "2025-02-30"}]}', "infusions[0]: date must be a date YYYY-MM-DD"),
        ("[]", "the timeline must be a JSON object"),
    ],
)
def test_bad_timeline_is_a_command_error_naming_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError) as error:
        run(str(path))
    assert str(error.value).startswith(str(path))
    assert message in str(error.value)


def test_missing_file_bad_date_and_bad_params_are_command_errors(tmp_path):
    with pytest.raises(CommandError, match="cannot read the timeline file"):
        run(str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="--as-of must be a date YYYY-MM-DD"):
        run(str(EXAMPLE), "--as-of", "09/04/2025")
    params = tmp_path / "params.json"
    params.write_text('{"window_days": 30}')
    with pytest.raises(CommandError, match="give them their own version label"):
        run(str(EXAMPLE), "--params", str(params))
    params.write_text("{")
    with pytest.raises(CommandError, match="not valid JSON"):
        run(str(EXAMPLE), "--params", str(params))
    with pytest.raises(CommandError, match="cannot read the parameter file"):
        run(str(EXAMPLE), "--params", str(tmp_path / "none.json"))


def test_runs_from_the_command_line_without_a_database(tmp_path):
    env = {
        **os.environ,
        "SECRET_KEY": "x",
        # An unreachable database: the command must not need one.
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check_timeline", str(EXAMPLE)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["findings"][0]["rule"] == "early_regeneration"
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    done = subprocess.run(
        [sys.executable, "manage.py", "check_timeline", str(bad)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "not valid JSON" in done.stderr


# --- --center: a center's stored parameters (reads the database, writes nothing) --------------


@pytest.mark.django_db
def test_center_parameters_are_used_and_named(center, tmp_path):
    from django.core.management import call_command

    from monitoring.models import Alert, RuleParameterSet
    from monitoring.services import rule_parameters_publish

    rule_parameters_publish(center=center, user=None, values={"bcell_threshold": 10})
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "early-regeneration.json"
    out = io.StringIO()
    call_command("check_timeline", str(example), "--center", center.code, stdout=out)
    report = json.loads(out.getvalue())
    assert report["params"]["version"] == f"{center.code}-v1"
    assert report["params"]["bcell_threshold"] == "10"
    assert RuleParameterSet.objects.count() == 1 and Alert.objects.count() == 0


@pytest.mark.django_db
def test_unknown_center_is_a_clear_error(center):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "early-regeneration.json"
    with pytest.raises(CommandError, match="no center with the code 'nowhere'"):
        call_command("check_timeline", str(example), "--center", "nowhere")
