"""Evaluate generators on the same held-out noise: fidelity, agreement with the teacher, speed.

A generator is a name, its NFE and a function noise -> images in [-1, 1]. The held-out pairs are
split into the evaluation noise (the first `count`) and a disjoint reference set of teacher images
(the next `reference`), so that even the teacher's own FID is a finite sample-noise floor.
Features of every image set are extracted once; each distribution metric comes with a standard
error from half-samples of both the generated and the reference set (`uncertainty`), MSE with the
standard error of its per-image mean. The generators share the noises and the reference, so the
differences that the comparisons rest on (each method's `differences`) get errors of their own, paired noise by
noise: from the same halves for every generator, and for MSE from per-image differences. Speed is measured in one
dedicated pass after generation, all generators interleaved in seeded, balanced rounds (timing.py):
`ms_per_image` is wall-clock time and follows the machine's speed of the moment; `speedup`, the
teacher's time over the generator's in the same round, does not, unless the rounds disagree about it
(`speedup_iqr`) or other processes held the cores: `timing_reliable` is 0 then, and a warning says why.
"""

from __future__ import annotations

import math
import sys

import torch

from lines_model import fidelity, noise as noise_mod, uncertainty
from lines_model.config.evaluate import EvaluateCfg
from lines_model.imaging import psnr, to_unit
from lines_model.generators import Generator
from lines_model.line import point_on_line
from lines_model import timing

DIST_KEYS = ("fid", "kid", "precision", "recall")
METRIC_KEYS = (
    "nfe", "fid", "fid_se", "kid", "kid_se", "precision", "precision_se", "recall", "recall_se",
    "mse", "mse_se", "psnr", "ms_per_image", "ms_per_image_iqr", "speedup", "speedup_iqr", "timing_reliable",
)
DATA_SUFFIX = "_data"  # metrics against the real data set: fid_data, fid_data_se, ...


class Features:
    """The evaluation's feature extractor, with its settings bound once."""

    def __init__(self, cfg: EvaluateCfg):
        self.cfg = cfg
        shapes = cfg.feature_extractor == fidelity.SHAPES_EXTRACTOR
        self.kwargs = {"feature_dir": cfg.feature_dir} if shapes else {"weights_path": cfg.feature_weights}
        where = cfg.feature_dir if shapes else (cfg.feature_weights or "torch-fidelity's download")
        print(f"features: {cfg.feature_extractor} ({where})", flush=True)

    def __call__(self, images01: torch.Tensor) -> torch.Tensor:
        return fidelity.extract_features(images01, self.cfg.feature_extractor, **self.kwargs)

    def metrics(self, gen: torch.Tensor, ref: torch.Tensor, suffix: str = "") -> dict[str, float]:
        return self.shared_metrics({"gen": gen}, ref, suffix)[0]["gen"]

    def shared_metrics(self, gens: dict[str, torch.Tensor], ref: torch.Tensor, suffix: str = "", differences=()
                       ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        """Metrics with errors of each feature set in `gens` (one per generator, item i from noise
        i), and of the `differences` (a, b) with their paired errors, keys with `suffix`."""
        c = self.cfg
        n = len(next(iter(gens.values())))
        kw = dict(kid_subset_size=min(c.kid_subset_size, n, len(ref)), prc_neighborhood=c.prc_neighborhood)
        m, reps = uncertainty.shared_metrics_with_errors(gens, ref, n_boot=c.se_replicates, **kw)
        diffs = {f"{a} - {b}": uncertainty.difference(m, reps, a, b) for a, b in differences}
        return ({name: _suffixed(v, suffix) for name, v in m.items()}, {name: _suffixed(v, suffix) for name, v in diffs.items()})


def _suffixed(metrics: dict[str, float], suffix: str) -> dict[str, float]:
    """fid -> fid{suffix}, fid_se -> fid{suffix}_se, ..."""
    return {(f"{k[:-3]}{suffix}_se" if k.endswith("_se") else f"{k}{suffix}"): v for k, v in metrics.items()}


def mse_with_se(x: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean squared error over all pixels, and its standard error over the images."""
    sq = (x - target).pow(2)
    per_image = sq.flatten(1).mean(1).double()
    return sq.mean().item(), (per_image.std() / math.sqrt(len(per_image))).item()


def mse_difference(a: torch.Tensor, b: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """{"mse": MSE(a) - MSE(b), "mse_se": the standard error of the mean of the per-image differences}:
    images i of `a` and `b` come from the same noise, so their errors against the teacher's image i
    are correlated, and the per-image difference keeps that."""
    per_image = ((a - target).pow(2).flatten(1).mean(1) - (b - target).pow(2).flatten(1).mean(1)).double()
    return {"mse": mse_with_se(a, target)[0] - mse_with_se(b, target)[0], "mse_se": (per_image.std() / math.sqrt(len(per_image))).item()}


def quality(g: Generator, noise: torch.Tensor, teacher01: torch.Tensor, ref_f: torch.Tensor, feats: Features,
            batch_size: int) -> tuple[dict[str, float], torch.Tensor]:
    """One generator's distribution metrics (with their standard errors) against the reference
    features `ref_f`, and its MSE/PSNR against the teacher's images for the same noise; and its
    images in [0, 1]. The seed comparison scores a generator with this."""
    x = g.images(noise, batch_size)
    m, _ = shared_quality({g.name: x}, {g.name: g.nfe}, teacher01, ref_f, feats)
    return m[g.name], x


def shared_quality(images: dict[str, torch.Tensor], nfe: dict[str, int], teacher01: torch.Tensor, ref_f: torch.Tensor,
                   feats: Features, differences=()) -> tuple[dict[str, dict], dict[str, dict]]:
    """`quality`'s metrics of every generator's images in [0, 1] (`images`, all from the same
    noises), with errors from the same halves for all, and the `differences` (a, b) with
    their paired errors."""
    feats_of = {name: feats(x) for name, x in images.items()}
    dist, diffs = feats.shared_metrics(feats_of, ref_f, differences=differences)
    metrics = {}
    for name, x in images.items():
        mse, mse_se = mse_with_se(x, teacher01)
        metrics[name] = {"nfe": nfe[name], **dist[name], "mse": mse, "mse_se": mse_se, "psnr": psnr(mse)}
    for a, b in differences:
        diffs[f"{a} - {b}"].update(mse_difference(images[a], images[b], teacher01))
    return metrics, diffs


@torch.no_grad()
def evaluate(
    specs: list[Generator],
    noise: torch.Tensor,
    teacher_images: torch.Tensor,
    reference: torch.Tensor,
    cfg: EvaluateCfg,
    *,
    data_reference: torch.Tensor | None = None,
    data_noise: torch.Tensor | None = None,
    differences=(),
) -> tuple[dict[str, dict], dict[str, torch.Tensor], dict[str, dict]]:
    """Metrics per generator (keys METRIC_KEYS, plus *_data ones against `data_reference`), each
    generator's images in [0, 1] for `noise`, and the `differences` (a, b) between generators with their
    paired errors ({"a - b": {"fid": ..., "fid_se": ..., ..., "mse": ..., "mse_se": ...}}).
    Deterministic given the models and inputs, timings aside."""
    if not specs or specs[0].name != "teacher":
        raise ValueError("specs: the teacher must come first (its speed is the speedup's denominator)")
    if data_reference is not None and data_noise is None:
        raise ValueError("data_noise: needed with data_reference")
    feats = Features(cfg)
    ref_f = feats(to_unit(reference))
    data_f = feats(data_reference) if data_reference is not None else None
    teacher01 = to_unit(teacher_images)
    images = {}
    for g in specs:
        print(f"evaluate: {g.name} ({g.nfe} NFE)", flush=True)
        images[g.name] = g.images(noise, cfg.batch_size)
    present = [(a, b) for a, b in differences if a in images and b in images]
    print("evaluate: metrics and standard errors, every generator on the same halves", flush=True)
    metrics, diffs = shared_quality(images, {g.name: g.nfe for g in specs}, teacher01, ref_f, feats, present)
    if data_f is not None:
        data_feats = {g.name: feats(g.images(data_noise, cfg.batch_size)) for g in specs}
        data_m, data_d = feats.shared_metrics(data_feats, data_f, DATA_SUFFIX, present)
        for name, m in data_m.items():
            metrics[name].update(m)
        for name, m in data_d.items():
            diffs[name].update(m)
    for name, t in time_generators(specs, noise[: cfg.speed_batch], cfg.speed_rounds, cfg.speed_min_sample_s).items():
        metrics[name].update(t)
    order = [*METRIC_KEYS, *(k for k in metrics["teacher"] if k not in METRIC_KEYS)]
    return {n: {k: m[k] for k in order} for n, m in metrics.items()}, images, diffs


@torch.no_grad()
def time_generators(specs: list[Generator], noise: torch.Tensor, rounds: int,
                    min_sample_s: float) -> dict[str, dict[str, float]]:
    """ms_per_image, ms_per_image_iqr, speedup, speedup_iqr and timing_reliable of every generator
    making images for `noise`, all interleaved in at least `rounds` rounds, each turn at least
    `min_sample_s` long (timing.time_interleaved). `speedup` is the teacher's time over the
    generator's, taken round by round: the figure that holds across runs when `timing_reliable` is
    1 (timing.reliability); a warning line on stderr names what made it 0."""
    timings = timing.time_interleaved({g.name: (lambda g=g: g(noise)) for g in specs}, images_per_call=len(noise),
                                      rounds=rounds, min_sample_s=min_sample_s, reference="teacher")
    warning = timing.warning(timings)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return {n: timing_metrics(t) for n, t in timings.items()}


def timing_metrics(t: timing.Timing) -> dict[str, float]:
    """A Timing as the evaluation's metrics: timing_reliable is 1 or 0, a number like the others."""
    return dict(ms_per_image=t.ms_per_image, ms_per_image_iqr=t.ms_per_image_iqr, speedup=t.speedup,
                speedup_iqr=t.speedup_iqr, timing_reliable=int(t.reliability.reliable))


def data_noise(count: int, shape, seed: int) -> torch.Tensor:
    """Noise for the data-reference comparison: its own stream, disjoint from pairs and held-out."""
    return noise_mod.noise_for(range(count), shape, seed, noise_mod.EVAL)


@torch.no_grad()
def trajectory(student, noise: torch.Tensor, clean: torch.Tensor, ts) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs X_t on the line from N to the teacher's image C, and the student's S(X_t, t), for
    each t in `ts`: two (k, len(ts), C, H, W) tensors in [-1, 1]."""
    device = next(student.parameters()).device
    n, c = noise.to(device), clean.to(device)
    xs = [point_on_line(n, c, t) for t in ts]
    preds = [student(x, t) for x, t in zip(xs, ts)]
    return torch.stack(xs, 1).cpu(), torch.stack(preds, 1).cpu()
