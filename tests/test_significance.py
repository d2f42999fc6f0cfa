"""When a difference is a finding (lines_model/significance.py): t p-values at Welch-Satterthwaite dof."""

from __future__ import annotations

import math

import pytest

from lines_model.significance import (
    assess,
    evaluation_difference,
    incomplete_beta,
    seed_difference,
    t_two_sided_p,
    welch_satterthwaite,
)


@pytest.mark.parametrize("a, b", [(1.0, 1.0), (2.5, 1.0), (1.0, 0.7), (3.0, 1.0), (1.0, 40.0)])
def test_the_incomplete_beta_matches_its_closed_forms(a, b):
    # I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b.
    for x in (0.0, 1e-6, 0.03, 0.3, 0.5, 0.77, 0.999, 1.0):
        # 1 - (1 - x)^b without cancellation
        want = x**a if b == 1.0 else 1.0 if x == 1.0 else -math.expm1(b * math.log1p(-x))
        assert incomplete_beta(a, b, x) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_the_incomplete_beta_matches_mpmath_across_its_range():
    mpmath = pytest.importorskip("mpmath")
    for a in (0.5, 1.3, 4.0, 8.6, 60.0, 900.0):
        for b in (0.5, 2.0, 17.0):
            for x in (0.001, 0.1, 0.45, 0.9, 0.995):
                want = float(mpmath.betainc(a, b, 0, x, regularized=True))
                assert incomplete_beta(a, b, x) == pytest.approx(want, rel=1e-10, abs=1e-14), (a, b, x)


@pytest.mark.parametrize("t, dof", [(12.706, 1), (4.303, 2), (2.776, 4), (2.228, 10), (2.042, 30), (1.960, math.inf)])
def test_two_sided_p_at_the_tables_critical_values_is_five_percent(t, dof):
    assert t_two_sided_p(t, dof) == pytest.approx(0.05, abs=1e-4)
    assert t_two_sided_p(-t, dof) == t_two_sided_p(t, dof)


def test_two_sided_p_matches_the_closed_forms_of_one_and_two_dof():
    for t in (0.0, 0.3, 1.0, 2.5, 40.0):
        assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), abs=1e-13)
        assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-13)


def test_welch_satterthwaite():
    assert welch_satterthwaite([(0.3, 4)]) == pytest.approx(4)
    assert welch_satterthwaite([(0.3, 4), (0.3, 4)]) == pytest.approx(8)  # two equal parts: twice the dof
    assert welch_satterthwaite([(0.1, 2), (0.2, math.inf)]) == pytest.approx(0.05**2 / (0.1**4 / 2))
    assert welch_satterthwaite([(0.2, math.inf)]) == math.inf


def test_a_seed_difference_takes_n_minus_one_dof_from_its_seeds_and_none_from_the_evaluation():
    # The seed comparison's one-step recall gap: seed SE 0.0232 over 3 seeds, evaluation SE 0.0323.
    # 2.4 standard errors is p = 0.018 as a z-test, p = 0.030 at its 17 degrees of freedom.
    d = seed_difference({"seed_mean": -0.094, "seed_se": 0.02318, "eval_se": 0.03232}, 3)
    assert d.se == pytest.approx(math.hypot(0.02318, 0.03232))
    assert d.n_se == pytest.approx(2.36, abs=0.01) and d.dof == pytest.approx(17.3, abs=0.1)
    assert d.p == pytest.approx(0.030, abs=0.0005) and d.significant
    assert evaluation_difference(-0.094, d.se).p == pytest.approx(0.018, abs=0.0005)
    # Seeds that agree exactly leave the evaluation's error alone: the normal.
    assert seed_difference({"seed_mean": 1.0, "seed_se": 0.0, "eval_se": 0.5}, 3).dof == math.inf


def test_a_finding_needs_two_standard_errors_and_p_below_five_percent():
    assert not assess(2.1, [(1.0, 3)]).significant  # 2.1 SE, but p = 0.13 at 3 dof
    assert not assess(1.98, [(1.0, math.inf)]).significant  # p = 0.048, but within two SE
    assert assess(2.1, [(1.0, math.inf)]).significant
    assert assess(-3.0, [(0.5, 2), (0.5, math.inf)]).significant  # 4.2 SE at 8 dof: p = 0.003
    assert not assess(0.0, [(0.0, 2)]).significant
