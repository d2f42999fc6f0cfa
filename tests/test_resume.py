"""A killed training resumes only state that the same settings, precision and code would make again.

The stage runs from a copy of the package (`python -m stages.train_lines` in a work folder holding
lines_model/ and stages/), so a test can edit a module the way a developer would.
"""

from __future__ import annotations

import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, make_tiny_teacher, micro_params
from test_interrupt import ENV

PARAMS = micro_params(
    pairs={"count": 400, "shard_size": 50},
    train_lines={"epochs": 2, "batch_size": 16, "checkpoint_every": 3},
    evaluate={"feature_dir": str(ROOT / "teachers" / "shapes-features")},
)


def _run(d: Path, stage: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=d, env=ENV, capture_output=True, text=True)


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    """A work folder whose train_lines was SIGKILLed after its first checkpoint."""
    d = tmp_path_factory.mktemp("resume") / "killed"
    for name in ("lines_model", "stages"):
        shutil.copytree(ROOT / name, d / name, ignore=shutil.ignore_patterns("__pycache__"))
    make_tiny_teacher(d / "teachers" / "tiny")
    (d / "params.yaml").write_text(PARAMS)
    for stage in ("teacher_pairs", "subset"):
        r = _run(d, stage)
        assert r.returncode == 0, r.stderr[-2000:]
    states = lambda: list((d / "scratch").glob("lines-*/state.json"))  # noqa: E731
    p = subprocess.Popen(
        [sys.executable, "-m", "stages.train_lines"],
        cwd=d,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.time()
    while not states() and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    assert p.poll() is None, "train_lines finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert states() and not (d / "models" / "lines").exists()
    return d


def _rerun_after(killed: Path, tmp_path: Path, change) -> str:
    d = tmp_path / "w"
    shutil.copytree(killed, d)
    change(d)
    r = _run(d, "train_lines")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (d / "models" / "lines" / "diffusion_pytorch_model.safetensors").exists()
    return r.stdout + r.stderr


def _assert_fresh(log: str, tmp_path: Path) -> None:
    # A fresh start leaves the killed run's checkpoint where it was (a resume removes it when done).
    assert "resuming" not in log
    assert list((tmp_path / "w" / "scratch").glob("lines-*/state.json"))


def _edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


def _assert_resumed(log: str, tmp_path: Path) -> None:
    assert "lines: resuming at step" in log
    assert not list((tmp_path / "w" / "scratch").glob("lines-*"))


def test_an_edit_to_a_module_training_does_not_run_still_resumes(killed, tmp_path):
    # (test_interrupt.py shows that an untouched rerun resumes to the same student)
    _assert_resumed(_rerun_after(killed, tmp_path, lambda d: _edit(d / "lines_model" / "fidelity.py")), tmp_path)


def test_an_edit_to_a_module_training_runs_starts_fresh(killed, tmp_path):
    _assert_fresh(_rerun_after(killed, tmp_path, lambda d: _edit(d / "lines_model" / "losses.py")), tmp_path)


def test_another_training_precision_starts_fresh(killed, tmp_path):
    def to_fp32(d: Path) -> None:
        p = d / "params.yaml"
        text = p.read_text()
        assert "mixed_precision: bf16\n" in text
        p.write_text(text.replace("mixed_precision: bf16\n", "mixed_precision: 'no'\n"))

    _assert_fresh(_rerun_after(killed, tmp_path, to_fp32), tmp_path)
