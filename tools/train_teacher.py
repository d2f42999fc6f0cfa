"""Train the embedded DDPM teacher on the shapes data set (the diffusers unconditional recipe).

    python -m tools.train_teacher --config teachers/configs/shapes-ddpm.yaml --out teachers/shapes-ddpm

(from the repository root). An offline tool: the pipeline only loads the teacher it made.

UNet2DModel + DDPMScheduler (1000 steps), AdamW with warmup and cosine decay to 10% of the peak,
gradient clipping, EMA of the weights, bf16 autocast on GPU. The output folder is in the flat
`save_pretrained` layout of `google/ddpm-cifar10-32` (config.json,
diffusion_pytorch_model.safetensors, scheduler_config.json) and is rewritten atomically at every
checkpoint, so an interrupted run still leaves a usable teacher.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from lines_model import atomic, shapes
from lines_model.optim import ema_copy, warmup_cosine
from lines_model.typed import field, from_dict, to_dict


@dataclass(frozen=True)
class TeacherUNet:
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = field(2, min=1)
    # Attention only at the lowest resolution keeps the CPU cost low.
    down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    norm_num_groups: int = field(16, min=1)


@dataclass(frozen=True)
class TeacherTrainConfig:
    seed: int = 0
    unet: TeacherUNet = TeacherUNet()
    # v-prediction with the cosine schedule trains faster than eps/linear at 16x16 and keeps
    # the sampling ODE smooth near t=T; the samplers still handle eps/linear (CIFAR teacher).
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = "v_prediction"
    beta_schedule: Literal["linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    clip_sample: bool = True
    steps: int = field(9000, min=1)
    batch_size: int = field(128, min=1)
    lr: float = field(3e-4, min=0.0)
    warmup_steps: int = field(200, min=0)
    weight_decay: float = field(0.0, min=0.0)
    grad_clip: float = field(1.0, min=0.0)
    ema_decay: float = field(0.9995, min=0.0, max=1.0)
    checkpoint_every: int = field(500, min=1)
    train_images: int = field(1_000_000, min=1)  # indices drawn from [0, train_images) of the shapes set
    threads: int = field(0, min=0)  # torch CPU threads; 0 = torch's default


def build_unet(cfg: TeacherTrainConfig) -> UNet2DModel:
    u = cfg.unet
    return UNet2DModel(
        sample_size=shapes.SIZE,
        in_channels=3,
        out_channels=3,
        block_out_channels=u.block_out_channels,
        layers_per_block=u.layers_per_block,
        down_block_types=u.down_block_types,
        up_block_types=u.up_block_types,
        norm_num_groups=u.norm_num_groups,
    )


def build_scheduler(cfg: TeacherTrainConfig) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule=cfg.beta_schedule,
        prediction_type=cfg.prediction_type,
        clip_sample=cfg.clip_sample,
        # "trailing" makes every step count start at t=999, so DDIM-500 and DDIM-1000 solve the
        # same ODE from the same time (the default "leading" starts 500 steps at t=998).
        timestep_spacing="trailing",
    )


def _target(scheduler: DDPMScheduler, clean, noise, t):
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(clean, noise, t)
    return clean


def _save(out: Path, model: UNet2DModel, ema: EMAModel, scheduler, cfg, losses, step) -> None:
    ema_model = ema_copy(model, ema)
    with atomic.atomic_dir(out) as tmp:
        # Keep the provenance files that live beside the weights.
        for name in ("README.md", "samples.png", "quality.json"):
            if (out / name).exists():
                (tmp / name).write_bytes((out / name).read_bytes())
        ema_model.save_pretrained(tmp, safe_serialization=True)
        scheduler.save_pretrained(tmp)
        cfg_dict = to_dict(cfg)
        (tmp / "train_config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
        lines = ["step,loss"] + [f"{i + 1},{v:.6f}" for i, v in enumerate(losses)]
        (tmp / "loss.csv").write_text("\n".join(lines) + "\n")
        (tmp / "progress.json").write_text(f'{{"step": {step}, "steps": {cfg.steps}}}\n')


def train(cfg: TeacherTrainConfig, out: Path) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no")
    torch.manual_seed(cfg.seed)
    model = build_unet(cfg)
    scheduler = build_scheduler(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Decay to 10% of the peak, not to 0 like the students: the shipped teacher was trained so.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.warmup_steps, cfg.steps, floor=0.1))
    model, opt = accelerator.prepare(model, opt)
    ema = EMAModel(accelerator.unwrap_model(model).parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=3 / 4)
    rng = np.random.default_rng(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="teacher", unit="step", disable=not accelerator.is_main_process)
    start = time.time()
    for step in bar:
        idx = rng.integers(0, cfg.train_images, size=cfg.batch_size)
        clean = shapes.images(idx, cfg.seed)[0] * 2 - 1
        noise = torch.randn(clean.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=g)
        x_t = scheduler.add_noise(clean, noise, t)
        target = _target(scheduler, clean, noise, t)
        x_t, t, target = (v.to(accelerator.device) for v in (x_t, t, target))
        with accelerator.autocast():
            pred = model(x_t, t).sample
        loss = torch.nn.functional.mse_loss(pred.float(), target)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        ema.step(accelerator.unwrap_model(model).parameters())
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        if accelerator.is_main_process and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            _save(out, accelerator.unwrap_model(model), ema, scheduler, cfg, losses, step + 1)
    print(f"trained {cfg.steps} steps in {(time.time() - start) / 60:.1f} min; final loss {np.mean(losses[-200:]):.4f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m tools.train_teacher", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="YAML with TeacherTrainConfig keys (defaults if omitted)")
    p.add_argument("--out", type=Path, required=True, help="output folder (flat save_pretrained layout)")
    args = p.parse_args(argv)
    data = yaml.safe_load(args.config.read_text()) if args.config else {}
    cfg = from_dict(TeacherTrainConfig, data, str(args.config) if args.config else "train_teacher")
    train(cfg, args.out)


if __name__ == "__main__":
    main()
