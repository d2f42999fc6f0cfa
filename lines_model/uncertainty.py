"""Standard errors of FID, KID, precision and recall, by complementary half-samples of both sets.

`standard_errors(gen, ref)` gives {"fid_se", "kid_se", "precision_se", "recall_se"}: how much each
metric of `fidelity.metrics_from_features(gen, ref)` would move if both sets were drawn afresh
(another `len(gen)` generated samples and another `len(ref)` reference samples), from the features
alone. `metrics_with_errors(gen, ref)` gives the metrics and their errors together for less than
the two calls: precision and recall come from the distance passes that the errors make anyway,
with torch-fidelity's definitions, blocks and distances, so they equal `metrics_from_features`'
bit for bit (`distance_passes`); FID and KID are torch-fidelity's, as there.

Several generators evaluated on the same noises (index i the same noise for all) against the same
reference: `shared_metrics_with_errors(gens, ref)` uses the same halves of the indices and of the
reference for all of them, so `difference(a, b)` takes the error of a difference from the
replicates of the difference itself, keeping the covariance the shared noise and reference create
(adding the two errors in quadrature ignores it).

Estimator. Replicate 2p is the metric on a random half H of the generated indices and a random half
K of the reference, replicate 2p + 1 on their complements, and var = -Cov(T(H, K), T(H', K')) over
the pairs. Why: a statistic of two samples is, to second order, a linear part (a sum of one term
per point) plus a degenerate quadratic part (a sum over pairs of points; all of FID's and KID's
spread when the two distributions are equal). For the linear part the two complementary replicates
move exactly opposite, and -Cov is sigma^2 / n + tau^2 / m, its variance at full size; the quadratic
part of a half equals that of its complement (its row sums vanish), so it enters the covariance with
the opposite sign and cancels the excess it adds to var(T(H, K)). Plain half-sampling,
var(T(H, K)), counts that part three times: sqrt(3) = 1.7x the spread of FID and KID between equal
distributions. Halves rather than bootstrap draws, because copies are neighbours at distance 0
(the k-NN balls of precision and recall shrink, KID counts a copied pair as a perfect match).

Measured on Gaussian features against the spread over independent draws of both sets
(tests/test_uncertainty_calibration.py: equal and shifted distributions, d/n from 0.05 to 0.4, one
generator and the difference of two that share noise and reference), the root mean square error
was 0.84-1.30x the observed spread for every metric (the table is in that test); errors of the
generated set alone were 0.67-1.43x, and their sum in quadrature for a difference up to 3.1x.
Precision and recall use var(T(H, K) - T(H', K')) / 4 (McCarthy's balanced half-samples) instead:
their halves' k-NN balls are wider than the full sets', so a half's quadratic part is not its
complement's, and -Cov measured 0.5-0.9x, var(T(H, K)) 1.1-1.45x, this 0.86-1.11x.

Per metric, a replicate is:

- FID: `fid_halves` (for large sets, above 2 d points per half, halves of random groups of points);
- KID: the full-set unbiased MMD^2 between the two halves, the U-statistic that KID's average over
  random subsets estimates, plus, in the error, the Monte Carlo variance of averaging `kid_subsets`
  random subsets (their variance / kid_subsets, from the first 10 of the metric's own subsets);
- precision: the fraction of the generated half inside the balls of the reference half;
- recall: the fraction of the reference half inside the balls of the generated half (every ball
  reaching its centre's k-th nearest neighbour within its half).

Cost: per generator two passes over the n x n and n x m distances, and one over the m x m ones for
all (torch.cdist, in 10,000-row blocks, never a whole matrix; `metrics_with_errors` adds
torch-fidelity's m x n pass for the recall); per replicate one d x d Cholesky factor, two products
and a symmetric eigenproblem for FID (float64; on the GPU if there is one) and O((n + m) n / B)-ish
bookkeeping. At n = m = 50,000, d = 2,048 the peak memory is a few GB (benchmarks/README.md,
`uncertainty_*` keys).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch_fidelity.metric_kid import kernel_mmd

from lines_model import distance_passes as passes
from lines_model import fidelity, halves
from lines_model.fid_halves import fid_replicates

# Half-sample replicates (two per complementary pair): an error from P pairs is itself uncertain
# by about 1 / sqrt(P) of it, 10% at 200 replicates.
N_REPLICATES = 200
KID_MC_SUBSETS = 10  # subsets that estimate the Monte Carlo spread of KID
DIST_KEYS = ("fid", "kid", "precision", "recall")


def _variance(x: np.ndarray) -> float:
    """-Cov(T(H), T(H')) over complementary pairs (x[2p], x[2p + 1]); 0 where noise makes it negative."""
    pairs = x.reshape(-1, 2)
    return max(0.0, -float(np.cov(pairs[:, 0], pairs[:, 1])[0, 1]))


def _difference_variance(x: np.ndarray) -> float:
    """var(T(H) - T(H')) / 4 over complementary pairs: McCarthy's balanced half-sample estimator."""
    pairs = x.reshape(-1, 2)
    return float((pairs[:, 0] - pairs[:, 1]).var(ddof=1)) / 4


@dataclass
class Replicates:
    """One generator's metrics on every pair of halves (arrays of n_replicates values; 2p and 2p + 1 are
    complementary), and the single-subset KIDs behind KID's Monte Carlo error."""

    fid: np.ndarray
    kid: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    kid_subset_values: np.ndarray  # KID of each of the first KID_MC_SUBSETS of the metric's subsets
    kid_subsets: int
    seconds: dict[str, float] = field(default_factory=dict)  # time of each part

    def __sub__(self, other: Replicates) -> Replicates:
        """The replicates of the difference of two generators' metrics, paired half by half (and
        subset by subset): valid for replicates of one `shared_replicates` call."""
        return Replicates(
            *(getattr(self, k) - getattr(other, k) for k in (*DIST_KEYS, "kid_subset_values")), self.kid_subsets
        )

    def errors(self, n_replicates: int | None = None, first: int = 0) -> dict[str, float]:
        """Standard errors from `n_replicates` replicates from number `first` on (all of them by default),
        whole complementary pairs."""
        b = slice(first // 2 * 2, None if n_replicates is None else first // 2 * 2 + n_replicates // 2 * 2)
        kid_mc = self.kid_subset_values.var() / self.kid_subsets
        return {
            "fid_se": math.sqrt(_variance(self.fid[b])),
            "kid_se": math.sqrt(_variance(self.kid[b]) + kid_mc),
            "precision_se": math.sqrt(_difference_variance(self.precision[b])),
            "recall_se": math.sqrt(_difference_variance(self.recall[b])),
        }


def _check(n: int, m: int, n_replicates: int, kid_subset_size, kid_subsets: int, prc_neighborhood: int) -> int:
    try:
        halves.check(n, m, n_replicates, prc_neighborhood)
    except halves.SizeError as e:
        raise ValueError(f"{'n_replicates' if e.arg == 'replicates' else e.arg}: {e.reason}") from None
    return fidelity.check_metric_args(min(n, m), kid_subset_size, kid_subsets, prc_neighborhood)


def complementary_halves(n: int, pairs: int, rng: np.random.Generator) -> torch.Tensor:
    """(2 pairs, n) boolean masks: row 2p a random half of range(n) (n // 2 items), row 2p + 1 the rest."""
    first = torch.from_numpy(rng.random((pairs, n)).argsort(axis=1)[:, : n // 2])
    half = torch.zeros(pairs, n, dtype=torch.bool).scatter_(1, first, True)
    return torch.stack([half, ~half], 1).reshape(2 * pairs, n)


def kid_subset_values(g: torch.Tensor, r: torch.Tensor, subset: int, count: int, seed: int) -> np.ndarray:
    """The KIDs of the first `count` subsets torch-fidelity's KID with `seed` draws (its loop, its
    random draws): equal index subsets for every generated set of the same size."""
    rng = np.random.RandomState(seed)
    g, r = g.cpu().numpy(), r.cpu().numpy()
    return np.array(
        [
            kernel_mmd(g[rng.choice(len(g), subset, replace=False)], r[rng.choice(len(r), subset, replace=False)])
            for _ in range(count)
        ]
    )


def shared_replicates(
    gens: dict[str, torch.Tensor],
    ref: torch.Tensor,
    *,
    n_replicates: int = N_REPLICATES,
    seed: int = 0,
    kid_subset_size: int | None,
    kid_subsets: int = 100,
    prc_neighborhood: int = 3,
    metric_seed: int = 2020,
    with_prc: bool = False,
) -> tuple[dict[str, Replicates], dict[str, dict[str, float]]]:
    """The replicates of every generated set in `gens` (same size: item i of each is the same noise)
    against `ref` on the same halves; with `with_prc` also each set's full-set {"precision",
    "recall"} of torch-fidelity (else empty dicts). Arguments as for `standard_errors`."""
    if not gens:
        raise ValueError("gens: no generated feature sets")
    checked = {name: fidelity.check_features(g, ref) for name, g in gens.items()}
    sizes = {name: tuple(g.shape) for name, (g, _) in checked.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"gens: the shared halves need sets of one shape, got {sizes}")
    r = next(iter(checked.values()))[1]
    n, m, k = *next(iter(sizes.values()))[:1], len(r), prc_neighborhood
    subset = _check(n, m, n_replicates, kid_subset_size, kid_subsets, prc_neighborhood)
    # One stream per set (and one for FID's groups), so the first halves do not depend on n_replicates.
    rng_g, rng_r, rng = (np.random.default_rng([seed, s]) for s in range(3))
    H, K = complementary_halves(n, n_replicates // 2, rng_g), complementary_halves(m, n_replicates // 2, rng_r)
    h, hr = H.sum(1).double(), K.sum(1).double()
    seconds, t0 = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()

    rr = passes.within(r, K, k)
    lap("ref_ref")
    reps, full = {}, {}
    for name, (g, _) in checked.items():
        gg = passes.within(g, H, k)
        lap("gen_gen")
        gr = passes.gen_ref(g, r, H, K, gg, rr)
        lap("gen_ref")
        if with_prc:
            full[name] = {"precision": passes.precision(gr.inside), "recall": passes.recall(r, g, gg.full)}
            lap("recall")
        kid = gg.quad / gg.n_pairs + rr.quad / rr.n_pairs - 2 * gr.cross / (h * hr)
        values = kid_subset_values(g, r, subset, min(kid_subsets, KID_MC_SUBSETS), metric_seed)
        lap("kid_mc")
        reps[name] = Replicates(
            None, kid.numpy(), (gr.precise / h).numpy(), (gr.covered / hr).numpy(), values, kid_subsets, seconds
        )
        del gg, gr
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for name, fid in fid_replicates({name: g for name, (g, _) in checked.items()}, r, H, K, rng, device).items():
        reps[name].fid = fid
    lap("fid")
    return reps, full


def replicates(gen: torch.Tensor, ref: torch.Tensor, **settings) -> tuple[Replicates, dict[str, float]]:
    """The replicates behind `standard_errors` (same arguments), and with `with_prc` also the
    full-set {"precision", "recall"} of torch-fidelity (else an empty dict)."""
    reps, full = shared_replicates({"gen": gen}, ref, **settings)
    return reps["gen"], full.get("gen", {})


def standard_errors(gen: torch.Tensor, ref: torch.Tensor, **settings) -> dict[str, float]:
    """Standard errors {"fid_se", "kid_se", "precision_se", "recall_se"} of `metrics_from_features`.

    `settings` are the keywords of `shared_replicates` but `with_prc`: the metric arguments of
    `fidelity.metrics_from_features` (`metric_seed` is its `seed`), `n_replicates`, and `seed`, which draws
    every half, so equal inputs give equal errors. Needs `prc_neighborhood` below half of the smaller
    set (the balls are built within halves).
    """
    return replicates(gen, ref, **settings)[0].errors()


def shared_metrics_with_errors(
    gens: dict[str, torch.Tensor], ref: torch.Tensor, *, metric_seed: int = 2020, **settings
) -> tuple[dict[str, dict[str, float]], dict[str, Replicates]]:
    """Per generated set: `fidelity.metrics_from_features(gen, ref, seed=metric_seed, ...)` with its
    standard errors ({"fid", "fid_se", ...}; the metrics bit for bit, precision and recall from the
    errors' distance passes), and its replicates, for `difference`. `settings` as for `standard_errors`."""
    reps, prc = shared_replicates(gens, ref, metric_seed=metric_seed, with_prc=True, **settings)
    metric_args = {k: settings[k] for k in ("kid_subset_size", "kid_subsets", "prc_neighborhood") if k in settings}
    out = {}
    for name, gen in gens.items():
        m = {**fidelity.metrics_from_features(gen, ref, seed=metric_seed, prc=False, **metric_args), **prc[name]}
        se = reps[name].errors()
        out[name] = {key: v for k in DIST_KEYS for key, v in ((k, m[k]), (f"{k}_se", se[f"{k}_se"]))}
    return out, reps


def metrics_with_errors(gen: torch.Tensor, ref: torch.Tensor, **settings) -> tuple[dict[str, float], dict[str, float]]:
    """(`fidelity.metrics_from_features(gen, ref, seed=metric_seed, ...)`, `standard_errors(gen, ref, ...)`)
    in one go: the same metrics, bit for bit, and the same errors. `settings` as for
    `shared_metrics_with_errors`."""
    out, _ = shared_metrics_with_errors({"gen": gen}, ref, **settings)
    return {k: out["gen"][k] for k in DIST_KEYS}, {f"{k}_se": out["gen"][f"{k}_se"] for k in DIST_KEYS}


def difference(metrics: dict[str, dict[str, float]], reps: dict[str, Replicates], a: str, b: str) -> dict[str, float]:
    """{"fid": fid_a - fid_b, "fid_se": its paired standard error, "kid": ...} for two generators of
    one `shared_metrics_with_errors` call (`metrics`, `reps` as it returns them)."""
    se = (reps[a] - reps[b]).errors()
    return {key: v for k in DIST_KEYS for key, v in ((k, metrics[a][k] - metrics[b][k]), (f"{k}_se", se[f"{k}_se"]))}
