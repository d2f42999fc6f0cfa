"""A random-weight teacher with the architecture of google/ddpm-cifar10-32, for tests and benchmarks.

    python -m tools.random_teacher -o OUT [--seed S]

(from the repository root). The real checkpoint cannot be downloaded where the tests and the GPU
benchmark run, and neither needs trained weights: they need the 35.7M-parameter UNet's shapes,
cost and its files. OUT gets the hub repo's flat layout (config.json, diffusion_pytorch_model.safetensors,
scheduler_config.json), with the two configs' key sets as the hub holds them, written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import UNet2DModel

from lines_model.cli import ArgumentParser
from lines_model import atomic

# google/ddpm-cifar10-32's two config files as the hub holds them: written by diffusers 0.1, so they
# lack every key later versions added (prediction_type among them, which is "epsilon" by default).
# 35,746,307 parameters.
HUB_UNET_CONFIG = {
    "_class_name": "UNet2DModel",
    "_diffusers_version": "0.1.0",
    "act_fn": "silu",
    "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 32,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}
HUB_SCHEDULER_CONFIG = {
    "_class_name": "DDPMScheduler",
    "_diffusers_version": "0.1.0",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "clip_sample": True,
    "num_train_timesteps": 1000,
    "trained_betas": None,
    "variance_type": "fixed_large",
}
CIFAR10_UNET_CONFIG = {k: v for k, v in HUB_UNET_CONFIG.items() if not k.startswith("_")}  # as UNet2DModel arguments


def save_random_cifar_teacher(folder: Path, seed: int = 0) -> Path:
    """Write a randomly initialised CIFAR-10 teacher in the hub's file format to `folder` (replacing it)."""
    folder = Path(folder)
    # The init draws from the global generator; fork it so the caller's random stream is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DModel(**CIFAR10_UNET_CONFIG)
    with atomic.atomic_dir(folder) as tmp:
        unet.save_pretrained(tmp, safe_serialization=True)
        # Today's diffusers would write every key it knows; the hub's files do not have them.
        (tmp / "config.json").write_text(json.dumps(HUB_UNET_CONFIG, indent=2) + "\n")
        (tmp / "scheduler_config.json").write_text(json.dumps(HUB_SCHEDULER_CONFIG, indent=2) + "\n")
    return folder


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m tools.random_teacher", description=__doc__.splitlines()[0])
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (replaced if it exists)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = p.parse_args(argv)
    print(save_random_cifar_teacher(args.out, args.seed))


if __name__ == "__main__":
    main()
