"""Train the shapes feature net (the FID feature extractor of the shapes data set).

    python -m tools.train_features --out teachers/shapes-features [--steps N --seed S]

(from the repository root). An offline tool: the pipeline only loads the net it made.

Images are drawn from indices [0, train_images) of the shapes data set, every batch fresh; the
net is evaluated on a disjoint held-out range (indices from `eval_offset`, `eval_images` of
them). Inputs get gaussian pixel noise (per-image std uniform in [0, 2 * noise_std], clamped to
[0, 1]) so that the features stay meaningful on slightly imperfect generated images. No other
augmentation. After training, `feature_scale` is set so that the features of training-range
images have unit root-mean-square (FID/KID then do not depend on the layer's arbitrary scale).
The output folder (weights, config.json, accuracy.json, README.md) is written
atomically.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lines_model import features, shapes
from lines_model.optim import warmup_cosine
from lines_model.errors import ConfigError
from lines_model.typed import field, from_dict, to_dict


@dataclass(frozen=True)
class FeatureTrainConfig:
    seed: int = 0  # weight init, batch indices and noise
    data_seed: int = 0  # seed of the shapes data set (the one the teacher is trained on)
    steps: int = field(2500, min=1)
    batch_size: int = field(128, min=2)
    lr: float = field(2e-3, min=0.0)
    warmup_steps: int = field(100, min=0)
    weight_decay: float = field(1e-4, min=0.0)
    noise_std: float = field(0.03, min=0.0, max=0.5)
    geometry_weight: float = field(1.0, min=0.0)
    train_images: int = field(1_000_000, min=1)  # training indices are drawn from [0, train_images)
    eval_offset: int = field(10_000_000, min=0)  # held-out indices [eval_offset, eval_offset + eval_images)
    eval_images: int = field(5000, min=1)
    calibration_images: int = field(2000, min=1)  # training-range images that set feature_scale
    threads: int = field(1, min=0)  # torch CPU threads; 0 = torch's default
    feature_dim: int = field(128, min=1)
    widths: tuple[int, ...] = (32, 64, 128)

    def validate(self, where: str) -> None:
        if self.eval_offset < self.train_images:
            raise ConfigError(
                f"{where}.eval_offset: {self.eval_offset} overlaps the training range [0, {self.train_images})"
            )


def _noisy(x: torch.Tensor, noise_std: float, g: torch.Generator) -> torch.Tensor:
    if noise_std <= 0:
        return x
    std = torch.rand(x.shape[0], 1, 1, 1, generator=g) * (2 * noise_std)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0.0, 1.0)


def _quantize(x: torch.Tensor) -> torch.Tensor:
    """What the torch-fidelity extractor sees: uint8 images mapped back to [0, 1]."""
    return (x.clamp(0, 1) * 255).round() / 255


@torch.no_grad()
def evaluate(
    model: features.ShapesFeatureNet,
    indices: np.ndarray,
    data_seed: int,
    noise_std: float = 0.0,
    seed: int = 1234,
    batch_size: int = 500,
) -> dict:
    """Held-out accuracy per head and geometry mean absolute error (pixels), on uint8-quantized inputs."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    correct = {name: 0 for name in features.HEADS}
    abs_err = torch.zeros(features.GEOMETRY_DIMS, dtype=torch.float64)
    for start in range(0, len(indices), batch_size):
        x, f = shapes.images(indices[start : start + batch_size], data_seed)
        if noise_std > 0:
            x = (x + noise_std * torch.randn(x.shape, generator=g)).clamp(0, 1)
        out = model(_quantize(x))
        for name in features.HEADS:
            correct[name] += int((out[name].argmax(1) == getattr(f, name)).sum())
        raw = torch.cat([f.radius[:, None], f.center], dim=1)
        abs_err += (features.decode_geometry(out["geometry"]) - raw).abs().sum(0).double()
    n = len(indices)
    res = {f"{name}_accuracy": correct[name] / n for name in features.HEADS}
    res.update({f"{k}_mae_px": float(v) / n for k, v in zip(("radius", "center_x", "center_y"), abs_err)})
    return res


def train(cfg: FeatureTrainConfig, log=print) -> tuple[features.ShapesFeatureNet, list[float]]:
    torch.manual_seed(cfg.seed)
    model = features.ShapesFeatureNet(image_size=shapes.SIZE, widths=cfg.widths, feature_dim=cfg.feature_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.warmup_steps, cfg.steps))
    rng = np.random.default_rng(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    start = time.time()
    model.train()
    for step in range(cfg.steps):
        idx = rng.integers(0, cfg.train_images, size=cfg.batch_size)
        x, f = shapes.images(idx, cfg.data_seed)
        out = model(_noisy(x, cfg.noise_std, g))
        loss = sum(F.cross_entropy(out[name], getattr(f, name)) for name in features.HEADS)
        loss = loss + cfg.geometry_weight * F.mse_loss(out["geometry"], features.encode_geometry(f))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % 250 == 0 or step + 1 == cfg.steps:
            log(f"step {step + 1}/{cfg.steps} loss {np.mean(losses[-250:]):.4f} ({time.time() - start:.0f}s)")
    model.eval().requires_grad_(False)
    return model, losses


@torch.no_grad()
def calibrate(model: features.ShapesFeatureNet, cfg: FeatureTrainConfig) -> tuple[features.ShapesFeatureNet, float]:
    """Copy of `model` whose features have unit RMS on training-range images; also the RMS before."""
    idx = np.random.default_rng([cfg.seed, 1]).integers(0, cfg.train_images, size=cfg.calibration_images)
    x, _ = shapes.images(idx, cfg.data_seed)
    rms = float(model.eval().raw_features(_quantize(x)).pow(2).mean().sqrt())
    return model.with_feature_scale(1.0 / rms).eval().requires_grad_(False), rms


def _readme(cfg: FeatureTrainConfig, command: str, acc: dict, minutes: float) -> str:
    clean, noisy = acc["heldout"], acc["heldout_noise_0.03"]
    rows = "\n".join(
        f"| {name} | {clean[f'{name}_accuracy']:.4f} | {noisy[f'{name}_accuracy']:.4f} |" for name in features.HEADS
    )
    geo = ", ".join(f"{k} {clean[f'{k}_mae_px']:.3f}" for k in ("radius", "center_x", "center_y"))
    return f"""# shapes-features: the FID feature net of the shapes data set

A small CNN (`lines_model.features.ShapesFeatureNet`, {acc["parameters"]:,} parameters) trained on
the factor labels of the procedural shapes data set (`lines_model.shapes`): classification heads
for shape (4), foreground colour (6) and background colour (3), and a regression head for radius
and centre. FID, KID and precision/recall of shapes samples are computed on its
{cfg.feature_dim}-dimensional penultimate features (after a ReLU) through
`lines_model.fidelity` (torch-fidelity feature extractor `shapes-features`).

Files: `model.safetensors` (weights), `config.json` (constructor arguments), `accuracy.json`
(held-out evaluation and the full training config), this README.

## How it was made

```
{command}
```

{cfg.steps} steps of batch {cfg.batch_size} (AdamW, lr {cfg.lr:g}, cosine decay), training images drawn
from indices [0, {cfg.train_images:,}) of the shapes data set (data seed {cfg.data_seed}), seed {cfg.seed},
{cfg.threads} CPU thread(s), {minutes:.1f} min. Inputs get gaussian pixel noise with a per-image std
drawn uniformly from [0, {2 * cfg.noise_std:g}] (mean {cfg.noise_std:g}), clamped to [0, 1]; no other
augmentation. The features that torch-fidelity sees are the raw penultimate activations times
`feature_scale` = {acc["feature_scale"]:.6g} (in `config.json`), which gives them unit root-mean-square
on {cfg.calibration_images:,} training-range images.

## Held-out accuracy

{acc["heldout_images"]:,} images with indices [{cfg.eval_offset:,}, {cfg.eval_offset + cfg.eval_images:,}),
disjoint from the training range, quantized to uint8 as the torch-fidelity extractor sees them:

| head | clean | + gaussian noise std 0.03 |
|---|---|---|
{rows}

Geometry mean absolute error (pixels, clean): {geo}.
"""


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m tools.train_features", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. teachers/shapes-features")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--noise-std", type=float)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "out" and v is not None}
    cfg = from_dict(FeatureTrainConfig, overrides, "train_features")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    start = time.time()
    model, losses = train(cfg, log=lambda s: print(s, flush=True))
    model, rms = calibrate(model, cfg)
    minutes = (time.time() - start) / 60
    held_out = np.arange(cfg.eval_offset, cfg.eval_offset + cfg.eval_images)
    acc = {
        "heldout_images": int(cfg.eval_images),
        "heldout_indices": [int(cfg.eval_offset), int(cfg.eval_offset + cfg.eval_images)],
        "steps": cfg.steps,
        "seed": cfg.seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "feature_scale": model.config.feature_scale,
        "raw_feature_rms": rms,
        "heldout": evaluate(model, held_out, cfg.data_seed),
        "heldout_noise_0.03": evaluate(model, held_out, cfg.data_seed, noise_std=0.03),
        "final_train_loss": float(np.mean(losses[-100:])),
        "train_minutes": round(minutes, 2),
        "train_config": to_dict(cfg),
    }
    command = "python -m tools.train_features " + shlex.join(argv)
    features.save_feature_net(
        model,
        args.out,
        extra_files={
            "accuracy.json": json.dumps(acc, indent=2) + "\n",
            "README.md": _readme(cfg, command, acc, minutes),
        },
    )
    print(json.dumps(acc["heldout"], indent=2))
    print(f"wrote {args.out} in {minutes:.1f} min")


if __name__ == "__main__":
    main()
