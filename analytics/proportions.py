"""Binomial proportions with confidence intervals (the CR rate).

Clopper–Pearson ("exact", from beta quantiles) is the default: it is what clinical reports
usually give (R's ``binom.test``) and never under-covers, at the price of being conservative.
Wilson (R's ``prop.test(correct = FALSE)``) is offered for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from scipy import stats

from analytics.survival import json_number, z_value

ProportionMethod = Literal["clopper-pearson", "wilson"]


@dataclass(frozen=True)
class ProportionEstimate:
    successes: int
    n: int
    proportion: float | None
    lower: float | None
    upper: float | None
    method: str
    conf_level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {
            "successes": self.successes,
            "n": self.n,
            "proportion": json_number(self.proportion),
            "lower": json_number(self.lower),
            "upper": json_number(self.upper),
            "method": self.method,
            "conf_level": self.conf_level,
        }


def proportion_ci(
    successes: int,
    n: int,
    *,
    method: ProportionMethod = "clopper-pearson",
    conf_level: float = 0.95,
) -> ProportionEstimate:
    """Proportion successes / n with a two-sided CI (None everywhere when n = 0)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    names = {"clopper-pearson": "Clopper-Pearson exact", "wilson": "Wilson score"}
    if method not in names:
        raise ValueError(f"unknown method {method!r}")
    if n == 0:
        return ProportionEstimate(0, 0, None, None, None, names[method], conf_level)
    alpha = 1 - conf_level
    p = successes / n
    if method == "clopper-pearson":
        failures = n - successes
        lower = 0.0 if successes == 0 else stats.beta.ppf(alpha / 2, successes, failures + 1)
        upper = 1.0 if failures == 0 else stats.beta.ppf(1 - alpha / 2, successes + 1, failures)
    else:  # Wilson
        z = z_value(conf_level)
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
        lower, upper = max(0.0, centre - half), min(1.0, centre + half)
    return ProportionEstimate(
        successes, n, p, float(lower), float(upper), names[method], conf_level
    )
