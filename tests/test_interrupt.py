"""SIGKILL a real stage part-way, rerun it, and compare with an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, make_tiny_teacher, micro_params

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PARAMS = micro_params(
    pairs={"count": 400, "shard_size": 50},
    train_lines={"epochs": 6, "batch_size": 16, "checkpoint_every": 3},
    evaluate={"feature_dir": str(ROOT / "teachers" / "shapes-features")},  # checked by every stage before work
)


def _workdir(root: Path, name: str, teacher: Path) -> Path:
    d = root / name
    (d / "teachers").mkdir(parents=True)
    shutil.copytree(teacher, d / "teachers" / "tiny")
    (d / "params.yaml").write_text(PARAMS)
    return d


def _stage(d: Path, stage: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=d, env=ENV, capture_output=True, text=True
    )


def _kill_when(d: Path, stage: str, ready, timeout: float = 120) -> None:
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py")],
        cwd=d,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.time()
    while not ready() and p.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.05)
    assert p.poll() is None, f"{stage} finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("shard-")}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    teacher = make_tiny_teacher(root / "tiny")
    return root, teacher


def test_killed_teacher_pairs_resumes_to_identical_shards(dirs):
    root, teacher = dirs
    ref = _workdir(root, "pairs_ref", teacher)
    assert _stage(ref, "teacher_pairs").returncode == 0
    d = _workdir(root, "pairs_kill", teacher)
    # Shards in progress live in scratch/, never in the stage's output.
    done = lambda: list((d / "scratch").glob("pairs-*/*.sha256"))  # noqa: E731
    _kill_when(d, "teacher_pairs", lambda: len(done()) >= 2)
    assert 2 <= len(done()) < 8
    assert not (d / "data" / "pairs").exists()
    # Readers see no pairs at all until the rerun completes them.
    r = _stage(d, "subset")
    assert r.returncode == 2 and "data/pairs/manifest.json: missing; run the teacher_pairs stage first" in r.stderr
    assert _stage(d, "teacher_pairs").returncode == 0
    assert _shard_bytes(d / "data" / "pairs") == _shard_bytes(ref / "data" / "pairs")
    assert (d / "data" / "pairs" / "manifest.json").read_text() == (
        ref / "data" / "pairs" / "manifest.json"
    ).read_text()
    assert not list((d / "data" / "pairs").glob(".*.tmp"))
    assert not list((d / "scratch").glob("pairs-*")), "finished shards move into the output"


def test_killed_training_resumes_to_the_same_student(dirs):
    root, teacher = dirs
    ref = _workdir(root, "train_ref", teacher)
    for stage in ("teacher_pairs", "subset"):
        assert _stage(ref, stage).returncode == 0
    d = root / "train_kill"
    shutil.copytree(ref, d)
    r = _stage(ref, "train_lines")
    assert r.returncode == 0, r.stderr[-2000:]
    states = lambda: list((d / "scratch").glob("lines-*/state.json"))  # noqa: E731
    _kill_when(d, "train_lines", lambda: bool(states()))
    assert states() and not (d / "models" / "lines").exists()
    r = _stage(d, "train_lines")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list((d / "scratch").glob("lines-*")), "a finished run removes its checkpoint"
    a = load_file(ref / "models" / "lines" / "diffusion_pytorch_model.safetensors")
    b = load_file(d / "models" / "lines" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
