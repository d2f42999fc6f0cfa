"""When a difference is a finding: two standard errors, and a Student-t p-value below 0.05.

A standard error estimated from a handful of values is itself uncertain, so the ratio of a
difference to it follows Student's t rather than the normal distribution. The seed comparison's
error of a difference has two parts: the spread over n training seeds (a variance estimated from n
values: n - 1 degrees of freedom) and the evaluation's own error (half-sample replicates of the
shared noises and reference, `lines_model.uncertainty`). Their sum gets the Welch-Satterthwaite
degrees of freedom (Satterthwaite 1946; Welch 1947), sum(v_i)^2 / sum(v_i^2 / dof_i).

The evaluation's part is treated as known, with unlimited degrees of freedom: it comes from 100
pairs of complementary half-samples (`evaluate.se_replicates: 200`), so about 99 at most would
apply, against the seed part's n - 1 = 2, which dominates the sum wherever the seeds' spread is not
negligible. A difference with the evaluation's error alone (one trained student per method) is
then a normal (z) test.

No scipy: the t distribution's tail is a regularized incomplete beta function, evaluated by its
continued fraction (Numerical Recipes, 3rd ed., section 6.4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

ALPHA = 0.05  # two-sided
MIN_SE = 2.0  # the 2-SE rule: a finding is also beyond two standard errors


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0 and 0.0 <= x <= 1.0):
        raise ValueError(f"incomplete_beta needs a, b > 0 and 0 <= x <= 1, got a={a}, b={b}, x={x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast for x below the mean a / (a + b); above it, use the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) by the modified Lentz method."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete_beta({a}, {b}, {x}): the continued fraction did not converge")


def t_two_sided_p(t: float, dof: float) -> float:
    """P(|T| >= |t|) for Student's t with `dof` degrees of freedom (math.inf: the normal)."""
    if not dof > 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    if math.isinf(dof):
        return math.erfc(abs(t) / math.sqrt(2))
    return incomplete_beta(dof / 2, 0.5, dof / (dof + t * t))


def welch_satterthwaite(parts: Iterable[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of independent variance estimates, given as (standard error, dof) pairs.

    A part with unlimited dof (math.inf) adds to the variance but not to its uncertainty; if every part
    is exact the result is math.inf."""
    parts = list(parts)
    total = sum(se * se for se, _ in parts)
    spread = sum(se**4 / dof for se, dof in parts if not math.isinf(dof))
    if spread == 0:
        return math.inf
    return total * total / spread


@dataclass(frozen=True)
class Difference:
    """A difference with its standard error, degrees of freedom and two-sided p-value."""

    mean: float
    se: float
    dof: float
    p: float

    @property
    def n_se(self) -> float:
        return abs(self.mean) / self.se if self.se > 0 else math.inf

    @property
    def significant(self) -> bool:
        """Beyond two standard errors, and p below ALPHA: otherwise the difference is within noise."""
        return self.n_se > MIN_SE and self.p < ALPHA


def assess(mean: float, parts: Iterable[tuple[float, float]]) -> Difference:
    """`mean` against independent error parts, (standard error, degrees of freedom) each."""
    parts = list(parts)
    se = math.sqrt(sum(s * s for s, _ in parts))
    dof = welch_satterthwaite(parts)
    p = t_two_sided_p(mean / se, dof) if se > 0 else (0.0 if mean != 0 else 1.0)
    return Difference(mean, se, dof, p)


def seed_difference(entry: dict, n_seeds: int) -> Difference:
    """A difference of the seed comparison (metrics/compare.json: `seed_mean`, its `seed_se` over `n_seeds`
    seeds, and the evaluation's `eval_se`)."""
    return assess(entry["seed_mean"], [(entry["seed_se"], n_seeds - 1), (entry["eval_se"], math.inf)])


def evaluation_difference(mean: float, se: float) -> Difference:
    """A difference of one evaluation (metrics/differences.json), with the evaluation's error alone."""
    return assess(mean, [(se, math.inf)])


def format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
