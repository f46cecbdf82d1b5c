"""The multivariable Cox model (analytics.coxph, analytics.adjusted) against R's coxph and
cox.zph, to 1e-6: R's lung, veteran, colon and heart datasets (exported from R into tmp_path
by tests/analytics/r_models.R, never committed) and the synthetic cohort's counting-process
rows (early regeneration time-varying, strata by center, robust SE by patient). One Rscript
run for the module. R missing is a failure, not a skip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.adjusted import adjusted_cox, model_rows
from analytics.coxph import cox_fit, cox_zph
from analytics.dataset_schema import read_analysis_csv
from tests.analytics.synthetic_cohort import write_synthetic_csv
from tests.analytics.test_survival_vs_r import HERE, _require_rscript, _run

TOLERANCE = 1e-6
SYNTHETIC_COVARIATES = ("early_regen", "mrd_positive", "car_loss", "age_at_infusion")


def _dummies(column: pd.Series, levels: list[str], name: str) -> pd.DataFrame:
    return pd.DataFrame({f"{name}{lvl}": (column == lvl).astype(float) for lvl in levels[1:]})


def _specs(data: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """key -> the arguments of cox_fit for the model R fits under the same key."""
    lung, vet, col, hrt, syn = (data[k] for k in ("lung", "veteran", "colon", "heart", "syn"))
    cells = ["squamous", "smallcell", "adeno", "large"]
    vet_x = pd.concat([vet[["trt", "karno"]], _dummies(vet["celltype"], cells, "cell")], axis=1)
    col_x = pd.concat(
        [_dummies(col["rx"], ["Obs", "Lev", "Lev+5FU"], "rx"), col[["age", "nodes"]]], axis=1
    )
    centers = sorted(syn["center"].unique())
    syn_center_x = pd.concat(
        [syn[["early_regen", "age_at_infusion"]], _dummies(syn["center"], centers, "c")], axis=1
    )
    vet_terms = {"trt": (0,), "karno": (1,), "celltype": (2, 3, 4)}
    base = {
        "lung": dict(stop=lung["time"], event=lung["dead"], x=lung[["age", "sex", "ph.ecog"]]),
        "veteran": dict(stop=vet["time"], event=vet["status"], x=vet_x, terms=vet_terms),
        "colon": dict(
            stop=col["time"],
            event=col["status"],
            x=col_x,
            strata=col["etype"],
            cluster=col["id"],
            terms={"rx": (0, 1), "age": (2,), "nodes": (3,)},
        ),
        "heart": dict(
            start=hrt["start"],
            stop=hrt["stop"],
            event=hrt["event"],
            x=hrt[["age", "surgery", "transplant"]],
            cluster=hrt["id"],
        ),
        "synthetic_strata": dict(
            start=syn["start"],
            stop=syn["stop"],
            event=syn["event"],
            x=syn[list(SYNTHETIC_COVARIATES)],
            strata=syn["center"],
            cluster=syn["study_id"],
        ),
        "synthetic_center": dict(
            start=syn["start"],
            stop=syn["stop"],
            event=syn["event"],
            x=syn_center_x,
            terms={"early_regen": (0,), "age_at_infusion": (1,), "center": (2, 3)},
        ),
    }
    base["lung_strata_robust"] = base["lung"] | dict(strata=lung["inst"], cluster=lung["id"])
    base["veteran_strata"] = base["veteran"] | dict(strata=vet["prior"])
    specs = {}
    for name, spec in base.items():
        for ties in ("efron", "breslow"):
            x = spec["x"]
            specs[f"{name}.{ties}"] = spec | dict(
                x=x.to_numpy(float), names=list(x.columns), ties=ties
            )
    return specs


@pytest.fixture(scope="module")
def r_models(tmp_path_factory):
    rscript = _require_rscript()
    tmp = tmp_path_factory.mktemp("r_models")
    cohort = read_analysis_csv(write_synthetic_csv(tmp / "cohort.csv"))
    rows, _ = model_rows(cohort, covariates=SYNTHETIC_COVARIATES + ("center",))
    rows.to_csv(tmp / "synthetic_rows.csv", index=False)
    _run(rscript, HERE / "r_models.R", tmp, tmp)
    ref = pd.read_csv(tmp / "reference.csv")
    reference = {k: g.sort_values("index")["value"].to_numpy(float) for k, g in ref.groupby("key")}
    data = {
        name: pd.read_csv(tmp / f"{name}.csv") for name in ("lung", "veteran", "colon", "heart")
    }
    data["syn"] = rows
    return reference, data, cohort


def test_coxph_and_cox_zph_equal_r_on_every_model(r_models):
    reference, data, _ = r_models
    specs = _specs(data)
    assert len(specs) == 16
    worst: dict[str, float] = {}
    for key, spec in specs.items():
        fit = cox_fit(**spec)
        zph = cox_zph(fit)
        lower, upper = fit.confidence_interval()
        ours = {
            "coef": fit.coef,
            "se": fit.se,
            "naive_se": fit.naive_se,
            "loglik": [fit.loglik_null, fit.loglik],
            "wald": [fit.wald.statistic],
            "score": [fit.score.statistic],
            "lr": [fit.likelihood_ratio.statistic],
            "lower": lower,
            "upper": upper,
            "zph_chisq": [row[1] for row in zph.rows],
            "zph_df": [row[2] for row in zph.rows],
            "zph_p": [row[3] for row in zph.rows],
        }
        for stat, values in ours.items():
            expected = reference[f"{key}.{stat}"]
            got = np.asarray(values, float)
            assert got.shape == expected.shape, (key, stat)
            gap = float(np.max(np.abs(got - expected) / np.maximum(1, np.abs(expected))))
            worst[stat] = max(worst.get(stat, 0.0), gap)
            assert gap < TOLERANCE, (key, stat, got, expected)
    print("coxph/cox.zph worst relative gap per statistic:", worst)


def test_adjusted_cox_on_the_cohort_is_the_strata_model_r_fits(r_models):
    reference, _, cohort = r_models
    out = adjusted_cox(cohort, covariates=SYNTHETIC_COVARIATES, strata="center")
    assert out["reason"] is None
    coef = [row["coef"] for row in out["coefficients"]]
    np.testing.assert_allclose(coef, reference["synthetic_strata.efron.coef"], atol=TOLERANCE)
    se = [row["se"] for row in out["coefficients"]]
    np.testing.assert_allclose(se, reference["synthetic_strata.efron.se"], atol=TOLERANCE)
    assert out["variance"] == "robust (clustered by patient)"
    assert [r["term"] for r in out["ph_test"]["rows"]][-1] == "GLOBAL"
    assert out["caveats"]  # MRD / CAR loss carry immortal time


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(ties="exact"), "exact partial likelihood is not offered"),
        (dict(x=[[1.0], [1.0], [1.0], [1.0]]), "one value only"),
        (dict(x=[[0.0], [1.0], [np.nan], [1.0]]), "without blanks"),
        (dict(event=[1, 2, 0, 1]), "must be 0 .censored. or 1"),
        (dict(start=[0, 5, 0, 0]), "start < stop"),
        (dict(x=[[0.0, 0.0], [1.0, 2.0], [0.0, 0.0], [1.0, 2.0]], names=["a", "b"]), "collinear"),
        (dict(event=[0, 0, 0, 0]), "no events"),
    ],
)
def test_cox_fit_refuses_what_it_cannot_estimate_with_a_message(kwargs, message):
    args = (
        dict(stop=[2, 3, 4, 5], event=[1, 0, 1, 1], x=[[0.0], [1.0], [0.0], [1.0]], names=["a"])
        | kwargs
    )
    with pytest.raises(ValueError, match=message):
        cox_fit(**args)


def test_monotone_likelihood_is_refused_not_reported_as_a_huge_hazard_ratio():
    with pytest.raises(ValueError, match="monotone likelihood.*a"):
        cox_fit(
            stop=[1, 2, 3, 4, 5, 6],
            event=[1, 1, 1, 0, 0, 0],
            x=[[1.0], [1.0], [1.0], [0.0], [0.0], [0.0]],
            names=["a"],
        )


def test_adjusted_cox_refuses_unknown_covariates_and_strata(r_models):
    _, _, cohort = r_models
    with pytest.raises(ValueError, match="unknown covariate 'bmi'"):
        adjusted_cox(cohort, covariates=["bmi"])
    with pytest.raises(ValueError, match="strata must be one of"):
        adjusted_cox(cohort, covariates=["early_regen"], strata="sex")
    out = adjusted_cox(cohort, covariates=["early_regen", "product"])
    assert "product takes one value only" in out["reason"]


@pytest.mark.parametrize(
    ("x", "shown"),
    [([0, 1, 2, 1, 0, 2], "2"), ([0, 1, 0.5, 1, 0, 0], "0.5"), ([0, 1, np.nan, 1, 0, 1], "blank")],
)
def test_cox_binary_refuses_a_covariate_not_coded_0_1(x, shown):
    """Before: HR 1.0 with an empty CI and a runtime warning for x in {0, 1, 2} (R: 2.33)."""
    from analytics.calibration import cox_binary

    with pytest.raises(ValueError, match=f"coded 0/1; it also has {shown}"):
        cox_binary([1, 2, 3, 4, 5, 6], [1, 1, 0, 1, 1, 0], x)


def test_cox_binary_still_fits_a_0_1_covariate_as_cox_fit_does():
    from analytics.calibration import cox_binary

    time, event, x = [1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 0, 1, 1, 0, 1, 1], [0, 1, 0, 1, 1, 0, 0, 1]
    out = cox_binary(time, event, x)
    fit = cox_fit(stop=time, event=event, x=np.array(x, float)[:, None], names=["x"])
    assert out["hazard_ratio"] == pytest.approx(float(fit.hazard_ratio[0]), rel=1e-10)
