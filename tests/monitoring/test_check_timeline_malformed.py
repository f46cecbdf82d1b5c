"""``check_timeline`` refuses every malformed file with a message, never a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_counts import record

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "docs" / "examples" / "early-regeneration.json").read_text())


def check(tmp_path: Path, text: str, *args: str) -> str:
    """The command's output, or its refusal's message (a CommandError, never anything else)."""
    path = tmp_path / "case.json"
    path.write_text(text, encoding="utf-8")
    out = io.StringIO()
    try:
        call_command("check_timeline", str(path), *args, stdout=out)
    except CommandError as refused:
        return f"refused: {refused}"
    return out.getvalue()


def with_result(**changes) -> str:
    document = json.loads(json.dumps(EXAMPLE))
    valued = next(r for r in document["results"] if "value" in r)
    valued.update(changes)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (with_result(value="1E+999999"), "out of range for a lab value"),
        (
            '{"results": [{"analyte": "alc", "collected": "2025-03-01", "value": 1E+999999, '
            '"unit": "cells/uL"}]}',
            "out of range",
        ),
        (with_result(value="NaN"), "finite number"),
        (with_result(collected="0001-01-01T00:30:00+05:00"), "outside 1900–2200"),
        (with_result(collected="9999-12-31T23:30:00-05:00"), "outside 1900–2200"),
        (with_result(collected="0001-01-01"), "outside 1900–2200"),
        ("[" * 1000 + "]" * 1000, "refused"),
        ('{"patient": ' + "[" * 5000 + "]" * 5000 + "}", "refused"),
        ("\udcff", "refused"),
        ("", "not valid JSON"),
    ],
)
def test_malformed_files_are_refused_with_a_message(tmp_path, text, says):
    try:
        answer = check(tmp_path, text)
    except UnicodeEncodeError:  # a file no editor could write: the bytes version below
        (tmp_path / "case.json").write_bytes(b"\xff\xfe{")
        answer = check_bytes(tmp_path)
    assert answer.startswith("refused: ") and says in answer, answer


def check_bytes(tmp_path: Path) -> str:
    out = io.StringIO()
    try:
        call_command("check_timeline", str(tmp_path / "case.json"), stdout=out)
    except CommandError as refused:
        return f"refused: {refused}"
    return out.getvalue()


@pytest.mark.parametrize("as_of", ["9999-12-31", "0001-01-01", "2025-02-30", "x"])
def test_an_as_of_at_the_ends_of_the_calendar_is_answered_or_refused(tmp_path, as_of):
    answer = check(tmp_path, json.dumps(EXAMPLE), "--as-of", as_of)
    assert answer.startswith("refused: ") or "findings" in json.loads(answer)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "2025-03-01",
            "2025-03-08T08:00:00+01:00",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31",
            "1E+999999",
            "pb_bcell_abs",
            "alc",
            "cells/uL",
            "CR",
            "relapse",
            "undetectable",
            "Europe/Berlin",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "patient",
                    "birth_date",
                    "time_zone",
                    "infusions",
                    "results",
                    "responses",
                    "events",
                    "date",
                    "number",
                    "id",
                    "analyte",
                    "collected",
                    "value",
                    "unit",
                    "qualifier",
                    "response",
                    "kind",
                    "specimen",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def test_any_json_document_is_evaluated_or_refused_never_a_traceback(tmp_path):
    cases = {"n": 0}

    @FUZZ
    @given(document=JSON)
    def evaluate(document):
        cases["n"] += 1
        answer = check(tmp_path, json.dumps(document))
        assert answer.startswith("refused: ") or json.loads(answer)["findings"] is not None

    evaluate()
    record("hypothesis_check_timeline_any_document", cases["n"])
    assert cases["n"] >= 200


def test_one_wrong_field_of_a_valid_file_is_refused_never_a_traceback(tmp_path):
    cases = {"n": 0}

    @FUZZ
    @given(
        index=st.integers(0, len(EXAMPLE["results"]) - 1),
        field=st.sampled_from(["value", "collected", "unit", "analyte", "qualifier", "id"]),
        value=JSON,
    )
    def evaluate(index, field, value):
        cases["n"] += 1
        document = json.loads(json.dumps(EXAMPLE))
        document["results"][index][field] = value
        answer = check(tmp_path, json.dumps(document))
        assert answer.startswith("refused: ") or "findings" in json.loads(answer)

    evaluate()
    record("hypothesis_check_timeline_one_wrong_field", cases["n"])
    assert cases["n"] >= 200
