"""Loading a timeline from JSON (units, time zones, clear errors) and dumping findings back."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from monitoring.engine import evaluate
from monitoring.params import RuleParams
from monitoring.timeline_json import (
    evaluation_report,
    findings_to_json,
    load_timeline,
    parse_json,
    timeline_from_json,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "early-regeneration.json"


def doc(**overrides):
    base = {
        "patient": "CT-JSON",
        "infusions": [{"id": 1, "date": "2025-03-01"}],
        "results": [],
    }
    base.update(overrides)
    return base


def result(**fields):
    return {"id": 1, "analyte": "pb_bcell_abs", "collected": "2025-03-08", **fields}


def load_error(document) -> str:
    with pytest.raises(ValueError) as error:
        timeline_from_json(document)
    return str(error.value)


def test_the_documented_example_gives_early_regeneration_on_day_35():
    timeline = load_timeline(EXAMPLE)
    findings = evaluate(timeline, RuleParams(), as_of=date(2025, 4, 9))
    assert [(f.rule, f.day, f.severity) for f in findings] == [("early_regeneration", 35, "high")]
    assert findings[0].details["regeneration_count_cells_per_ul"] == "13.44"


def test_values_are_converted_to_the_canonical_unit_exactly():
    timeline = timeline_from_json(
        parse_json(json.dumps(doc(results=[result(value=0.015, unit="10^9/L")])))
    )
    assert timeline.results[0].value == Decimal("15.000")
    timeline = timeline_from_json(doc(results=[result(value="7", unit="10^6/L")]))
    assert timeline.results[0].value == Decimal(7)


def test_parse_json_reads_numbers_as_decimal_not_float():
    assert parse_json('{"v": 0.1}')["v"] == Decimal("0.1")


def test_a_qualifier_has_no_value_and_counts_as_undetectable():
    timeline = timeline_from_json(doc(results=[result(qualifier="below_lod")]))
    assert (timeline.results[0].value, timeline.results[0].qualifier) == (None, "below_lod")


def test_collection_date_is_taken_in_the_center_time_zone():
    late_utc = result(collected="2025-03-08T23:30:00+00:00", value="0", unit="cells/uL")
    in_berlin = timeline_from_json(doc(time_zone="Europe/Berlin", results=[late_utc]))
    as_written = timeline_from_json(doc(results=[late_utc]))
    assert in_berlin.results[0].collected_on == date(2025, 3, 9)
    assert as_written.results[0].collected_on == date(2025, 3, 8)
    naive = timeline_from_json(
        doc(
            time_zone="Asia/Shanghai",
            results=[result(collected="2025-03-08T07:00", value="0", unit="cells/uL")],
        )
    )
    assert naive.results[0].collected_at.utcoffset().total_seconds() == 8 * 3600


def test_ids_and_infusion_numbers_default_to_position_and_date_order():
    timeline = timeline_from_json(
        {
            "infusions": [{"date": "2025-06-01"}, {"date": "2025-03-01"}],
            "results": [
                {"analyte": "alc", "collected": "2025-03-08", "value": "800", "unit": "cells/uL"}
            ],
        }
    )
    assert [(i.id, i.number, i.date) for i in timeline.infusions] == [
        (2, 1, date(2025, 3, 1)),
        (1, 2, date(2025, 6, 1)),
    ]
    assert timeline.results[0].id == 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "the timeline must be a JSON object"),
        (doc(extra=1), "the timeline: unknown field(s) extra"),
        (
            doc(results=[result(valeu="3", unit="cells/uL")]),
            "results[0] (id 1): unknown field(s) valeu",
        ),
        (
            doc(results=[{"id": 4, "analyte": "pb_bcell_abs"}]),
            "results[0] (id 4): missing collected",
        ),
        (doc(results=[result(analyte="cd4")]), "results[0] (id 1): analyte must be one of"),
        (
            doc(results=[result(value="3", unit="% lymphocytes")]),
            "results[0] (id 1): % of lymphocytes is not a unit of PB B cells (CD19+), absolute",
        ),
        (doc(results=[result(value="3")]), "results[0] (id 1): a value needs its unit"),
        (
            doc(results=[result()]),
            "results[0] (id 1): give either a value (with its unit) or a qualifier",
        ),
        (
            doc(results=[result(value="0", unit="cells/uL", qualifier="undetectable")]),
            "give either a value",
        ),
        (
            doc(results=[result(value="-1", unit="cells/uL")]),
            "results[0] (id 1): value must not be negative",
        ),
        (
            doc(results=[result(value="abc", unit="cells/uL")]),
            "results[0] (id 1): value must be a number",
        ),
        (doc(results=[result(value=True, unit="cells/uL")]), "value must be a number"),
        (
            doc(results=[result(analyte="pb_bcell_pct", value="100.5", unit="% lymphocytes")]),
            "results[0] (id 1): value must not exceed 100",
        ),
        (
            doc(results=[result(analyte="bm_mrd_ngs", value="1.5", unit="fraction")]),
            "must not exceed 1",
        ),
        (
            doc(results=[result(specimen="BM", value="3", unit="cells/uL")]),
            "results[0] (id 1): PB B cells (CD19+), absolute is measured in PB, not BM",
        ),
        (
            doc(results=[result(collected="2025-13-01", value="3", unit="cells/uL")]),
            "results[0] (id 1): collected must be a date YYYY-MM-DD or a date-time",
        ),
        (doc(results=[result(qualifier="zero")]), "results[0] (id 1): qualifier must be one of"),
        (
            doc(results=[result(value="1", unit="cells/uL"), result(value="2", unit="cells/uL")]),
            "results[1] (id 1): id 1 is also used by results[0] (id 1)",
        ),
        (
            doc(
                results=[
                    result(value="1", unit="cells/uL"),
                    result(id=2, value="2", unit="cells/uL"),
                ]
            ),
            "results[1] (id 2): duplicate of results[0] (id 1)",
        ),
        (
            doc(
                results=[
                    result(collected="2025-03-08T08:00", value="1", unit="cells/uL"),
                    result(id=2, collected="2025-03-09T08:00+01:00", value="2", unit="cells/uL"),
                ]
            ),
            "mix ones with and without a UTC offset",
        ),
        (doc(time_zone="Mars/Olympus"), "time_zone must be an IANA name"),
        (
            doc(birth_date="2030-01-01"),
            "infusions[0] (id 1): date is before the birth date 2030-01-01",
        ),
        (
            doc(infusions=[{"date": "2025-03-01"}, {"date": "2025-03-01"}]),
            "infusions[1]: another infusion (infusions[0]) has the same date",
        ),
        (
            doc(
                infusions=[{"date": "2025-03-01", "number": 2}, {"date": "2025-05-01", "number": 1}]
            ),
            "infusions[1]: infusion numbers must increase with the infusion date",
        ),
        (doc(infusions=[{"date": "1 March 2025"}]), "infusions[0]: date must be a date YYYY-MM-DD"),
        (
            doc(events=[{"kind": "relapse", "date": "2025-02-01"}]),
            "events[0]: a relapse before the first infusion (2025-03-01)",
        ),
        (
            doc(
                events=[
                    {"kind": "death", "date": "2025-04-01"},
                    {"kind": "death", "date": "2025-04-02"},
                ]
            ),
            "events[1]: a second death",
        ),
        (
            doc(events=[{"kind": "transfer", "date": "2025-04-01"}]),
            "events[0]: kind must be one of",
        ),
        (
            doc(responses=[{"date": "2025-04-01", "response": "VGPR"}]),
            "responses[0]: response must be one of",
        ),
        (doc(results={"id": 1}), "results must be a list"),
        (
            doc(infusions=[{"id": 0, "date": "2025-03-01"}]),
            "infusions[0] (id 0): id must be a whole number",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_the_entry(document, message):
    assert message in load_error(document)


def test_parse_json_reports_the_position_of_a_syntax_error():
    with pytest.raises(ValueError, match=r"not valid JSON: .* at line 2, column"):
        parse_json('{"patient": "x",\n oops}')
    with pytest.raises(ValueError, match="NaN is not a number"):
        parse_json('{"value": NaN}')


def test_findings_dump_to_json_safe_dicts():
    timeline = load_timeline(EXAMPLE)
    [dumped] = findings_to_json(evaluate(timeline, RuleParams()))
    assert json.loads(json.dumps(dumped)) == dumped
    assert (dumped["rule"], dumped["infusion_id"], dumped["day"]) == ("early_regeneration", 1, 35)
    assert dumped["evidence"][1] == {
        "result_id": 9,
        "role": "regeneration",
        "analyte": "pb_bcell_pct",
        "specimen": "PB",
        "day": 35,
        "date": "2025-04-07",
        "value": "2.1",
        "unit": "% lymphocytes",
        "qualifier": "",
    }


def test_the_report_names_the_parameters_and_why_a_window_has_no_findings():
    document = parse_json(EXAMPLE.read_text(encoding="utf-8"))
    document["events"].append({"id": 2, "kind": "relapse", "date": "2025-03-20"})
    report = evaluation_report(timeline_from_json(document), RuleParams(), as_of=None)
    assert report["findings"] == []  # the day-35 count came after the relapse
    assert report["windows"] == [
        {
            "infusion_id": 1,
            "infusion_number": 1,
            "eligible": True,
            "reason": "",
            "monitored_until": "2025-03-19",
            "ended_by": "relapse recorded on 2025-03-20",
        }
    ]
    assert report["params"]["version"] == "default-1"
    assert report["evaluated_through"] == "2025-04-09"  # the latest date recorded


# Rule parameters --------------------------------------------------------------------------


def test_params_round_trip_through_json_safe_dicts():
    params = RuleParams(
        version="tisa-like-1",
        bcell_threshold=Decimal("100"),
        bcell_pct_threshold=Decimal("1"),
        require_confirmation=True,
    )
    data = params.to_dict()
    assert data["bcell_threshold"] == "100" and data["mrd_ngs_threshold"] == "0.0001"
    assert RuleParams.from_dict(json.loads(json.dumps(data))) == params
    assert RuleParams.from_dict({}) == RuleParams()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bcell_threshold": "5"}, "give them their own version label"),
        ({"version": "x", "windw_days": 30}, "unknown rule parameter(s): windw_days"),
        ({"version": "x", "window_days": 0}, "window_days must be a whole number of days"),
        ({"version": "x", "window_days": True}, "window_days must be a whole number of days"),
        ({"version": "x", "bcell_threshold": "-1"}, "bcell_threshold must not be negative"),
        ({"version": "x", "bcell_threshold": "lots"}, "bcell_threshold must be a number"),
        ({"version": "x", "bcell_pct_threshold": "101"}, "must not exceed 100"),
        ({"version": "x", "mrd_ngs_threshold": "2"}, "must not exceed 1"),
        ({"version": "x", "require_confirmation": "yes"}, "require_confirmation must be true"),
        ({"version": ""}, "version must be a non-empty label"),
        ([], "rule parameters must be a JSON object"),
    ],
)
def test_bad_params_are_refused(data, message):
    with pytest.raises(ValueError) as error:
        RuleParams.from_dict(data)
    assert message in str(error.value)


def test_definition_text_names_the_definition():
    assert RuleParams().definition_text() == (
        "PB B cells count as detectable above 0 cells/µL; one detectable sample suffices "
        "(parameters default-1)."
    )


def test_timeline_times_must_not_mix_aware_and_naive():
    from monitoring.timeline import ResultPoint, Timeline

    naive = datetime(2025, 3, 8, 8)
    aware = datetime.fromisoformat("2025-03-09T08:00+01:00")
    results = tuple(
        ResultPoint(i, "alc", "PB", moment.date(), moment, Decimal(800), "")
        for i, moment in enumerate((naive, aware), start=1)
    )
    with pytest.raises(ValueError, match="mix time-zone-aware and naive"):
        Timeline("x", None, (), results)
