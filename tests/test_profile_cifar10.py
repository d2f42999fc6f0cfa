"""profiles/cifar10.yaml is the original experiment, key by key (the values that define it).

The values come from the original's four scripts: teacher google/ddpm-cifar10-32, 250,000
deterministic DDIM-200 pairs in fp32, Lines on a 50k subset and the baseline on all pairs, a ~9M
three-level student, AdamW 1e-4 (weight decay 0.01, PyTorch's default) with cosine annealing and no
warmup, batch 256, 50 epochs, clipping at 1.0, MSE, no EMA, fp32 training.
"""

from __future__ import annotations

import subprocess
import sys

import yaml

from conftest import ROOT
from lines_model.config import parse_params


def test_the_merged_cifar10_profile_is_the_original_experiment(tmp_path):
    out = tmp_path / "p.yaml"
    r = subprocess.run(
        [sys.executable, "-m", "lines_model.profile", "profiles/cifar10.yaml", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    p = parse_params(yaml.safe_load(out.read_text()))

    assert p.teacher.model == "teachers/ddpm-cifar10-32"
    assert (p.pairs.sampler, p.pairs.steps, p.pairs.count) == ("ddim", 200, 250_000)
    assert p.pairs.mixed_precision == "no"  # fp32 pairs on every device (auto is bf16 on CUDA)
    assert p.subset.count == 50_000
    s = p.student
    assert s.init == "random" and s.block_out_channels == (64, 128, 256) and s.layers_per_block == 1
    assert set(s.down_block_types) == {"DownBlock2D"} and set(s.up_block_types) == {
        "UpBlock2D"
    }  # attention: mid block only
    for cfg in (p.train_lines, p.train_baseline):
        assert (cfg.loss, cfg.lr, cfg.batch_size, cfg.epochs) == ("mse", 1e-4, 256, 50)
        assert (cfg.warmup_steps, cfg.weight_decay, cfg.grad_clip, cfg.ema_decay) == (0, 0.01, 1.0, 0.0)
    assert p.train_lines.t_dist == "uniform"
    assert p.runtime.mixed_precision == "no"  # fp32 training
    assert p.evaluate.feature_extractor == "inception-v3-compat"
    assert (p.evaluate.data_reference, p.evaluate.data_count) == ("data/cifar10-train.npy", 50_000)
