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
from dataclasses import dataclass
from typing import Callable

import torch

from lines_model import fidelity, noise as noise_mod, progressive, runtime, samplers
from lines_model.config import Params
from lines_model.config.evaluate import EvaluateCfg
from lines_model.imaging import psnr, to_unit
from lines_model.line import point_on_line
from lines_model.students import load_pd_student, load_student
from lines_model.timing import machine_probe, time_interleaved

DIST_KEYS = ("fid", "kid", "precision", "recall")
METRIC_KEYS = (
    "nfe", "fid", "fid_se", "kid", "kid_se", "precision", "precision_se", "recall", "recall_se",
    "mse", "mse_se", "psnr", "ms_per_image", "ms_per_image_iqr", "probes_per_image", "speedup",
)
# A fast generator's timing sample repeats its call until it spans this long (timing.time_interleaved):
# a one-step student makes 16 images in ~40 ms here, where a scheduler tick or a cold cache after the
# teacher's turn is a sizeable part of a single call. 0.25 s costs about 20 s per evaluation.
SPEED_MIN_SAMPLE_S = 0.25
DATA_SUFFIX = "_data"  # metrics against the real data set: fid_data, fid_data_se, ...


@dataclass
class GeneratorSpec:
    name: str
    nfe: int
    fn: Callable[[torch.Tensor], torch.Tensor]  # noise (n, C, H, W) -> images in [-1, 1]


def build_generators(
    params: Params, teacher, *, lines_dir, baseline_dir, pd_dir, device, pairs_precision: str = "fp32"
) -> tuple[list[GeneratorSpec], torch.nn.Module]:
    """The generators of evaluate.json, teacher first (its speed is the speedup's denominator), and
    the Lines student (for the trajectory figure).

    The teacher row runs at the precision its pairs were made at (the held-out manifest's), so its
    MSE against its own pairs is 0 on every device.

    Besides the pairs sampler, the teacher also runs as DDIM on progressive distillation's nested
    grid at pd.start_steps: the sampler whose two steps PD's first round distils into one.
    """
    p, rt_cfg = params.pairs, params.runtime
    t_unet = runtime.prepare_inference(teacher.unet, device, rt_cfg)
    sched_cfg = teacher.scheduler_config
    sample = samplers.teacher_sampler(p.sampler)
    autocast = runtime.autocast_at(device, pairs_precision)

    def teacher_fn(n: torch.Tensor) -> torch.Tensor:
        with autocast():
            return sample(t_unet, sched_cfg, n, p.steps, order=p.order, lambda_min=p.lambda_min).float()

    specs = [GeneratorSpec("teacher", p.steps, teacher_fn)]
    k0 = params.pd.start_steps
    specs.append(GeneratorSpec(f"teacher_ddim{k0}", k0, lambda n: progressive.sample(t_unet, sched_cfg, n, k0)))
    lines, _ = load_student(lines_dir, device)
    lines = runtime.prepare_inference(lines, device, rt_cfg)
    for k in params.evaluate.lines_steps:
        specs.append(GeneratorSpec(f"lines_{k}step", k, lambda n, k=k: samplers.lines_sample(lines, n, k)))
    base, _ = load_student(baseline_dir, device)
    base = runtime.prepare_inference(base, device, rt_cfg)
    specs.append(GeneratorSpec("baseline_1step", 1, lambda n: samplers.lines_sample(base, n, 1)))
    for k in sorted(params.evaluate.pd_steps, reverse=True):
        net, cfg = load_pd_student(pd_dir, k, device)
        net = runtime.prepare_inference(net, device, rt_cfg)
        specs.append(GeneratorSpec(f"pd_{k}step", k, lambda n, net=net, cfg=cfg, k=k: progressive.sample(net, cfg, n, k)))
    return specs, lines


@torch.no_grad()
def generate(spec: GeneratorSpec, noise: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Images in [0, 1] for every noise, in batches."""
    out = [spec.fn(noise[i : i + batch_size]).float().cpu() for i in range(0, len(noise), batch_size)]
    return to_unit(torch.cat(out))


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
        m = fidelity.metrics_from_features(gen, ref, **kw)
        se = fidelity.standard_errors(gen, ref, n_boot=c.se_replicates, **kw)
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


@torch.no_grad()
def evaluate(
    specs: list[GeneratorSpec],
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
    for spec in specs:
        print(f"evaluate: {spec.name} ({spec.nfe} NFE)", flush=True)
        x = generate(spec, noise, cfg.batch_size)
        images[spec.name] = x
        mse, mse_se = mse_with_se(x, teacher01)
        m = {"nfe": spec.nfe, **feats.metrics(feats(x), ref_f), "mse": mse, "mse_se": mse_se, "psnr": psnr(mse)}
        if data_f is not None:
            m.update(feats.metrics(feats(generate(spec, data_noise, cfg.batch_size)), data_f, DATA_SUFFIX))
        metrics[spec.name] = m
    speed_noise = noise[: cfg.speed_batch]
    timings = time_interleaved(
        {s.name: (lambda s=s: s.fn(speed_noise)) for s in specs}, images_per_call=len(speed_noise), rounds=cfg.speed_rounds,
        min_sample_s=SPEED_MIN_SAMPLE_S, probe=machine_probe(device),
    )
    print(f"timing: machine probe {timings['teacher'].probe_ms:.2f} ms per run", flush=True)
    for spec in specs:
        t = timings[spec.name]
        metrics[spec.name].update(
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
