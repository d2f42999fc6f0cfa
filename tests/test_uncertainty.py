"""lines_model.uncertainty (half-sample standard errors), its distance passes and FID halves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_fidelity.defaults
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kernel_poly
from torch_fidelity.metric_prc import calc_cdist_part

from lines_model import distance_passes, fid_halves, fidelity, uncertainty

KW = dict(kid_subset_size=None, kid_subsets=10, prc_neighborhood=3)


def _gaussian_sets(n: int, m: int, d: int, draws: int, shift: float, seed: int = 0):
    """A fixed reference N(0, I) (m, d) and `draws` independent generated sets N(shift, I) (n, d)."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(m, d, generator=g, dtype=torch.float64)
    return ref, [torch.randn(n, d, generator=g, dtype=torch.float64) + shift for _ in range(draws)]


def _halves(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """The halves `uncertainty.replicates` draws with `seed`."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.random((n_boot, n)).argsort(axis=1)[:, : n // 2], axis=1)


def _full_matrix_replicates(g: torch.Tensor, r: torch.Tensor, k: int, halves: np.ndarray) -> dict[str, np.ndarray]:
    """The replicates computed the direct way: whole n x n and m x n distance matrices, float64
    kernels, every half's radii recomputed from its own distance submatrix, FID by torch-fidelity."""
    n, m, h = len(g), len(r), halves.shape[1]
    masks = np.zeros((len(halves), n))
    np.put_along_axis(masks, halves, 1.0, axis=1)
    d_gg, d_rg = calc_cdist_part(g, g), calc_cdist_part(r, g)
    recall = [(d_rg[:, idx] <= d_gg[idx][:, idx].kthvalue(k + 1, dim=1).values).any(dim=1).double().mean().item()
              for idx in torch.from_numpy(halves)]
    inside = (calc_cdist_part(g, r) <= calc_cdist_part(r, r).kthvalue(k + 1, dim=1).values).any(dim=1)
    g64, r64 = g.double().numpy(), r.double().numpy()
    k_gg = kernel_poly(g64, g64)
    quad = np.einsum("bi,ij,bj->b", masks, k_gg, masks) - masks @ np.diag(k_gg)
    kid = quad / (h * (h - 1)) - 2 * masks @ kernel_poly(g64, r64).sum(1) / (h * m)
    stats_r = fid_features_to_statistics(r.double())
    fid = [fid_statistics_to_metric(fid_features_to_statistics(g[idx].double()), stats_r, False)["frechet_inception_distance"]
           for idx in torch.from_numpy(halves)]
    return {"fid": np.array(fid), "kid": kid, "precision": masks @ inside.double().numpy() / h, "recall": np.array(recall)}


def _assert_same_replicates(rep: uncertainty.Replicates, expected: dict[str, np.ndarray]) -> None:
    # Precision and recall: the same counts (a point exactly on a ball's edge could round either
    # way between d(g, r) and d(r, g); none is, here). KID: float32 kernels read off the distances.
    np.testing.assert_array_equal(rep.precision, expected["precision"])
    np.testing.assert_array_equal(rep.recall, expected["recall"])
    np.testing.assert_allclose(rep.kid, expected["kid"], rtol=1e-6)
    np.testing.assert_allclose(rep.fid, expected["fid"], rtol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_replicates_equal_the_full_matrix_computation(dtype):
    ref, (gen,) = _gaussian_sets(300, 280, 50, draws=1, shift=0.3)
    g, r = gen.to(dtype), ref.to(dtype)
    rep, _ = uncertainty.replicates(g, r, n_boot=40, **KW)
    _assert_same_replicates(rep, _full_matrix_replicates(g, r, 3, _halves(300, 40)))


def test_replicates_across_blocks_and_short_neighbour_lists(monkeypatch):
    """Row blocks, sub-blocks, candidate chunks and the radii's fallback to the whole row, made
    small enough to be crossed many times, give the same replicates; so do torch-fidelity's blocks."""
    ref, (gen,) = _gaussian_sets(150, 170, 12, draws=1, shift=0.4, seed=3)
    g, r = gen.float(), ref.float()
    monkeypatch.setattr(distance_passes, "ROWS", 64)
    monkeypatch.setitem(torch_fidelity.defaults.DEFAULTS, "prc_batch_size", 64)
    monkeypatch.setattr(distance_passes, "SUB", 16)
    monkeypatch.setattr(distance_passes, "CANDIDATES", 7)
    monkeypatch.setattr(distance_passes, "RADII_ELEMENTS", 500)
    monkeypatch.setattr(distance_passes, "neighbour_list_length", lambda k, n: k + 3)  # often too short
    expected = _full_matrix_replicates(g, r, 3, _halves(150, 30))
    rep, prc = uncertainty.replicates(g, r, n_boot=30, with_prc=True, **KW)
    _assert_same_replicates(rep, expected)
    m = fidelity.metrics_from_features(g, r, **KW)  # torch-fidelity, also in blocks of 64
    assert prc == {"precision": m["precision"], "recall": m["recall"]}


@pytest.mark.parametrize("n, m, dtype", [(300, 300, torch.float64), (120, 250, torch.float32), (30, 30, torch.float64)])
def test_metrics_with_errors_equal_the_metrics_and_their_errors(n, m, dtype):
    ref, (gen,) = _gaussian_sets(n, m, 50, draws=1, shift=0.2, seed=1)
    g, r = gen.to(dtype), ref.to(dtype)
    metrics, errors = uncertainty.metrics_with_errors(g, r, n_boot=30, **KW)
    assert metrics == fidelity.metrics_from_features(g, r, **KW)  # bit for bit, precision and recall included
    assert list(metrics) == ["fid", "kid", "precision", "recall"]
    assert errors == uncertainty.standard_errors(g, r, n_boot=30, **KW)
    assert set(errors) == {"fid_se", "kid_se", "precision_se", "recall_se"} and all(v > 0 for v in errors.values())


@pytest.mark.parametrize("n", [300, 30])  # more samples than dimensions, and fewer
def test_replicate_formulas_equal_torch_fidelity_on_the_full_set(n):
    """The per-subset shortcuts, given all of `gen` as the one "half", reproduce the metrics."""
    g, r = torch.randn(n, 50, dtype=torch.float64), torch.randn(n, 50, dtype=torch.float64) + 0.2
    # With subsets of all n points every KID subset is a permutation: KID is the full-set U-statistic.
    m = fidelity.metrics_from_features(g, r, kid_subset_size=n, kid_subsets=2, prc_neighborhood=3)
    everything = torch.arange(n)[None]
    assert fid_halves.fid_by_points(g, r, everything)[0] == pytest.approx(m["fid"], rel=1e-6)  # rank-deficient at 30
    groups = np.array_split(np.random.default_rng(0).permutation(n), 6)
    assert fid_halves.fid_by_groups(g, r, groups, np.arange(6)[None])[0] == pytest.approx(m["fid"], rel=1e-6)
    H = torch.ones(1, n, dtype=torch.bool)
    gg = distance_passes.gen_gen(g, H, 3)
    gr = distance_passes.gen_ref(g, r, H, gg.radius, distance_passes.ref_radii(r, 3))
    k_rr = kernel_poly(r.numpy(), r.numpy())
    ref_term = (k_rr.sum() - np.trace(k_rr)) / (n * (n - 1))  # left out of the replicates: a constant
    kid = gg.quad[0].item() / (n * (n - 1)) - 2 * gr.cross.sum().item() / n**2 + ref_term
    assert kid == pytest.approx(m["kid"], rel=1e-9)
    assert gr.covered[0].item() / n == pytest.approx(m["recall"], abs=1e-6)  # torch-fidelity's float32 mean
    assert distance_passes.precision(gr.inside) == m["precision"]
    assert distance_passes.recall(r, g, gg.full) == m["recall"]


def test_fid_halves_of_groups_agree_with_halves_of_points():
    """Half-sampling groups of points estimates the spread half-sampling points does: the mean of
    16 group draws within 10% of a 1,000-replicate per-point error (measured: -2.5%; single draws
    of 128 groups spread by 7.6%, 0.84x to 1.12x, where 1 / sqrt(2 (G - 1)) and 400 replicates
    predict 7.2%)."""
    ref, (gen,) = _gaussian_sets(4096, 2048, 8, draws=1, shift=0.3, seed=2)
    n = len(gen)
    rng = np.random.default_rng(0)
    by_points = fid_halves.fid_by_points(gen, ref, torch.from_numpy(_halves(n, 1000)))
    se_points = np.sqrt(by_points.var(ddof=1))
    se_groups = []
    for _ in range(16):
        groups = np.array_split(rng.permutation(n), 128)
        chosen = rng.random((400, 128)).argsort(axis=1)[:, :64]
        se_groups.append(np.sqrt(fid_halves.fid_by_groups(gen, ref, groups, chosen).var(ddof=1)))
    assert np.mean(se_groups) == pytest.approx(se_points, rel=0.10), (np.mean(se_groups) / se_points, np.std(se_groups) / se_points)


def test_groups_only_where_the_halves_grams_would_cost():
    assert fid_halves.n_groups(500, 128) == 0  # the default evaluation: halves of points
    assert fid_halves.n_groups(5000, 2048) == 0  # CIFAR-10 against held-out teacher images
    assert fid_halves.n_groups(50_000, 2048) == 128  # CIFAR-10 against its 50,000 training images
    assert fid_halves.n_groups(50_000, 16) == 0  # cheap Grams, however many points


# ---- the errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d", [(200, 16), (240, 64)])  # d/n ~ 0.27 as for 500 x 128-d features
def test_standard_errors_match_the_spread_of_independent_draws(n, d):
    """The half-sample errors of one generated set against the observed spread over 40 sets.

    With 40 draws the observed std is itself known to about +-11%. The ratios (mean error of 3
    draws / observed std) were fid 1.26 and 1.23, kid 1.26 and 1.07, precision 0.97 and 0.93,
    recall 0.86 and 1.13 for the two cases.
    """
    ref, gens = _gaussian_sets(n, 400, d, draws=40, shift=0.3)
    values = [fidelity.metrics_from_features(x, ref, **KW) for x in gens]
    observed = {k: np.std([v[k] for v in values], ddof=1) for k in values[0]}
    errors = [uncertainty.standard_errors(x, ref, **KW) for x in gens[:3]]
    ratios = {k: np.mean([e[k + "_se"] for e in errors]) / observed[k] for k in observed}
    for k, ratio in ratios.items():
        assert 0.67 <= ratio <= 1.5, (k, ratios, observed)


def test_standard_errors_are_deterministic():
    ref, (gen,) = _gaussian_sets(60, 80, 8, draws=1, shift=0.5)
    gen32, ref32 = gen.float(), ref.float()
    before = gen32.clone()
    kw = dict(kid_subset_size=30, kid_subsets=10, prc_neighborhood=3)
    s1 = uncertainty.standard_errors(gen32, ref32, n_boot=30, **kw)
    s2 = uncertainty.standard_errors(gen32.clone(), ref32.clone(), n_boot=30, **kw)
    assert s1 == s2
    assert torch.equal(gen32, before)  # inputs are not modified
    assert uncertainty.standard_errors(gen32, ref32, n_boot=30, seed=1, **kw) != s1  # the seed draws the halves


def test_errors_from_fewer_replicates_use_the_first_ones():
    ref, (gen,) = _gaussian_sets(60, 80, 8, draws=1, shift=0.5)
    rep, _ = uncertainty.replicates(gen, ref, n_boot=40, **KW)
    assert rep.errors() == uncertainty.standard_errors(gen, ref, n_boot=40, **KW)
    assert rep.errors(20) == uncertainty.standard_errors(gen, ref, n_boot=20, **KW)  # the same first halves


def test_bad_arguments_are_named():
    f = torch.rand(10, 4)
    with pytest.raises(ValueError, match="n_boot"):
        uncertainty.standard_errors(f, f, kid_subset_size=5, n_boot=1)
    with pytest.raises(ValueError, match="prc_neighborhood"):  # the errors build balls within halves of 5
        uncertainty.standard_errors(f, f, kid_subset_size=5, prc_neighborhood=5)
    with pytest.raises(ValueError, match="gen"):
        uncertainty.metrics_with_errors(f[:, :3], f, kid_subset_size=5)
