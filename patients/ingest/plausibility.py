"""Plausibility of a batch's samples (CLINICAL.md section 2), checked after the models' own rules.

The limits and the findings are issue 8's (`patients.validation`, `patients.plausibility`); this
module only feeds them what a batch knows at once: the center's limits loaded once, the stored
values of the same collection time, and each analyte's previous non-zero value, stored or from an
earlier sample of the same batch.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from patients import plausibility_checks
from patients.ingest.context import Context
from patients.ingest.records import LabValueRecord
from patients.models import LabResult


def sample_plausibility_errors(
    results: list[tuple[LabValueRecord, LabResult]],
    *,
    collected_at,
    siblings: dict,
    previous: dict,
    ctx: Context,
) -> dict[int, list]:
    """CLINICAL.md's plausibility limits for one sample's values (patients.validation with the
    facts loaded once: the center's limits, stored values of the same sample, previous values):
    hard limits refuse, soft ones refuse until `record.confirmed`, which is then recorded with
    the importing user. Returns {index in `results`: [ValidationError]}."""
    if not results:
        return {}
    patient = results[0][1].patient
    values = {r.analyte: r.canonical_value for _rec, r in results}
    findings = plausibility_checks.sample_findings(
        values, siblings=siblings, previous=previous, limits=ctx.limits(patient.center)
    )
    user = ctx.scope.user
    out: dict[int, list] = {}
    for index, (record, result) in enumerate(results):
        mine = [f for f in findings if f.analyte == result.analyte]
        refusals = plausibility_checks.plausibility_errors(mine, confirmed=record.confirmed)
        if refusals:
            out[index] = refusals["value"]
        soft = [f.message for f in mine if not f.is_hard]
        if soft and record.confirmed:
            result.plausibility_confirmed = True
            result.plausibility_warning = " ".join(soft)[:1000]
            if user is not None and user.is_authenticated:
                result.plausibility_confirmed_by = user
    return out


def check_plausibility(checked, ctx: Context, out) -> None:
    """Each sample against the center's limits, the stored values of the same collection time
    and each analyte's previous non-zero value: the stored one or an earlier sample of the batch,
    whichever is later. `checked` holds (sample, patient, [(record, result)]) of the samples
    that passed the models' checks; each refusal goes to
    `out.add(place, column, value, message)`."""
    in_batch: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for sample, _patient, fine in checked:
        for _record, result in fine:
            if result.canonical_value > 0:
                in_batch[(sample.study_id, result.analyte)].append(
                    (sample.collected_at, result.canonical_value)
                )
    for series in in_batch.values():
        series.sort()
    for sample, patient, fine in checked:
        previous = {}
        for _record, result in fine:
            when = sample.collected_at
            series = in_batch.get((sample.study_id, result.analyte), [])
            index = bisect.bisect_left(series, (when,)) - 1
            candidates = [
                entry
                for entry in (
                    ctx.previous_entry(patient, result.analyte, when),
                    series[index] if index >= 0 else None,
                )
                if entry is not None
            ]
            if candidates:
                previous[result.analyte] = max(candidates, key=lambda entry: entry[0])[1]
        siblings = ctx.stored_samples.get((patient.pk, sample.collected_at), {})
        refusals = sample_plausibility_errors(
            fine, collected_at=sample.collected_at, siblings=siblings, previous=previous, ctx=ctx
        )
        for index, messages in refusals.items():
            record = fine[index][0]
            for message in messages:
                out.add(record.place, "value", record.value, message)
