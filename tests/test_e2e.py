"""End to end: the real dvc commands on a micro profile in a temporary git repository."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import MICRO_PARAMS, ROOT, make_tiny_teacher

pytestmark = pytest.mark.e2e
SCHEMA = ["teacher", "lines_1step", "lines_2step", "baseline_1step", "pd_1step", "pd_2step"]
KEYS = ["nfe", "fid", "kid", "precision", "recall", "mse", "psnr", "ms_per_image", "speedup"]


def sh(cwd: Path, *cmd: str, check: bool = True) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    out = r.stdout + r.stderr
    if check and r.returncode:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{out[-4000:]}")
    return out


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("e2e")
    for name in ("lines_model", "stages"):
        shutil.copytree(ROOT / name, r / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", r)
    shutil.copytree(ROOT / "teachers" / "shapes-features", r / "teachers" / "shapes-features")
    make_tiny_teacher(r / "teachers" / "tiny")
    (r / "params.yaml").write_text(MICRO_PARAMS)
    (r / ".gitignore").write_text("/models/*.ckpt/\n__pycache__/\n")
    sh(r, "git", "init", "-q")
    sh(r, "git", "config", "user.email", "e2e@example.com")
    sh(r, "git", "config", "user.name", "e2e")
    sh(r, "dvc", "init", "-q")
    sh(r, "dvc", "config", "core.autostage", "true")
    sh(r, "git", "add", "-A")
    sh(r, "git", "commit", "-qm", "micro profile")
    return r


def test_repro_writes_every_metric(repo):
    out = sh(repo, "dvc", "repro")
    assert ran(out) == {"teacher_pairs", "subset_50k", "train_lines", "train_baseline", "distill_progressive", "evaluate"}
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    assert list(metrics) == SCHEMA
    for name in SCHEMA:
        assert list(metrics[name]) == KEYS
        assert all(math.isfinite(v) for v in metrics[name].values()), (name, metrics[name])
    assert metrics["teacher"]["speedup"] == 1.0
    assert metrics["lines_2step"]["nfe"] == 2 and metrics["teacher"]["nfe"] == 4
    for png in ("comparison.png", "trajectory.png", "fid_speedup.png", "samples/lines_1step.png"):
        assert (repo / "plots" / png).stat().st_size > 1000
    assert (repo / "models" / "lines" / "diffusion_pytorch_model.safetensors").exists()
    assert (repo / "dvclive" / "lines" / "plots" / "metrics" / "train" / "loss.tsv").exists()
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "repro")


def test_nothing_to_do_after_repro(repo):
    assert "up to date" in sh(repo, "dvc", "status")
    assert ran(sh(repo, "dvc", "repro")) == set()


def test_param_change_reruns_only_downstream(repo):
    out = sh(repo, "dvc", "exp", "run", "-S", "train_lines.lr=0.002")
    assert ran(out) == {"train_lines", "evaluate"}
    # pairs.count feeds everything downstream of teacher_pairs.
    out = sh(repo, "dvc", "exp", "run", "-S", "pairs.count=300")
    assert ran(out) == {"teacher_pairs", "subset_50k", "train_lines", "train_baseline", "distill_progressive", "evaluate"}


def test_metrics_and_plots_diff_between_commits(repo):
    exps = sh(repo, "dvc", "exp", "show", "--csv")
    assert "0.002" in exps
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train_baseline"]["lr"] = 0.003
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert ran(sh(repo, "dvc", "repro")) == {"train_baseline", "evaluate"}
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline lr 0.003")
    diff = sh(repo, "dvc", "metrics", "diff", "HEAD~1", "--json")
    changed = json.loads(diff)["metrics/evaluate.json"]
    assert "baseline_1step.mse" in changed
    assert "teacher.mse" not in changed or changed["teacher.mse"].get("diff", 0) == 0
    out = sh(repo, "dvc", "plots", "diff", "HEAD~1", "-o", "plots_diff", "--json")
    assert (repo / "plots_diff").exists() or "comparison.png" in out
