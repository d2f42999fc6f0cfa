"""Shared fixtures: tiny random teachers and a micro params profile, all on the CPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The suite is a CPU suite: its golden values, bit-identical resumes and end-to-end `dvc repro` runs
# are the CPU's. On a machine with a GPU, CUDA is hidden from it and from the processes it starts
# (before torch can initialise CUDA); tests/test_cuda.py runs apart, with LINES_MODEL_TEST_CUDA=1
# (`make test` does so where nvidia-smi is found).
if os.environ.get("LINES_MODEL_TEST_CUDA") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
# The `dvc` and `python` that the end-to-end tests start are this interpreter's, whether or not its
# environment is activated.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

import pytest  # noqa: E402
import torch  # noqa: E402

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
    DDPMScheduler(
        prediction_type=prediction_type, beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing"
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    return make_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny")


# The micro profile: only what differs from the shipped params.yaml, as profiles/ do.
MICRO_DIFF = """\
teacher: {model: teachers/tiny}
pairs: {count: 200, heldout: 120, steps: 4, order: 2, batch_size: 50, shard_size: 100}
subset: {count: 100}
student: {init: random, block_out_channels: [16, 32], down_block_types: [DownBlock2D, AttnDownBlock2D],
          up_block_types: [AttnUpBlock2D, UpBlock2D], norm_num_groups: 8}
train_lines: {lr: 0.001, epochs: 2, batch_size: 32, log_every: 1, checkpoint_every: 2}
train_baseline: {lr: 0.001, epochs: 1, batch_size: 32, log_every: 1}
pd: {start_steps: 4, iters_per_round: 3, batch_size: 16}
cd: {iterations: 2, batch_size: 16, num_points: 6, log_every: 1}
evaluate: {count: 60, reference: 60, kid_subset_size: 20, se_replicates: 10, speed_batch: 4, speed_rounds: 2,
           speed_min_sample_s: 0.02,
           pd_steps: [2, 1], grid_columns: 4, trajectory_samples: 2}
runtime: {threads: 1}
"""


def micro_params(**sections) -> str:
    """params.yaml text of the micro profile, with `sections` (dicts) merged on top."""
    import yaml

    from lines_model.profile import merge

    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), yaml.safe_load(MICRO_DIFF))
    params = merge(params, sections)
    return yaml.safe_dump(params, sort_keys=False)


def shipped_params():
    """The typed params of the shipped params.yaml (tests derive their configs from it)."""
    from lines_model.config import load_params

    return load_params(ROOT / "params.yaml")
