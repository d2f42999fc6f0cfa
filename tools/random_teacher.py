"""A random-weight teacher with the architecture of google/ddpm-cifar10-32, for tests and benchmarks.

    python -m tools.random_teacher -o OUT [--seed S]

(from the repository root). The real checkpoint cannot be downloaded where the tests and the GPU
benchmark run, and neither needs trained weights: they need the 35.7M-parameter UNet's shapes,
cost and file layout. OUT gets the flat `save_pretrained` layout of the hub repo (config.json,
diffusion_pytorch_model.safetensors, scheduler_config.json), written atomically.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from lines_model.cli import ArgumentParser
from lines_model import atomic

# The config.json of google/ddpm-cifar10-32 (35,746,307 parameters), as UNet2DModel arguments.
CIFAR10_UNET_CONFIG = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 256, 256),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    downsample_padding=0,
    flip_sin_to_cos=False,
    freq_shift=1,
    mid_block_scale_factor=1,
    norm_eps=1e-6,
    norm_num_groups=32,
    attention_head_dim=None,
)
# Its scheduler_config.json: eps prediction, linear betas, clipped samples.
CIFAR10_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", clip_sample=True
)


def save_random_cifar_teacher(folder: Path, seed: int = 0) -> Path:
    """Write a randomly initialised CIFAR-10 teacher to `folder` (replacing it) and return the path."""
    folder = Path(folder)
    # The init draws from the global generator; fork it so the caller's random stream is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DModel(**CIFAR10_UNET_CONFIG)
    with atomic.atomic_dir(folder) as tmp:
        unet.save_pretrained(tmp, safe_serialization=True)
        DDPMScheduler(**CIFAR10_SCHEDULER_CONFIG).save_pretrained(tmp)
    return folder


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m tools.random_teacher", description=__doc__.splitlines()[0])
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (replaced if it exists)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = p.parse_args(argv)
    print(save_random_cifar_teacher(args.out, args.seed))


if __name__ == "__main__":
    main()
