"""Evaluate generators on the same held-out noise: fidelity, agreement with the teacher, speed.

A generator is a name, its NFE and a function noise -> images in [-1, 1]. The held-out pairs are
split into the evaluation noise (the first `count`) and a disjoint reference set of teacher images
(the next `reference`), so that even the teacher's own FID is a finite sample-noise floor.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from lines_model.fidelity import compute_fidelity

PSNR_CAP_DB = 100.0  # identical images (mse 0) are reported as 100 dB, keeping every value finite
METRIC_KEYS = ("nfe", "fid", "kid", "precision", "recall", "mse", "psnr", "ms_per_image", "speedup")


@dataclass
class GeneratorSpec:
    name: str
    nfe: int
    fn: Callable[[torch.Tensor], torch.Tensor]  # noise (n, C, H, W) -> images in [-1, 1]


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def psnr(mse: float) -> float:
    return PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else -10 * math.log10(mse)


def per_sample_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of each image pair, images in [0, 1]."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp(min=10 ** (-PSNR_CAP_DB / 10))
    return -10 * torch.log10(mse)


def generate(spec: GeneratorSpec, noise: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = [spec.fn(noise[i : i + batch_size]).float().cpu() for i in range(0, len(noise), batch_size)]
    return torch.cat(out)


def time_per_image(spec: GeneratorSpec, noise: torch.Tensor, repeats: int) -> float:
    """Median wall-clock ms per image over `repeats` runs of one batch, after one warm-up run."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    spec.fn(noise)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        spec.fn(noise)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000 / len(noise)


def evaluate(
    specs: list[GeneratorSpec],
    noise: torch.Tensor,
    teacher_images: torch.Tensor,
    reference: torch.Tensor,
    *,
    batch_size: int,
    speed_batch: int,
    speed_repeats: int,
    fidelity_kwargs: dict,
) -> tuple[dict[str, dict], dict[str, torch.Tensor]]:
    """Metrics per generator (teacher first: its speed is the speedup's denominator) and images in [0, 1]."""
    assert specs[0].name == "teacher", "the teacher must come first"
    metrics, images = {}, {}
    ref01 = to_unit(reference)
    teacher01 = to_unit(teacher_images)
    for spec in tqdm(specs, desc="evaluate", unit="generator"):
        x = to_unit(generate(spec, noise, batch_size))
        images[spec.name] = x
        mse = (x - teacher01).pow(2).mean().item()
        fid = compute_fidelity(x, ref01, **fidelity_kwargs)
        ms = time_per_image(spec, noise[:speed_batch], speed_repeats)
        metrics[spec.name] = {
            "nfe": spec.nfe,
            "fid": fid["fid"],
            "kid": fid["kid"],
            "precision": fid["precision"],
            "recall": fid["recall"],
            "mse": mse,
            "psnr": psnr(mse),
            "ms_per_image": ms,
            "speedup": metrics["teacher"]["ms_per_image"] / ms if metrics else 1.0,
        }
    return metrics, images
