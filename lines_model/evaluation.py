"""Evaluate generators on the same held-out noise: fidelity, agreement with the teacher, speed.

A generator is a name, its NFE and a function noise -> images in [-1, 1]. The held-out pairs are
split into the evaluation noise (the first `count`) and a disjoint reference set of teacher images
(the next `reference`), so that even the teacher's own FID is a finite sample-noise floor.
Features of every image set are extracted once; each distribution metric comes with a half-sampling
standard error, MSE with the standard error of its per-image mean. Speed is measured in one
dedicated pass after generation, all generators and a fixed machine probe interleaved round-robin
(timing.py): `ms_per_image` is wall-clock time and follows the machine's speed of the moment,
`probes_per_image` (an image's cost in runs of the probe) and `speedup` are ratios within a round
and do not.
"""

from __future__ import annotations

import math

import torch

from lines_model import fidelity, generators, noise as noise_mod, uncertainty
from lines_model.config import Params
from lines_model.config.evaluate import EvaluateCfg
from lines_model.imaging import psnr, to_unit
from lines_model.generators import Generator
from lines_model.line import point_on_line
from lines_model.timing import machine_probe, time_interleaved

DIST_KEYS = ("fid", "kid", "precision", "recall")
METRIC_KEYS = (
    "nfe", "fid", "fid_se", "kid", "kid_se", "precision", "precision_se", "recall", "recall_se",
    "mse", "mse_se", "psnr", "ms_per_image", "ms_per_image_iqr", "probes_per_image", "speedup",
)
# A fast generator's timing sample repeats its call until it spans this long (timing.time_interleaved):
# a one-step student makes a timing batch in tens of milliseconds on a CPU, where a scheduler tick or a
# cold cache after the teacher's turn is a sizeable part of a single call.
SPEED_MIN_SAMPLE_S = 0.25
DATA_SUFFIX = "_data"  # metrics against the real data set: fid_data, fid_data_se, ...


def build_generators(
    params: Params, teacher, *, lines_dir, baseline_dir, pd_dir, device, pairs_precision: str = "fp32"
) -> tuple[list[Generator], torch.nn.Module]:
    """The generators of evaluate.json, teacher first (its speed is the speedup's denominator), and
    the Lines student (for the trajectory figure).

    The teacher row runs at the precision its pairs were made at (the held-out manifest's), so its
    MSE against its own pairs is 0 on every device.

    Besides the pairs sampler, the teacher also runs as DDIM on progressive distillation's nested
    grid at pd.start_steps: the sampler whose two steps PD's first round distils into one.
    """
    p, rt_cfg = params.pairs, params.runtime
    kw = dict(device=device, runtime_cfg=rt_cfg)
    specs = [
        generators.from_teacher(teacher, p.sampler, p.steps, order=p.order, lambda_min=p.lambda_min, precision=pairs_precision, **kw),
        generators.teacher_on_pd_grid(teacher, params.pd.start_steps, **kw),
    ]
    specs += [generators.load(lines_dir, steps=k, **kw) for k in params.evaluate.lines_steps]
    specs.append(generators.load(baseline_dir, **kw))
    specs += generators.pd_students(pd_dir, params.evaluate.pd_steps, **kw)
    lines = next(g.model for g in specs if g.name.startswith("lines_"))
    return specs, lines


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
        c = self.cfg
        kw = dict(kid_subset_size=min(c.kid_subset_size, len(gen), len(ref)), prc_neighborhood=c.prc_neighborhood)
        m, se = uncertainty.metrics_with_errors(gen, ref, n_boot=c.se_replicates, **kw)
        out = {}
        for k in DIST_KEYS:
            out[f"{k}{suffix}"] = m[k]
            out[f"{k}{suffix}_se"] = se[f"{k}_se"]
        return out


def mse_with_se(x: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean squared error over all pixels, and its standard error over the images."""
    sq = (x - target).pow(2)
    per_image = sq.flatten(1).mean(1).double()
    return sq.mean().item(), (per_image.std() / math.sqrt(len(per_image))).item()


def quality(g: Generator, noise: torch.Tensor, teacher01: torch.Tensor, ref_f: torch.Tensor, feats: Features,
            batch_size: int) -> tuple[dict[str, float], torch.Tensor]:
    """One generator's distribution metrics (with their standard errors) against the reference
    features `ref_f`, and its MSE/PSNR against the teacher's images for the same noise; and its
    images in [0, 1]. The evaluation and the seed comparison both score a generator with this."""
    x = g.images(noise, batch_size)
    mse, mse_se = mse_with_se(x, teacher01)
    return {"nfe": g.nfe, **feats.metrics(feats(x), ref_f), "mse": mse, "mse_se": mse_se, "psnr": psnr(mse)}, x


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
    device: torch.device | str = "cpu",
) -> tuple[dict[str, dict], dict[str, torch.Tensor]]:
    """Metrics per generator (keys METRIC_KEYS, plus *_data ones against `data_reference`) and each
    generator's images in [0, 1] for `noise`. Deterministic given the models and inputs, timings aside.
    `device` is where the generators run: the machine probe runs there too."""
    if not specs or specs[0].name != "teacher":
        raise ValueError("specs: the teacher must come first (its speed is the speedup's denominator)")
    if data_reference is not None and data_noise is None:
        raise ValueError("data_noise: needed with data_reference")
    feats = Features(cfg)
    ref_f = feats(to_unit(reference))
    data_f = feats(data_reference) if data_reference is not None else None
    teacher01 = to_unit(teacher_images)
    metrics, images = {}, {}
    for g in specs:
        print(f"evaluate: {g.name} ({g.nfe} NFE)", flush=True)
        metrics[g.name], images[g.name] = quality(g, noise, teacher01, ref_f, feats, cfg.batch_size)
        if data_f is not None:
            metrics[g.name].update(feats.metrics(feats(g.images(data_noise, cfg.batch_size)), data_f, DATA_SUFFIX))
    speed_noise = noise[: cfg.speed_batch]
    timings = time_interleaved(
        {g.name: (lambda g=g: g(speed_noise)) for g in specs}, images_per_call=len(speed_noise), rounds=cfg.speed_rounds,
        min_sample_s=SPEED_MIN_SAMPLE_S, probe=machine_probe(device),
    )
    print(f"timing: machine probe {timings['teacher'].probe_ms:.2f} ms per run", flush=True)
    for g in specs:
        t = timings[g.name]
        metrics[g.name].update(
            ms_per_image=t.ms_per_image, ms_per_image_iqr=t.ms_per_image_iqr, probes_per_image=t.probes_per_image,
            speedup=timings["teacher"].ms_per_image / t.ms_per_image,
        )
    order = [*METRIC_KEYS, *(k for k in metrics["teacher"] if k not in METRIC_KEYS)]
    return {n: {k: m[k] for k in order} for n, m in metrics.items()}, images


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
