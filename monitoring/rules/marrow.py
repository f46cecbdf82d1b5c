"""Bone-marrow rules: MRD positivity and loss of CAR transgene copies (info).

In the reference cohort neither was associated with relapse at the same time point; early PB
B-cell regeneration was. They are shown so that the clinician sees them next to the B-cell course,
with severity "info" so that they do not compete with the relapse signal.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.utils.translation import override

from monitoring.findings import CAR_DETECTABLE, CAR_LOSS, MRD, Evidence, Finding, make_finding
from monitoring.params import RuleParams, format_decimal
from monitoring.rules.recovery import result_detectable
from monitoring.texts import CAR_COPIES_LOST, MRD_POSITIVE, threshold_words
from monitoring.timeline import ResultPoint, Timeline
from patients.units import BM, BM_CAR_COPIES, BM_MRD_FLOW, BM_MRD_NGS


def _mrd_threshold(result: ResultPoint, params: RuleParams) -> Decimal:
    return (
        params.mrd_flow_threshold_pct if result.analyte == BM_MRD_FLOW else params.mrd_ngs_threshold
    )


def _describe_threshold(result: ResultPoint, params: RuleParams) -> str:
    """As stored with the finding: English, whatever language is active."""
    with override(None):
        return threshold_words(
            "flow" if result.analyte == BM_MRD_FLOW else "ngs",
            {
                "mrd_flow_threshold_pct": format_decimal(params.mrd_flow_threshold_pct),
                "mrd_ngs_threshold": format_decimal(params.mrd_ngs_threshold),
            },
        )


def mrd_positive(
    timeline: Timeline, params: RuleParams, *, as_of: date | None = None
) -> list[Finding]:
    """The first post-infusion BM MRD at or above its threshold, by flow or NGS (info).

    "Undetectable" and "below the limit of detection" are negative whatever the threshold.
    """
    findings = []
    for window in timeline.until(as_of).windows():
        results = sorted(
            window.post_infusion(BM_MRD_FLOW, BM) + window.post_infusion(BM_MRD_NGS, BM),
            key=lambda r: r.order_key,
        )
        positive = next(
            (r for r in results if r.value is not None and r.value >= _mrd_threshold(r, params)),
            None,
        )
        if positive is None:
            continue
        findings.append(
            make_finding(
                rule=MRD_POSITIVE,
                window=window,
                day=window.day_of(positive.collected_on),
                evidence=(Evidence.of(positive, window, MRD),),
                parameters={
                    "mrd_flow_threshold_pct": format_decimal(params.mrd_flow_threshold_pct),
                    "mrd_ngs_threshold": format_decimal(params.mrd_ngs_threshold),
                },
                params=params,
                facts={
                    "method": "flow" if positive.analyte == BM_MRD_FLOW else "ngs",
                    "threshold": _describe_threshold(positive, params),
                },
            )
        )
    return findings


def car_copies_lost(
    timeline: Timeline, params: RuleParams, *, as_of: date | None = None
) -> list[Finding]:
    """BM CAR transgene copies undetectable after having been detectable (info).

    Detectable means a value above zero; zero or a qualifier is undetectable. Only results from
    day 1 of this infusion's window count: a day-0 marrow is usually taken before the cells go in.
    """
    findings = []
    for window in timeline.until(as_of).windows():
        last_detectable: ResultPoint | None = None
        for result in window.post_infusion(BM_CAR_COPIES, BM):
            if result_detectable(result):
                last_detectable = result
                continue
            if last_detectable is None:
                continue
            findings.append(
                make_finding(
                    rule=CAR_COPIES_LOST,
                    window=window,
                    day=window.day_of(result.collected_on),
                    evidence=(
                        Evidence.of(last_detectable, window, CAR_DETECTABLE),
                        Evidence.of(result, window, CAR_LOSS),
                    ),
                    parameters={},
                    params=params,
                    facts={"detectable_day": window.day_of(last_detectable.collected_on)},
                )
            )
            break
    return findings
