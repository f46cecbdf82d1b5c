"""Multivariable Cox regression equal to R's ``survival::coxph`` and ``cox.zph``.

Fitted here by Newton–Raphson on the exact partial likelihood (numpy), to full convergence,
because lifelines stops short of R's optimum (coefficients ~1e-7 away). What it does, each as R:

* counting-process rows ``(start, stop]`` (a time-varying covariate such as early regeneration
  is a patient with two rows), right-censored data being ``start = -inf``;
* strata (a separate baseline hazard per stratum, ``strata(center)``);
* ties: ``"efron"`` (R's default) or ``"breslow"``; ``"exact"`` is refused with a message;
* tests: Wald (``summary(fit)$waldtest``), likelihood ratio (``$logtest``) and score
  (``$sctest``, at β = 0);
* robust ("sandwich") variance clustered by patient: ``coxph(..., cluster = id)``, the sum of
  the dfbeta residuals within each cluster; the Wald test then uses it, as R's does;
* the proportional-hazards test of R ≥ 3.0's ``cox.zph`` (transform ``"km"``): the score test,
  at (β̂, 0), of adding ``x · g(t)`` with g = 1 − KM(t−) centred at the event times, per term
  and global (the full-data method, not the older Schoenfeld-residual regression).

The tests in tests/analytics/test_coxph_vs_r.py compare every number with R to 1e-6.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from analytics.survival import json_number, z_value

TIES_METHODS = ("efron", "breslow")
MAX_ITERATIONS = 60
# Step halvings per iteration: 1/2**60 of any step is below the 1e-14 stop.
MAX_HALVINGS = 60
#: |β| beyond this after convergence means the likelihood is monotone (an infinite estimate).
INFINITE_COEF = 25.0


@dataclass(frozen=True)
class Test:
    name: str
    statistic: float
    df: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.name,
            "statistic": json_number(self.statistic),
            "df": self.df,
            "p_value": json_number(self.p_value),
        }


def _chi2_test(name: str, statistic: float, df: int) -> Test:
    return Test(name, float(statistic), int(df), float(stats.chi2.sf(statistic, df)))


@dataclass(frozen=True, eq=False)
class _Design:
    start: np.ndarray
    stop: np.ndarray
    event: np.ndarray
    x: np.ndarray
    strata: np.ndarray
    #: per distinct (stratum, event time): (time, indices at risk, indices failing there)
    risk_sets: list[tuple[float, np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class CoxFit:
    """A fitted model: per-coefficient estimates and the model's tests."""

    names: tuple[str, ...]
    coef: np.ndarray
    var: np.ndarray  # the variance used for SE, CI and the Wald test (robust if clustered)
    naive_var: np.ndarray
    loglik_null: float
    loglik: float
    wald: Test
    likelihood_ratio: Test
    score: Test
    ties: str
    robust: bool
    n: int  # rows
    events: int
    iterations: int
    conf_level: float = 0.95
    terms: dict[str, tuple[int, ...]] = field(default_factory=dict)
    design: _Design | None = field(default=None, repr=False)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.var))

    @property
    def naive_se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.naive_var))

    @property
    def hazard_ratio(self) -> np.ndarray:
        return np.exp(self.coef)

    def confidence_interval(self) -> tuple[np.ndarray, np.ndarray]:
        z = z_value(self.conf_level)
        return np.exp(self.coef - z * self.se), np.exp(self.coef + z * self.se)

    @property
    def p_values(self) -> np.ndarray:
        return 2 * stats.norm.sf(np.abs(self.coef / self.se))

    def rows(self) -> list[dict[str, Any]]:
        lower, upper = self.confidence_interval()
        return [
            {
                "covariate": name,
                "coef": json_number(self.coef[j]),
                "se": json_number(self.se[j]),
                "hazard_ratio": json_number(self.hazard_ratio[j]),
                "lower": json_number(lower[j]),
                "upper": json_number(upper[j]),
                "p_value": json_number(self.p_values[j]),
            }
            for j, name in enumerate(self.names)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "coefficients": self.rows(),
            "ties": self.ties,
            "variance": "robust (clustered by patient)" if self.robust else "model-based",
            "n": self.n,
            "events": self.events,
            "loglik": [json_number(self.loglik_null), json_number(self.loglik)],
            "tests": [t.to_dict() for t in (self.likelihood_ratio, self.wald, self.score)],
            "conf_level": self.conf_level,
        }


def _as_design(
    start: Sequence[float] | None,
    stop: Sequence[float],
    event: Sequence[int],
    x: Any,
    names: Sequence[str],
    strata: Sequence[Any] | None,
) -> _Design:
    stop_a = np.asarray(stop, float)
    n = len(stop_a)
    start_a = np.full(n, -np.inf) if start is None else np.asarray(start, float)
    event_a = np.asarray(event, float)
    x_a = np.asarray(x, float).reshape(n, -1) if n else np.zeros((0, len(names)))
    if x_a.shape[1] != len(names):
        raise ValueError(f"{x_a.shape[1]} covariate columns but {len(names)} names")
    if len(start_a) != n or len(event_a) != n:
        raise ValueError("start, stop, event and the covariates must have the same length")
    if not np.all(np.isfinite(stop_a)) or np.any(np.isnan(start_a)):
        raise ValueError("times must be numbers (no blanks)")
    if np.any(start_a >= stop_a):
        raise ValueError("every interval (start, stop] must have start < stop")
    if not np.all(np.isin(event_a, (0, 1))):
        raise ValueError("event indicators must be 0 (censored) or 1 (event)")
    bad = [names[j] for j in range(x_a.shape[1]) if not np.all(np.isfinite(x_a[:, j]))]
    if bad:
        raise ValueError("covariates must be numbers without blanks: " + ", ".join(bad))
    codes = (
        np.zeros(n, int)
        if strata is None
        else np.unique(np.asarray([str(s) for s in strata]), return_inverse=True)[1]
    )
    risk_sets = []
    for s in np.unique(codes):
        in_s = codes == s
        for t in np.unique(stop_a[in_s & (event_a == 1)]):
            at_risk = np.flatnonzero(in_s & (start_a < t) & (stop_a >= t))
            dying = np.flatnonzero(in_s & (stop_a == t) & (event_a == 1))
            risk_sets.append((float(t), at_risk, dying))
    return _Design(start_a, stop_a, event_a.astype(int), x_a, codes, risk_sets)


def _efron_steps(d: int, ties: str) -> np.ndarray:
    """The fractions k/d of the tied failures' risk removed at step k (Breslow: none)."""
    return np.arange(d) / d if ties == "efron" else np.zeros(1)


def _fit_terms(
    design: _Design, beta: np.ndarray, ties: str
) -> tuple[float, np.ndarray, np.ndarray]:
    """(log partial likelihood, score, information) at ``beta``."""
    x = design.x
    p = x.shape[1]
    eta = x @ beta
    risk = np.exp(eta - eta.max()) if len(eta) else eta  # a constant factor cancels
    shift = eta.max() if len(eta) else 0.0
    loglik, score, info = 0.0, np.zeros(p), np.zeros((p, p))
    for _, at_risk, dying in design.risk_sets:
        xr, rr = x[at_risk], risk[at_risk]
        xd, rd = x[dying], risk[dying]
        s0, s1, s2 = rr.sum(), rr @ xr, (xr * rr[:, None]).T @ xr
        d0, d1, d2 = rd.sum(), rd @ xd, (xd * rd[:, None]).T @ xd
        d = len(dying)
        loglik += eta[dying].sum()
        score += xd.sum(axis=0)
        fractions = _efron_steps(d, ties)
        weight = 1.0 if ties == "efron" else float(d)  # Breslow: d failures share one step
        for f in fractions:
            a0, a1, a2 = s0 - f * d0, s1 - f * d1, s2 - f * d2
            mean = a1 / a0
            loglik -= weight * (np.log(a0) + shift)
            score -= weight * mean
            info += weight * (a2 / a0 - np.outer(mean, mean))
    return float(loglik), score, info


def _score_residuals(design: _Design, beta: np.ndarray, ties: str) -> np.ndarray:
    """R's ``residuals(fit, type = "score")``: one row per input row (Efron-weighted)."""
    x = design.x
    eta = x @ beta
    risk = np.exp(eta - eta.max())
    resid = np.zeros_like(x)
    for _, at_risk, dying in design.risk_sets:
        xr, rr = x[at_risk], risk[at_risk]
        xd, rd = x[dying], risk[dying]
        s0, s1 = rr.sum(), rr @ xr
        d0, d1 = rd.sum(), rd @ xd
        d = len(dying)
        if ties == "efron":
            fractions = np.arange(d) / d
            a0 = s0 - fractions * d0
            means = (s1[None, :] - fractions[:, None] * d1[None, :]) / a0[:, None]
            haz, haz_mean = (1 / a0).sum(), (means / a0[:, None]).sum(axis=0)
            down = 1 - fractions  # a failing subject's share of its risk at step k
            haz_d, haz_mean_d = (down / a0).sum(), (means * (down / a0)[:, None]).sum(axis=0)
            mean_of_means = means.mean(axis=0)
        else:
            mean = s1 / s0
            haz, haz_mean = d / s0, mean * d / s0
            haz_d, haz_mean_d, mean_of_means = haz, haz_mean, mean
        is_dying = np.isin(at_risk, dying)
        others = at_risk[~is_dying]
        resid[others] -= risk[others, None] * (x[others] * haz - haz_mean)
        resid[dying] -= risk[dying, None] * (x[dying] * haz_d - haz_mean_d)
        resid[dying] += x[dying] - mean_of_means
    return resid


def _inverse(info: np.ndarray, names: Sequence[str]) -> np.ndarray:
    if info.size and np.linalg.matrix_rank(info) < info.shape[0]:
        weak = [names[j] for j in range(len(names)) if info[j, j] <= 1e-12 * max(1, info.max())]
        which = ", ".join(weak) if weak else "two or more of them are collinear"
        raise ValueError(
            "the covariates do not identify the model (" + which + "): drop or merge one"
        )
    return np.linalg.inv(info)


def cox_fit(
    *,
    stop: Sequence[float],
    event: Sequence[int],
    x: Any,
    names: Sequence[str],
    start: Sequence[float] | None = None,
    strata: Sequence[Any] | None = None,
    cluster: Sequence[Any] | None = None,
    ties: str = "efron",
    conf_level: float = 0.95,
    terms: dict[str, tuple[int, ...]] | None = None,
) -> CoxFit:
    """Fit the Cox model; a ``ValueError`` with a plain message when it cannot be fitted."""
    if ties not in TIES_METHODS:
        raise ValueError(
            f"ties must be one of {', '.join(TIES_METHODS)}, not {ties!r} (the exact "
            "partial likelihood is not offered)"
        )
    if not 0 < conf_level < 1:
        raise ValueError("the confidence level must be between 0 and 1, e.g. 0.95")
    names = tuple(names)
    if not names:
        raise ValueError("choose at least one covariate")
    design = _as_design(start, stop, event, x, names, strata)
    if not design.risk_sets:
        raise ValueError("no events: a Cox model needs at least one")
    constant = [names[j] for j in range(len(names)) if np.ptp(design.x[:, j]) == 0]
    if constant:
        raise ValueError("covariate takes one value only: " + ", ".join(constant))
    centred = design.x - design.x.mean(axis=0)
    if np.linalg.matrix_rank(centred) < len(names):
        raise ValueError(
            "the covariates are collinear (one is a combination of the others): drop one of "
            + ", ".join(names)
        )
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _newton(design, names, cluster, ties, conf_level, terms)


def _newton(design, names, cluster, ties, conf_level, terms) -> CoxFit:
    p = len(names)
    beta = np.zeros(p)
    loglik0, score0, info0 = _fit_terms(design, beta, ties)
    try:
        score_stat = float(score0 @ np.linalg.solve(info0, score0))
    except np.linalg.LinAlgError:
        raise ValueError(
            "a covariate does not vary within the risk sets (e.g. constant within every "
            "stratum): drop it or the strata"
        ) from None
    loglik, score, info = loglik0, score0, info0
    iterations = 0
    while iterations < MAX_ITERATIONS:
        iterations += 1
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:  # the information vanishes as a coefficient runs off
            iterations = MAX_ITERATIONS
            break
        if not np.all(np.isfinite(step)):  # the information is no longer finite: runs off
            iterations = MAX_ITERATIONS
            break
        for _halving in range(MAX_HALVINGS):  # the log-likelihood must not decrease
            new = _fit_terms(design, beta + step, ties)
            if new[0] >= loglik - 1e-10 * abs(loglik) or np.max(np.abs(step)) < 1e-14:
                break
            step = step / 2
        else:  # no step, however small, improves a finite likelihood: not estimable
            iterations = MAX_ITERATIONS
            break
        beta = beta + step
        loglik, score, info = new
        if np.max(np.abs(step)) < 1e-11 * (1 + np.max(np.abs(beta))):
            break
    infinite = [names[j] for j in range(p) if abs(beta[j]) > INFINITE_COEF]
    if infinite or iterations == MAX_ITERATIONS:
        raise ValueError(
            "monotone likelihood: the hazard ratio of "
            + (", ".join(infinite) or "a covariate")
            + " is infinite (every event is on one side of it); the model cannot be estimated"
        )
    naive = _inverse(info, names)
    var = naive
    robust = cluster is not None
    if robust:
        groups = np.unique(np.asarray([str(c) for c in cluster]), return_inverse=True)[1]
        if len(groups) != len(design.stop):
            raise ValueError("cluster must give one patient ID per row")
        dfbeta = _score_residuals(design, beta, ties) @ naive
        summed = np.zeros((groups.max() + 1, p))
        np.add.at(summed, groups, dfbeta)
        var = summed.T @ summed
    wald_stat = float(beta @ np.linalg.solve(var, beta))
    return CoxFit(
        names,
        beta,
        var,
        naive,
        loglik0,
        loglik,
        _chi2_test("Wald", wald_stat, p),
        _chi2_test("likelihood ratio", 2 * (loglik - loglik0), p),
        _chi2_test("score (log-rank)", score_stat, p),
        ties,
        robust,
        len(design.stop),
        int(design.event.sum()),
        iterations,
        conf_level,
        terms or {name: (j,) for j, name in enumerate(names)},
        design,
    )


def _km_transform(design: _Design) -> np.ndarray:
    """g(t) = 1 − KM(t−) at every row's stop time, the KM of all rows ignoring strata."""
    times = np.unique(design.stop[design.event == 1])
    surv = []
    s = 1.0
    for t in times:
        n = int(((design.start < t) & (design.stop >= t)).sum())
        d = int(((design.stop == t) & (design.event == 1)).sum())
        s *= 1 - d / n
        surv.append(s)
    surv_before = np.concatenate([[1.0], surv])
    index = np.searchsorted(times, design.stop, side="left")  # times strictly below stop
    return 1 - surv_before[index]


@dataclass(frozen=True)
class PHTest:
    """``cox.zph``: chi-square per term and global, transform "km"."""

    rows: tuple[tuple[str, float, int, float], ...]  # (term, chisq, df, p); GLOBAL last
    transform: str = "km"

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": "Grambsch–Therneau score test (R cox.zph, transform km)",
            "rows": [
                {"term": t, "chisq": json_number(c), "df": df, "p_value": json_number(p)}
                for t, c, df, p in self.rows
            ],
        }


def cox_zph(fit: CoxFit) -> PHTest:
    """R ≥ 3.0's ``cox.zph(fit)`` (transform "km", terms = TRUE, global = TRUE)."""
    design = fit.design
    assert design is not None
    g_all = _km_transform(design)
    g_all = g_all - g_all[design.event == 1].mean()
    x, beta, ties = design.x, fit.coef, fit.ties
    p = x.shape[1]
    eta = x @ beta
    risk = np.exp(eta - eta.max())
    u = np.zeros(p)
    imat = np.zeros((2 * p, 2 * p))
    for _, at_risk, dying in design.risk_sets:
        g = g_all[dying[0]]
        xr, rr = x[at_risk], risk[at_risk]
        xd, rd = x[dying], risk[dying]
        s0, s1, s2 = rr.sum(), rr @ xr, (xr * rr[:, None]).T @ xr
        d0, d1, d2 = rd.sum(), rd @ xd, (xd * rd[:, None]).T @ xd
        d = len(dying)
        weight = 1.0 if ties == "efron" else float(d)
        u += g * xd.sum(axis=0)
        v = np.zeros((p, p))
        for f in _efron_steps(d, ties):
            a0, a1, a2 = s0 - f * d0, s1 - f * d1, s2 - f * d2
            mean = a1 / a0
            u -= weight * g * mean
            v += weight * (a2 / a0 - np.outer(mean, mean))
        imat[:p, :p] += v
        imat[:p, p:] += g * v
        imat[p:, :p] += g * v
        imat[p:, p:] += g * g * v
    rows = []
    for term, columns in fit.terms.items():
        kk = list(range(p)) + [p + j for j in columns]
        uu = np.concatenate([np.zeros(p), u[list(columns)]])
        chisq = float(np.linalg.solve(imat[np.ix_(kk, kk)], uu) @ uu)
        rows.append((term, chisq, len(columns), float(stats.chi2.sf(chisq, len(columns)))))
    uu = np.concatenate([np.zeros(p), u])
    chisq = float(np.linalg.solve(imat, uu) @ uu)
    rows.append(("GLOBAL", chisq, p, float(stats.chi2.sf(chisq, p))))
    return PHTest(tuple(rows))
