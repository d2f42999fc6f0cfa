"""The one-step students: diffusers UNet2DModel folders plus a small sidecar saying how to run them."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import UNet2DModel

from lines_model import atomic
from lines_model.config import ConfigError, StudentCfg

SIDECAR = "lines_model.json"  # kind, t_scale/steps and the resolved config that made the folder


def build_student(cfg: StudentCfg, sample_shape: tuple[int, int, int]) -> UNet2DModel:
    c, h, w = sample_shape
    if h != w:
        raise ConfigError(f"student: square images only, the teacher makes {h}x{w}")
    if h % 2 ** (len(cfg.block_out_channels) - 1):
        raise ConfigError(
            f"student.block_out_channels: {len(cfg.block_out_channels)} levels halve the image "
            f"{len(cfg.block_out_channels) - 1} times, which a {h}x{w} image (teacher's sample size) cannot take"
        )
    return UNet2DModel(
        sample_size=h,
        in_channels=c,
        out_channels=c,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        down_block_types=cfg.down_block_types,
        up_block_types=cfg.up_block_types,
        norm_num_groups=cfg.norm_num_groups,
    )


def save_student(model: UNet2DModel, folder: str | Path, sidecar: dict, extra_files: dict[str, bytes] | None = None) -> None:
    """save_pretrained (safetensors) + sidecar, replacing `folder` atomically."""
    with atomic.atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)


def load_student(folder: str | Path, device="cpu") -> tuple[UNet2DModel, dict]:
    folder = Path(folder)
    if not (folder / "diffusion_pytorch_model.safetensors").exists():
        raise FileNotFoundError(f"{folder / 'diffusion_pytorch_model.safetensors'}: missing student weights; run its training stage")
    model = UNet2DModel.from_pretrained(folder, use_safetensors=True)
    meta = json.loads((folder / SIDECAR).read_text()) if (folder / SIDECAR).exists() else {}
    return model.to(device).eval().requires_grad_(False), meta


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
