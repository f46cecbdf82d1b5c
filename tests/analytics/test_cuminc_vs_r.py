"""Aalen–Johansen cumulative incidence for any number of causes (analytics.competing) against R:
estimates and variances equal ``cmprsk::cuminc`` (``variance="cuminc"``) and, by default, the
multi-state ``survfit`` (infinitesimal-jackknife std.err, log band) to 1e-6 at every distinct
observed time. Samples: R's mgus2 with 2 causes and with a derived third (r_cuminc.R), and
random 3- and 4-cause samples with heavy ties, events at time 0 and a last time at which
everyone left fails. One Rscript run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.competing import aalen_johansen
from tests.analytics.test_survival_vs_r import HERE, _max_diff, _require_rscript, _run

TOLERANCE = 1e-6


def _samples() -> pd.DataFrame:
    rng = np.random.default_rng(19)
    frames = []
    for i in range(12):
        n_causes = 3 + i % 2
        n = int(rng.integers(15, 120))
        low = 0 if i in (2, 7) else 1  # events at time 0 in two samples
        time = rng.integers(low, int(rng.choice([5, 30, 400])), size=n).astype(float)
        status = rng.choice(n_causes + 1, size=n, p=rng.dirichlet(np.ones(n_causes + 1)))
        status[: n_causes + 1] = np.arange(n_causes + 1)  # every cause occurs
        if i in (3, 8):  # everyone still at risk at the last time fails there: S drops to 0
            last = time == time.max()
            status[last] = rng.integers(1, n_causes + 1, size=int(last.sum()))
        frames.append(pd.DataFrame({"sample": f"random_{i}", "time": time, "status": status}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def r_ref(tmp_path_factory):
    rscript = _require_rscript()
    tmp = tmp_path_factory.mktemp("r_cuminc")
    _samples().to_csv(tmp / "samples.csv", index=False)
    _run(rscript, HERE / "r_cuminc.R", tmp / "samples.csv", tmp)
    return (
        pd.read_csv(tmp / "samples_all.csv"),
        pd.read_csv(tmp / "cuminc.csv"),
        pd.read_csv(tmp / "survfit.csv", na_values=["NA"]),
    )


def _step(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """cuminc's curve (rows sorted by time, the last row at a time being the value there)
    evaluated right-continuously at ``at``."""
    return np.asarray(values, float)[np.searchsorted(times, at, side="right") - 1]


def test_estimates_and_variances_equal_cmprsk_cuminc(r_ref):
    samples, cuminc, _ = r_ref
    worst_est = worst_var = 0.0
    compared = 0
    for name, d in samples.groupby("sample"):
        ours = aalen_johansen(d["time"], d["status"], variance="cuminc")
        r = cuminc[cuminc["sample"] == name]
        assert sorted(r["cause"].unique()) == sorted(d.loc[d["status"] > 0, "status"].unique())
        for cause, g in r.groupby("cause"):
            k = ours.causes.index(cause)
            times = g["time"].to_numpy()
            assert np.all(np.diff(times) >= 0)
            worst_est = max(worst_est, _max_diff(ours.cif[k], _step(times, g["est"], ours.time)))
            worst_var = max(
                worst_var, _max_diff(ours.se[k] ** 2, _step(times, g["var"], ours.time))
            )
            compared += 2 * len(ours.time)
    print(f"cuminc: {compared} values, worst |est| {worst_est:.2g}, |var| {worst_var:.2g}")
    assert compared > 4000
    assert worst_est < TOLERANCE
    assert worst_var < TOLERANCE


def test_default_variance_equals_multistate_survfit_for_three_and_four_causes(r_ref):
    samples, _, survfit = r_ref
    worst = 0.0
    for name, d in samples.groupby("sample"):
        ours = aalen_johansen(d["time"], d["status"])
        r = survfit[survfit["sample"] == name]
        for cause, g in r.groupby("cause"):
            k = ours.causes.index(cause)
            assert ours.time.tolist() == g["time"].tolist()
            assert ours.n_at_risk.tolist() == g["n_risk"].tolist()
            for got, col in [
                (ours.cif[k], "pstate"),
                (ours.se[k], "std_err"),
                (ours.lower[k], "lower"),
                (ours.upper[k], "upper"),
            ]:
                worst = max(worst, _max_diff(got, g[col]))
    print(f"survfit multi-state: worst difference {worst:.2g}")
    assert worst < TOLERANCE


def test_two_causes_keep_the_dashboard_layout_and_more_causes_are_named():
    time = [1, 2, 2, 3, 4, 5, 5, 6]
    two = aalen_johansen(time, [1, 2, 0, 1, 2, 1, 0, 0]).to_dict()
    assert "causes" not in two and {"relapse", "death_without_relapse"} <= two.keys()
    assert "n_events" not in two["relapse"]
    table = aalen_johansen(time, [1, 2, 3, 1, 3, 1, 0, 0])
    assert table.causes == (1, 2, 3)
    out = table.to_dict()
    assert out["causes"] == [1, 2, 3]
    assert out["cause_3"]["n_events"] == [0, 1, 0, 1, 0, 0]
    assert out["n_relapse"] == [1, 0, 1, 0, 1, 0] and out["n_death"] == [0, 1, 0, 0, 0, 0]
    # the three incidences and the event-free probability add up to one at every time
    assert np.allclose(table.cif.sum(axis=0) + table.event_free, 1.0)
    point = table.at(4, cause=3)
    assert point.cause == "cause_3"
    assert point.estimate == pytest.approx(7 / 8 * 1 / 7 + 4 / 8 * 1 / 4)
    with pytest.raises(ValueError, match="cause 4"):
        table.at(4, cause=4)


@pytest.mark.parametrize(
    ("time", "status", "kwargs", "message"),
    [
        ([1, 2], [1, 0], {"causes": ()}, "at least one cause"),
        ([1, -2], [1, 0], {}, "times must be finite and >= 0"),
        ([1, 2], [1.5, 0], {}, "positive integer cause code"),
        ([1, 2], [-1, 0], {}, "positive integer cause code"),
        ([1, 2], [1, 0], {"causes": (0, 1)}, "positive integers"),
        ([1, 2], [1, 0], {"causes": (1.0, 2)}, "positive integers"),
        ([1, 2], [1, 1], {"causes": (1, 1)}, "must not repeat"),
        ([1, 2], [3, 1], {"causes": (1, 2)}, r"cause codes \[3\] not in causes"),
        ([1, 2], [1, 0], {"variance": "greenwood"}, "variance must be one of"),
        ([], [], {}, "non-empty"),
    ],
)
def test_refuses_unsupported_input_with_a_message(time, status, kwargs, message):
    with pytest.raises(ValueError, match=message):
        aalen_johansen(time, status, **kwargs)
