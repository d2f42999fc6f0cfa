"""The standard errors against the truth: the spread of the metrics over independent draws of both sets.

Gaussian features: a reference N(0, I) and two generators that share noise, A = z + shift and
B = 1.2 z + shift + 0.1 for the same z, drawn afresh (z and the reference) DRAWS times. The
observed spread of each metric, and of A - B, is its std over the draws; the estimate is the root
mean square of the estimated errors over the draws (the variance estimate is what the theory makes
unbiased; the mean of the errors themselves sits lower where single estimates are noisy, 0.74x for
FID and KID between equal 5-d distributions while their RMS was 0.87x). With 48 draws the observed
spread is itself known to about +-10%.

Ratios (RMS error / observed spread) of this test (48 draws, 120 replicates, n = m = 100):

| case | fid | kid | precision | recall | A-B fid | A-B kid | A-B precision | A-B recall |
|---|---|---|---|---|---|---|---|---|
| equal, d/n 0.05 | 0.88 | 0.90 | 0.96 | 0.90 | 0.97 | 1.00 | 1.11 | 0.91 |
| shifted, d/n 0.05 | 1.04 | 1.12 | 1.05 | 0.97 | 0.94 | 1.01 | 1.01 | 0.91 |
| equal, d/n 0.4 | 1.21 | 1.30 | 0.93 | 0.98 | 1.02 | 0.88 | 1.02 | 1.00 |
| shifted, d/n 0.4 | 0.94 | 0.84 | 0.97 | 0.86 | 0.96 | 0.85 | 1.00 | 1.10 |

The previous estimator (halves of the generated set only, the reference fixed; a difference's error
sqrt(se_A^2 + se_B^2)) fails it, same draws: fid 0.74-1.26, kid 0.71-1.43, precision 0.67-0.76,
recall 0.77-0.94, and A - B fid 1.36-3.10, kid 1.47-2.22, precision 0.96-1.73, recall 0.93-2.16.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lines_model import uncertainty

KEYS = ("fid", "kid", "precision", "recall")
KW = dict(kid_subset_size=None, kid_subsets=2, prc_neighborhood=3)  # subsets of all points: no KID Monte Carlo noise
N, DRAWS, REPLICATES = 100, 48, 120


@pytest.fixture
def one_thread():
    """Tiny tensors: on a shared 2-core machine, two threads made each draw 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def calibration(
    d: int, shift: float, draws: int = DRAWS, n: int = N, n_replicates: int = REPLICATES
) -> dict[str, float]:
    """Per metric of A, and of A - B ("d" + metric): RMS estimated error / observed spread."""
    gen = torch.Generator().manual_seed(d)
    values, errors = [], []
    for i in range(draws):
        ref = torch.randn(n, d, generator=gen, dtype=torch.float64)
        z = torch.randn(n, d, generator=gen, dtype=torch.float64)
        gens = {"a": z + shift, "b": 1.2 * z + shift + 0.1}
        m, reps = uncertainty.shared_metrics_with_errors(gens, ref, n_replicates=n_replicates, seed=i, **KW)
        diff = uncertainty.difference(m, reps, "a", "b")
        values.append({k: m["a"][k] for k in KEYS} | {"d" + k: diff[k] for k in KEYS})
        errors.append({k: m["a"][k + "_se"] for k in KEYS} | {"d" + k: diff[k + "_se"] for k in KEYS})
    return {
        k: np.sqrt(np.mean([e[k] ** 2 for e in errors])) / np.std([v[k] for v in values], ddof=1) for k in values[0]
    }


@pytest.mark.parametrize("d, shift", [(5, 0.0), (5, 0.5), (40, 0.0), (40, 0.5)])  # d/n 0.05 and 0.4
def test_errors_match_the_spread_over_draws_of_both_sets(d, shift, one_thread):
    ratios = calibration(d, shift)
    bad = {k: round(r, 2) for k, r in ratios.items() if not 0.75 <= r <= 1.35}
    assert not bad, (bad, {k: round(r, 2) for k, r in ratios.items()})


def test_difference_errors_keep_the_shared_noise(one_thread):
    """B is a deterministic function of A's noise: the paired error of A - B is well below the
    sum in quadrature of their own errors, which would overstate it."""
    g = torch.Generator().manual_seed(0)
    ref, z = (
        torch.randn(200, 8, generator=g, dtype=torch.float64),
        torch.randn(200, 8, generator=g, dtype=torch.float64),
    )
    m, reps = uncertainty.shared_metrics_with_errors({"a": z + 0.5, "b": 1.2 * z + 0.6}, ref, n_replicates=60, **KW)
    diff = uncertainty.difference(m, reps, "a", "b")
    for k in ("fid", "kid"):
        assert diff[k] == m["a"][k] - m["b"][k]
        assert 0 < diff[k + "_se"] < 0.7 * np.hypot(m["a"][k + "_se"], m["b"][k + "_se"]), k
    assert uncertainty.difference(m, reps, "a", "a") == {k: 0.0 for k in diff}
