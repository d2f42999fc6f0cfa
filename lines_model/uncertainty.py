"""Standard errors of FID, KID, precision and recall, by half-sampling the generated set.

`standard_errors(gen, ref)` gives {"fid_se", "kid_se", "precision_se", "recall_se"}: how much each
metric of `fidelity.metrics_from_features(gen, ref)` would move if the generator drew another
`len(gen)` samples (the reference set held fixed), from the features alone.
`metrics_with_errors(gen, ref)` gives the metrics and their errors together for less than the two
calls: precision and recall, which take most of the metrics' time (torch-fidelity's four passes over
the distances), come from the distance passes that the errors make anyway, with torch-fidelity's
definitions, blocks and distances, so they equal `metrics_from_features`' bit for bit
(`distance_passes`); FID and KID are torch-fidelity's, as there.

Estimator: half-sampling, i.e. the delete-d jackknife with d = n/2 (Shao & Wu 1989). Each of
`n_boot` replicates recomputes the metrics on a random half of `gen` (h = n // 2 points, drawn
without replacement), and var = h / (n - h) * var(replicates): for a mean that is sigma^2 / n up to
the finite-population factor, and it stays consistent for non-smooth statistics like
precision/recall. Why not the bootstrap (drawing with replacement):

- its copies are neighbours at distance 0, so the generated k-NN balls behind recall shrink, and
  KID's within-set mean counts each copied pair as a perfect match; dropping the copies turns a
  replicate into a ~63% subsample whose spread is too small;
- for FID in high dimension its random effective sample size makes FID's d/n bias term fluctuate
  between replicates: on Gaussian features with d = 128, n = 500 it overstated the spread across
  independent draws about 2x, half-sampling 1.06x.

Against the spread over 30-40 independent Gaussian draws (the cases in tests/test_uncertainty.py
and others with d from 8 to 128, n from 100 to 500) the errors came out 0.9-1.3x for FID, KID and
precision and 0.8-1.1x for recall (its balls, built within halves, are larger than at full size),
and up to 1.6x for FID and KID when `gen` and `ref` come from one distribution (there their spread
shrinks faster than 1/n). The observed spreads themselves were known to about +-12%.

Per metric, a replicate is:

- FID: `fid_halves` (for large sets, above 2 d points per half, halves of random groups of points);
- KID: the full-set unbiased MMD^2 between the half and all of `ref` that KID's average over random
  subsets estimates (less its reference-only term, the same in every replicate), plus, in the
  error, the Monte Carlo variance of averaging `kid_subsets` random subsets (std^2 / kid_subsets,
  the std of single-subset KIDs taken from the first 10 of the metric's own subsets);
- precision: the fraction of the half inside the reference balls;
- recall: the fraction of `ref` inside the balls of the half, each point's ball reaching its k-th
  nearest neighbour within the half.

Cost: three passes over the n x n, n x m and m x m distances (torch.cdist, in 10,000-row blocks,
never a whole matrix; `metrics_with_errors` adds torch-fidelity's m x n pass for the recall); per
replicate one d x d symmetric eigenproblem for FID (float64; on the GPU if there is one) and
O((n + m) n / B)-ish bookkeeping. At n = m = 50,000, d = 2,048 the peak memory is a few GB
(benchmarks/README.md, `uncertainty_*` keys).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_STD

from lines_model import distance_passes as passes
from lines_model import fidelity
from lines_model.fid_halves import fid_replicates

# Half-sample replicates: an error from B replicates is itself uncertain by about 1 / sqrt(2 B) of
# it, 5% at 200.
N_BOOT = 200
KID_MC_SUBSETS = 10  # subsets that estimate the Monte Carlo spread of KID


@dataclass
class Replicates:
    """The metrics of every half (arrays of n_boot values) and what turns them into errors."""

    fid: np.ndarray
    fid_factor: float  # variance factor of the FID replicates (1 for halves of groups)
    kid: np.ndarray
    kid_mc_var: float
    precision: np.ndarray
    recall: np.ndarray
    factor: float  # h / (n - h)
    seconds: dict[str, float] = field(default_factory=dict)  # time of each part

    def errors(self, n_boot: int | None = None, first: int = 0) -> dict[str, float]:
        """Standard errors from `n_boot` replicates from number `first` on (all of them by default)."""
        b = slice(first, None if n_boot is None else first + n_boot)
        return {
            "fid_se": math.sqrt(self.fid_factor * self.fid[b].var(ddof=1)),
            "kid_se": math.sqrt(self.factor * self.kid[b].var(ddof=1) + self.kid_mc_var),
            "precision_se": math.sqrt(self.factor * self.precision[b].var(ddof=1)),
            "recall_se": math.sqrt(self.factor * self.recall[b].var(ddof=1)),
        }


def _check(g, r, n_boot: int, kid_subset_size, kid_subsets: int, prc_neighborhood: int) -> int:
    if n_boot < 2:
        raise ValueError(f"n_boot: need at least 2 replicates for a spread, got {n_boot}")
    subset = fidelity.check_metric_args(min(len(g), len(r)), kid_subset_size, kid_subsets, prc_neighborhood)
    h = len(g) // 2
    if not prc_neighborhood < h:
        raise ValueError(f"prc_neighborhood: the errors use halves of {h} generated items, so it must be "
                         f"below {h}, got {prc_neighborhood}")
    return subset


def replicates(
    gen: torch.Tensor,
    ref: torch.Tensor,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    kid_subset_size: int | None,
    kid_subsets: int = 100,
    prc_neighborhood: int = 3,
    metric_seed: int = 2020,
    with_prc: bool = False,
) -> tuple[Replicates, dict[str, float]]:
    """The replicates behind `standard_errors` (same arguments), and with `with_prc` also the
    full-set {"precision", "recall"} of torch-fidelity (else an empty dict)."""
    g, r = fidelity.check_features(gen, ref)
    subset = _check(g, r, n_boot, kid_subset_size, kid_subsets, prc_neighborhood)
    n, m, k = len(g), len(r), prc_neighborhood
    h = n // 2
    rng = np.random.default_rng(seed)
    halves = np.sort(rng.random((n_boot, n)).argsort(axis=1)[:, :h], axis=1)
    H = torch.zeros(n_boot, n, dtype=torch.bool)
    H.scatter_(1, torch.from_numpy(halves), True)
    seconds, t0 = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        seconds[name] = time.perf_counter() - t0
        t0 = time.perf_counter()

    ref_radius = passes.ref_radii(r, k)
    lap("ref_radii")
    gg = passes.gen_gen(g, H, k)
    lap("gen_gen")
    gr = passes.gen_ref(g, r, H, gg.radius, ref_radius)
    lap("gen_ref")
    full = {}
    if with_prc:
        full = {"precision": passes.precision(gr.inside), "recall": passes.recall(r, g, gg.full)}
        lap("recall")
    Hd = H.double()
    kid = ((gg.quad / gg.n_pairs) - 2 * (Hd @ gr.cross) / (h * m)).numpy()
    precision = (Hd @ gr.inside.double() / h).numpy()
    recall = (gr.covered.double() / m).numpy()
    del gg, gr, Hd, H
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fid, fid_factor = fid_replicates(g, r, torch.from_numpy(halves), rng, device)
    lap("fid")
    # The spread of single-subset KIDs, from the first few of the metric's own subsets: it enters
    # divided by kid_subsets, so a rough value suffices, and all of them would cost as much as KID.
    kid_std = fidelity.kid_metric(g, r, subset, min(kid_subsets, KID_MC_SUBSETS), metric_seed)[KEY_METRIC_KID_STD]
    lap("kid_mc")
    rep = Replicates(fid, fid_factor, kid, kid_std**2 / kid_subsets, precision, recall, h / (n - h), seconds)
    return rep, full


def standard_errors(gen: torch.Tensor, ref: torch.Tensor, **settings) -> dict[str, float]:
    """Standard errors {"fid_se", "kid_se", "precision_se", "recall_se"} of `metrics_from_features`.

    `settings` are the keywords of `replicates` but `with_prc`: the metric arguments of
    `fidelity.metrics_from_features` (`metric_seed` is its `seed`), `n_boot`, and `seed`, which draws
    every half, so equal inputs give equal errors. Needs `prc_neighborhood` < n // 2 (the recall
    balls are built within a half).
    """
    return replicates(gen, ref, **settings)[0].errors()


def metrics_with_errors(gen: torch.Tensor, ref: torch.Tensor, *, metric_seed: int = 2020, **settings) -> tuple[dict[str, float], dict[str, float]]:
    """(`fidelity.metrics_from_features(gen, ref, seed=metric_seed, ...)`, `standard_errors(gen, ref, ...)`)
    in one go: the same metrics, bit for bit, and the same errors, with precision and recall taken
    from the errors' distance passes. `settings` as for `standard_errors`."""
    rep, prc = replicates(gen, ref, metric_seed=metric_seed, with_prc=True, **settings)
    metric_args = {k: settings[k] for k in ("kid_subset_size", "kid_subsets", "prc_neighborhood") if k in settings}
    metrics = fidelity.metrics_from_features(gen, ref, seed=metric_seed, prc=False, **metric_args)
    return {**metrics, **prc}, rep.errors()
