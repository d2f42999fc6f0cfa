"""lines_model.uncertainty (half-sample standard errors), its distance passes and FID halves.

How well the errors match the truth: tests/test_uncertainty_calibration.py."""

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


def _halves(n: int, m: int, n_replicates: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The generated and reference halves `uncertainty.replicates` draws with `seed`."""
    return tuple(
        uncertainty.complementary_halves(size, n_replicates // 2, np.random.default_rng([seed, s]))
        for s, size in enumerate((n, m))
    )


def _full_matrix_replicates(
    g: torch.Tensor, r: torch.Tensor, k: int, H: torch.Tensor, K: torch.Tensor
) -> dict[str, np.ndarray]:
    """The replicates computed the direct way: each pair of halves' metrics from whole distance
    matrices, every half's radii from its own distance submatrix, KID from float64 kernels by
    torch-fidelity's unbiased MMD^2 formula, FID by torch-fidelity."""
    d_gr = calc_cdist_part(g, r)
    out = {key: [] for key in ("fid", "kid", "precision", "recall")}
    for hb, kb in zip(H, K):
        gh, rh = g[hb], r[kb]
        g_rad = calc_cdist_part(gh, gh).kthvalue(k + 1, dim=1).values
        r_rad = calc_cdist_part(rh, rh).kthvalue(k + 1, dim=1).values
        d = d_gr[hb][:, kb]
        out["precision"].append((d <= r_rad[None, :]).any(dim=1).double().mean().item())
        out["recall"].append((d <= g_rad[:, None]).any(dim=0).double().mean().item())
        x, y = gh.double().numpy(), rh.double().numpy()
        k_xx, k_yy = kernel_poly(x, x), kernel_poly(y, y)
        out["kid"].append(
            (k_xx.sum() - np.trace(k_xx)) / (len(x) * (len(x) - 1))
            + (k_yy.sum() - np.trace(k_yy)) / (len(y) * (len(y) - 1))
            - 2 * kernel_poly(x, y).mean()
        )
        out["fid"].append(
            fid_statistics_to_metric(
                fid_features_to_statistics(gh.double()), fid_features_to_statistics(rh.double()), False
            )["frechet_inception_distance"]
        )
    return {key: np.array(v) for key, v in out.items()}


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
    rep, _ = uncertainty.replicates(g, r, n_replicates=40, **KW)
    _assert_same_replicates(rep, _full_matrix_replicates(g, r, 3, *_halves(300, 280, 40)))


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
    expected = _full_matrix_replicates(g, r, 3, *_halves(150, 170, 30))
    rep, prc = uncertainty.replicates(g, r, n_replicates=30, with_prc=True, **KW)
    _assert_same_replicates(rep, expected)
    m = fidelity.metrics_from_features(g, r, **KW)  # torch-fidelity, also in blocks of 64
    assert prc == {"precision": m["precision"], "recall": m["recall"]}


@pytest.mark.parametrize("n, m, dtype", [(300, 300, torch.float64), (120, 250, torch.float32), (30, 30, torch.float64)])
def test_metrics_with_errors_equal_the_metrics_and_their_errors(n, m, dtype):
    ref, (gen,) = _gaussian_sets(n, m, 50, draws=1, shift=0.2, seed=1)
    g, r = gen.to(dtype), ref.to(dtype)
    metrics, errors = uncertainty.metrics_with_errors(g, r, n_replicates=30, **KW)
    assert metrics == fidelity.metrics_from_features(g, r, **KW)  # bit for bit, precision and recall included
    assert list(metrics) == ["fid", "kid", "precision", "recall"]
    assert errors == uncertainty.standard_errors(g, r, n_replicates=30, **KW)
    assert set(errors) == {"fid_se", "kid_se", "precision_se", "recall_se"} and all(v > 0 for v in errors.values())


@pytest.mark.parametrize("n", [300, 30])  # more samples than dimensions, and fewer
def test_replicate_formulas_equal_torch_fidelity_on_the_full_set(n):
    """The per-subset shortcuts, given all of `gen` as the one "half", reproduce the metrics."""
    g, r = torch.randn(n, 50, dtype=torch.float64), torch.randn(n, 50, dtype=torch.float64) + 0.2
    # With subsets of all n points every KID subset is a permutation: KID is the full-set U-statistic.
    m = fidelity.metrics_from_features(g, r, kid_subset_size=n, kid_subsets=2, prc_neighborhood=3)
    everything = torch.ones(1, n, dtype=torch.bool)
    fid_points = fid_halves._fids(fid_halves._Set(g, "cpu"), everything, fid_halves._Set(r, "cpu"), everything, 4)
    assert fid_points[0] == pytest.approx(m["fid"], rel=1e-6)  # rank-deficient at 30: the symmetric root
    groups = [np.array_split(np.random.default_rng(s).permutation(n), 6) for s in (0, 1)]
    all_groups = torch.ones(1, 6, dtype=torch.bool)
    fid_groups = fid_halves._fids(
        fid_halves._Set(g, "cpu", groups[0]), all_groups, fid_halves._Set(r, "cpu", groups[1]), all_groups, 4
    )
    assert fid_groups[0] == pytest.approx(m["fid"], rel=1e-6)
    H = torch.ones(1, n, dtype=torch.bool)
    gg, rr = distance_passes.within(g, H, 3), distance_passes.within(r, H, 3)
    gr = distance_passes.gen_ref(g, r, H, H, gg, rr)
    kid = gg.quad[0].item() / (n * (n - 1)) + rr.quad[0].item() / (n * (n - 1)) - 2 * gr.cross[0].item() / n**2
    assert kid == pytest.approx(m["kid"], rel=1e-6)  # float32 kernels read off the distances
    assert gr.covered[0].item() / n == pytest.approx(m["recall"], abs=1e-6)  # torch-fidelity's float32 mean
    assert gr.precise[0].item() / n == pytest.approx(m["precision"], abs=1e-6)
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
    every_ref = torch.ones(1000, len(ref), dtype=torch.bool)  # the reference whole: the generated side's spread
    by_points = fid_halves._fids(
        fid_halves._Set(gen, "cpu"), _halves(n, 2, 1000)[0], fid_halves._Set(ref, "cpu"), every_ref, 64
    )
    se_points = np.sqrt(by_points.var(ddof=1))
    se_groups = []
    for _ in range(16):
        groups = np.array_split(rng.permutation(n), 128)
        chosen = torch.from_numpy(rng.random((400, 128)).argsort(axis=1)[:, :64])
        mask = torch.zeros(400, 128, dtype=torch.bool).scatter_(1, chosen, True)
        se_groups.append(
            np.sqrt(
                fid_halves._fids(
                    fid_halves._Set(gen, "cpu", groups), mask, fid_halves._Set(ref, "cpu"), every_ref[:400], 64
                ).var(ddof=1)
            )
        )
    assert np.mean(se_groups) == pytest.approx(se_points, rel=0.10), (
        np.mean(se_groups) / se_points,
        np.std(se_groups) / se_points,
    )


def test_groups_only_where_the_halves_grams_would_cost():
    assert fid_halves.n_groups(500, 128) == 0  # the default evaluation: halves of points
    assert fid_halves.n_groups(5000, 2048) == 0  # CIFAR-10 against held-out teacher images
    assert fid_halves.n_groups(50_000, 2048) == 128  # CIFAR-10 against its 50,000 training images
    assert fid_halves.n_groups(50_000, 16) == 0  # cheap Grams, however many points


# ---- the errors ------------------------------------------------------------------------------------


def test_standard_errors_are_deterministic():
    ref, (gen,) = _gaussian_sets(60, 80, 8, draws=1, shift=0.5)
    gen32, ref32 = gen.float(), ref.float()
    before = gen32.clone()
    kw = dict(kid_subset_size=30, kid_subsets=10, prc_neighborhood=3)
    s1 = uncertainty.standard_errors(gen32, ref32, n_replicates=30, **kw)
    s2 = uncertainty.standard_errors(gen32.clone(), ref32.clone(), n_replicates=30, **kw)
    assert s1 == s2
    assert torch.equal(gen32, before)  # inputs are not modified
    assert uncertainty.standard_errors(gen32, ref32, n_replicates=30, seed=1, **kw) != s1  # the seed draws the halves


def test_errors_from_fewer_replicates_use_the_first_ones():
    ref, (gen,) = _gaussian_sets(60, 80, 8, draws=1, shift=0.5)
    rep, _ = uncertainty.replicates(gen, ref, n_replicates=40, **KW)
    assert rep.errors() == uncertainty.standard_errors(gen, ref, n_replicates=40, **KW)
    assert rep.errors(20) == uncertainty.standard_errors(gen, ref, n_replicates=20, **KW)  # the same first halves
    assert rep.errors(20, first=20) != rep.errors(20)


def test_bad_arguments_are_named():
    f = torch.rand(10, 4)
    with pytest.raises(ValueError, match="n_replicates"):
        uncertainty.standard_errors(f, f, kid_subset_size=5, n_replicates=3)
    with pytest.raises(ValueError, match="one shape"):
        uncertainty.shared_replicates({"a": f, "b": f[:8]}, f, kid_subset_size=4)
    with pytest.raises(ValueError, match="prc_neighborhood"):  # the errors build balls within halves of 5
        uncertainty.standard_errors(f, f, kid_subset_size=5, prc_neighborhood=5)
    with pytest.raises(ValueError, match="gen"):
        uncertainty.metrics_with_errors(f[:, :3], f, kid_subset_size=5)
