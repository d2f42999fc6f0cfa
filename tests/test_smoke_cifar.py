"""`make smoke-cifar`: the real `dvc repro` of profiles/cifar10.yaml at micro scale, on the CPU.

A random-init teacher of the google/ddpm-cifar10-32 configuration, the profile's 10M student,
DDIM pairs, progressive distillation from the profile's start steps, and torch-fidelity's
Inception-v3 loaded from a local weights file (random weights of the real layout), evaluated
against held-out teacher images and against a stand-in for CIFAR-10 train (random uint8 images in
the file format tools/prefetch.py writes). Only the sizes are micro (tests/cifar10_micro.yaml).
It takes minutes on a 2-core CPU, so `make test` leaves it out and .ci/run runs it on its own.
"""

from __future__ import annotations

import json
import math
import subprocess

import pytest
import yaml

from benchmarks.gpu_pipeline import build_repo
from conftest import ROOT
from lines_model.profile import merge

pytestmark = pytest.mark.smoke_cifar


def test_cifar10_profile_runs_as_a_pipeline(tmp_path):
    profile = yaml.safe_load((ROOT / "profiles" / "cifar10.yaml").read_text())
    assert profile["evaluate"]["feature_extractor"] == "inception-v3-compat"
    assert (
        profile["evaluate"]["data_reference"] == "data/cifar10-train.npy" and profile["evaluate"]["data_count"] == 50000
    )
    params = merge(
        merge(yaml.safe_load((ROOT / "params.yaml").read_text()), profile),
        yaml.safe_load((ROOT / "tests" / "cifar10_micro.yaml").read_text()),
    )

    r = tmp_path / "cifar"
    build_repo(r, params)

    def sh(*cmd):
        p = subprocess.run(cmd, cwd=r, capture_output=True, text=True)
        assert p.returncode == 0, f"{' '.join(cmd)}:\n{(p.stdout + p.stderr)[-5000:]}"
        return p.stdout + p.stderr

    log = sh("dvc", "repro")
    print("\n".join(line for line in log.splitlines() if line.startswith(("Running stage", "features:", "evaluate:"))))
    stages = {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}
    assert stages == {
        "teacher_pairs",
        "subset_50k",
        "train_lines",
        "train_baseline",
        "distill_progressive",
        "distill_consistency",
        "evaluate",
    }
    assert f"features: inception-v3-compat ({params['evaluate']['feature_weights']})" in log
    metrics = json.loads((r / "metrics" / "evaluate.json").read_text())
    assert list(metrics) == [
        "teacher",
        "teacher_ddim32",
        "lines_1step",
        "lines_2step",
        "baseline_1step",
        "pd_4step",
        "pd_2step",
        "pd_1step",
        "cd_1step",
        "cd_2step",
        "cd_lines_1step",
        "cd_lines_2step",
    ]
    for name, m in metrics.items():
        for k in ("fid", "fid_data", "kid_data", "precision_data", "recall_data", "fid_data_se", "mse", "ms_per_image"):
            assert math.isfinite(m[k]), (name, k, m)
    assert metrics["teacher"]["nfe"] == 2 and metrics["teacher_ddim32"]["nfe"] == 32
    assert sorted(p.name for p in (r / "models" / "pd").iterdir()) == ["16step", "1step", "2step", "4step", "8step"]
    # The teacher's scheduler_config.json is the hub's, without prediction_type: every student still
    # reloads as the epsilon_bounded reading it trained in.
    for folder in (r / "models" / "pd").iterdir():
        assert json.loads((folder / "lines_model.json").read_text())["prediction_type"] == "epsilon_bounded"
        assert json.loads((folder / "scheduler_config.json").read_text())["prediction_type"] == "epsilon_bounded"
    student = json.loads((r / "models" / "lines" / "config.json").read_text())
    assert student["block_out_channels"] == [64, 128, 256]
