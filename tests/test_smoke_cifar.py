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
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from conftest import ROOT
from lines_model.profile import merge
from tools.random_teacher import save_random_cifar_teacher

pytestmark = pytest.mark.smoke_cifar


def test_cifar10_profile_runs_as_a_pipeline(tmp_path):
    from lines_model.extractors import save_random_inception_weights

    profile = yaml.safe_load((ROOT / "profiles" / "cifar10.yaml").read_text())
    assert profile["evaluate"]["feature_extractor"] == "inception-v3-compat"
    assert profile["evaluate"]["data_reference"] == "data/cifar10-train.npy" and profile["evaluate"]["data_count"] == 50000
    params = merge(merge(yaml.safe_load((ROOT / "params.yaml").read_text()), profile), yaml.safe_load((ROOT / "tests" / "cifar10_micro.yaml").read_text()))

    r = tmp_path / "cifar"
    for name in ("lines_model", "stages"):
        shutil.copytree(ROOT / name, r / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, r)
    shutil.copytree(ROOT / "teachers" / "shapes-features", r / "teachers" / "shapes-features")
    save_random_cifar_teacher(r / params["teacher"]["model"])
    save_random_inception_weights(r / params["evaluate"]["feature_weights"])
    fake_cifar = np.random.default_rng(0).integers(0, 256, size=(8, 3, 32, 32), dtype=np.uint8)
    (r / "data").mkdir()
    np.save(r / params["evaluate"]["data_reference"], fake_cifar)
    (r / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def sh(*cmd):
        p = subprocess.run(cmd, cwd=r, capture_output=True, text=True)
        assert p.returncode == 0, f"{' '.join(cmd)}:\n{(p.stdout + p.stderr)[-5000:]}"
        return p.stdout + p.stderr

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    sh("git", "add", "-A")
    sh("git", "-c", "user.name=smoke", "-c", "user.email=smoke@example.com", "commit", "-qm", "CIFAR-10 micro profile")
    log = sh("dvc", "repro")
    print("\n".join(line for line in log.splitlines() if line.startswith(("Running stage", "features:", "evaluate:"))))
    stages = {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}
    assert stages == {"teacher_pairs", "subset_50k", "train_lines", "train_baseline", "distill_progressive", "evaluate"}
    assert f"features: inception-v3-compat ({params['evaluate']['feature_weights']})" in log
    metrics = json.loads((r / "metrics" / "evaluate.json").read_text())
    assert list(metrics) == ["teacher", "teacher_ddim32", "lines_1step", "lines_2step", "baseline_1step", "pd_4step", "pd_2step", "pd_1step"]
    for name, m in metrics.items():
        for k in ("fid", "fid_data", "kid_data", "precision_data", "recall_data", "fid_data_se", "mse", "ms_per_image"):
            assert math.isfinite(m[k]), (name, k, m)
    assert metrics["teacher"]["nfe"] == 2 and metrics["teacher_ddim32"]["nfe"] == 32
    assert sorted(p.name for p in (r / "models" / "pd").iterdir()) == ["16step", "1step", "2step", "4step", "8step"]
    student = json.loads((r / "models" / "lines" / "config.json").read_text())
    assert student["block_out_channels"] == [64, 128, 256]
