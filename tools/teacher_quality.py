"""Measure a shapes teacher and record the figures next to it (quality.json, samples.png, loss.png).

    python -m tools.teacher_quality --teacher teachers/shapes-ddpm

(from the repository root; an offline tool, not a pipeline stage).

- shape confidence: the share of 1,000 DPM-Solver++ (20 steps) samples that the shipped feature
  network assigns a shape class with probability >= 0.9;
- FID (shapes features) of 2,000 teacher samples against 2,000 data images, and the floor: FID of
  two disjoint sets of 2,000 data images;
- flow resolution: median per-sample PSNR between DDIM-500 and DDIM-1000 endpoints of 256 noises.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lines_model import atomic, noise, plots, shapes
from lines_model.imaging import per_sample_psnr, to_unit
from lines_model.features import load_feature_net
from lines_model.fidelity import compute_fidelity
from lines_model.samplers import ddim, dpmsolver_pp
from lines_model.teachers import load_teacher

STREAM = 7  # a noise stream of its own, unrelated to the pipeline's pairs


def _batched(fn, x: torch.Tensor, bs: int) -> torch.Tensor:
    return torch.cat([fn(x[i : i + bs]) for i in range(0, len(x), bs)])


def measure(
    teacher_dir: str, feature_dir: str, n_fid: int = 2000, n_conf: int = 1000, n_flow: int = 256, bs: int = 250
) -> dict:
    t = load_teacher(teacher_dir)
    shape = t.sample_shape
    t0 = time.time()
    z = noise.noise_for(range(n_fid), shape, 0, STREAM)
    samples = to_unit(_batched(lambda x: dpmsolver_pp(t.unet, t.scheduler_config, x, 20), z, bs))
    net = load_feature_net(feature_dir)
    with torch.no_grad():
        probs = torch.softmax(net(samples[:n_conf])["shape"], dim=1)
    conf = probs.max(1).values
    data_a = shapes.images(range(20_000_000, 20_000_000 + n_fid))[0]
    data_b = shapes.images(range(30_000_000, 30_000_000 + n_fid))[0]
    fid_teacher = compute_fidelity(samples, data_a, "shapes-features", feature_dir)
    fid_floor = compute_fidelity(data_b, data_a, "shapes-features", feature_dir)
    zf = noise.noise_for(range(n_flow), shape, 1, STREAM)
    d500 = _batched(lambda x: ddim(t.unet, t.scheduler_config, x, 500), zf, bs)
    d1000 = _batched(lambda x: ddim(t.unet, t.scheduler_config, x, 1000), zf, bs)
    flow = per_sample_psnr(to_unit(d500), to_unit(d1000))
    counts = np.bincount(probs.argmax(1).numpy(), minlength=len(shapes.SHAPES))
    return {
        "teacher": teacher_dir,
        "shape_confident_share": float((conf >= 0.9).float().mean()),
        "shape_confidence_threshold": 0.9,
        "confidence_samples": n_conf,
        "shape_class_counts": dict(zip(shapes.SHAPES, counts.tolist())),
        "fid_teacher_vs_data": fid_teacher["fid"],
        "kid_teacher_vs_data": fid_teacher["kid"],
        "precision_teacher_vs_data": fid_teacher["precision"],
        "recall_teacher_vs_data": fid_teacher["recall"],
        "fid_data_vs_data_floor": fid_floor["fid"],
        "fid_samples": n_fid,
        "ddim500_vs_ddim1000_median_psnr_db": float(flow.median()),
        "ddim500_vs_ddim1000_min_psnr_db": float(flow.min()),
        "flow_noises": n_flow,
        "sampler_for_samples": "dpmsolver++ order 2, 20 steps",
        "seconds": round(time.time() - t0, 1),
        "_samples": samples[:64],
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m tools.teacher_quality", description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="teachers/shapes-ddpm")
    p.add_argument("--features", default="teachers/shapes-features")
    args = p.parse_args(argv)
    q = measure(args.teacher, args.features)
    folder = Path(args.teacher)
    plots.save_grid(q.pop("_samples"), folder / "samples.png", nrow=8)
    loss_csv = folder / "loss.csv"
    if loss_csv.exists():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        a = np.loadtxt(loss_csv, delimiter=",", skiprows=1)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        k = 50
        ax.plot(a[:, 0], a[:, 1], alpha=0.25, lw=0.5, label="per step")
        ax.plot(a[k - 1 :, 0], np.convolve(a[:, 1], np.ones(k) / k, mode="valid"), label=f"mean of {k}")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (v-prediction MSE)")
        ax.legend()
        fig.tight_layout()
        with atomic.atomic_path(folder / "loss.png") as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        plt.close(fig)
    atomic.write_json(folder / "quality.json", q)
    print(json.dumps(q, indent=1))


if __name__ == "__main__":
    main()
