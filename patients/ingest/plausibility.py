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


def check_plausibility(checked, ctx: Context, out) -> None:
    """Each sample against the center's limits, the stored values of the same collection time
    and each analyte's previous non-zero value: the stored one or an earlier sample of the batch,
    whichever is later. `checked` holds (sample, patient, [(record, result)]) of the samples
    that passed the models' checks. Hard limits refuse, soft ones refuse until `record.confirmed`,
    which is then recorded with the importing user (`plausibility_checks.confirmation_apply`);
    each refusal goes to `out.add(place, column, value, message)`."""
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
        if not fine:
            continue
        findings = plausibility_checks.sample_findings(
            {result.analyte: result.canonical_value for _record, result in fine},
            siblings=ctx.stored_samples.get((patient.pk, sample.collected_at), {}),
            previous=previous,
            limits=ctx.limits(patient.center),
        )
        for record, result in fine:
            refusals = plausibility_checks.confirmation_apply(
                result,
                [f for f in findings if f.analyte == result.analyte],
                confirmed=record.confirmed,
                user=ctx.scope.user,
            )
            for message in refusals:
                out.add(record.place, "value", record.value, message)
