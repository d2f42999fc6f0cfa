"""Shared fixtures: tiny random teachers and a micro params profile, all on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Unit tests use tiny tensors; one thread keeps them fast and repeatable on a 2-core machine.
torch.set_num_threads(1)
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_tiny_teacher(folder: Path, prediction_type: str = "v_prediction", seed: int = 0) -> Path:
    """A random 16x16 UNet2DModel + DDPMScheduler in the flat save_pretrained layout."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=16,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    unet.save_pretrained(folder)
    DDPMScheduler(prediction_type=prediction_type, beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing").save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    return make_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny")


MICRO_PARAMS = """\
teacher: {model: teachers/tiny, revision: null}
pairs: {count: 200, heldout: 120, sampler: dpmsolver++, steps: 4, order: 2, seed: 0, batch_size: 50, shard_size: 100}
subset: {size: 100, seed: 0}
student: {block_out_channels: [16, 32], layers_per_block: 1, down_block_types: [DownBlock2D, AttnDownBlock2D],
          up_block_types: [AttnUpBlock2D, UpBlock2D], norm_num_groups: 8, t_scale: 999.0}
train_lines: {lr: 0.001, epochs: 2, batch_size: 32, log_every: 1, checkpoint_every: 2}
train_baseline: {lr: 0.001, epochs: 1, batch_size: 32, log_every: 1}
pd: {start_steps: 4, end_steps: 1, iters_per_round: 3, batch_size: 16, keep_steps: [2, 1]}
evaluate: {feature_dir: teachers/shapes-features, count: 60, reference: 60, kid_subset_size: 20, speed_batch: 4,
           speed_repeats: 1, lines_steps: [1, 2], grid_columns: 4}
runtime: {threads: 1}
"""
