"""python -m lines_model.sample: any student folder, with only what the folder holds."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, shipped_params
from lines_model.sample import main
from lines_model.students import init_student, save_student
from lines_model.teachers import load_teacher


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_teacher):
    root = tmp_path_factory.mktemp("students")
    teacher = load_teacher(str(tiny_teacher))
    student_cfg = shipped_params().student
    lines = init_student(dataclasses.replace(student_cfg, init="teacher"), (3, 16, 16), teacher)
    save_student(lines, root / "lines", {"kind": "lines"})
    save_student(lines, root / "baseline", {"kind": "baseline"})
    save_student(teacher.unet, root / "pd" / "2step", {"kind": "progressive", "steps": 2}, teacher.scheduler_config)
    return root


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_lines_grid_is_deterministic_and_sized(folders, tmp_path):
    main([str(folders / "lines"), "-n", "10", "--seed", "3", "-o", str(tmp_path / "a.png"), "--nrow", "5"])
    main([str(folders / "lines"), "-n", "10", "--seed", "3", "-o", str(tmp_path / "b.png"), "--nrow", "5"])
    main([str(folders / "lines"), "-n", "10", "--seed", "4", "-o", str(tmp_path / "c.png"), "--nrow", "5"])
    a = _png(tmp_path / "a.png")
    # save_grid: 2 rows x 5 columns of 16x16 images, 1-pixel padding, enlarged 4x.
    assert a.shape == ((2 * 17 + 1) * 4, (5 * 17 + 1) * 4, 3)
    assert np.array_equal(a, _png(tmp_path / "b.png")) and not np.array_equal(a, _png(tmp_path / "c.png"))


def test_lines_steps_change_the_images_and_single_files(folders, tmp_path):
    main([str(folders / "lines"), "-n", "3", "-o", str(tmp_path / "one"), "--single"])
    main([str(folders / "lines"), "-n", "3", "--steps", "2", "-o", str(tmp_path / "two"), "--single"])
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert _png(tmp_path / "one" / "00000.png").shape == (64, 64, 3)
    assert not np.array_equal(_png(tmp_path / "one" / "00000.png"), _png(tmp_path / "two" / "00000.png"))


def test_pd_student_samples_in_its_own_steps(folders, tmp_path):
    main([str(folders / "pd" / "2step"), "-n", "4", "-o", str(tmp_path / "pd.png")])
    assert (tmp_path / "pd.png").stat().st_size > 100
    with pytest.raises(SystemExit) as e:
        main([str(folders / "pd" / "2step"), "-n", "4", "--steps", "1", "-o", str(tmp_path / "x.png")])
    assert e.value.code == 2


def test_errors_are_one_line_naming_the_problem(folders, tmp_path):
    r = subprocess.run([sys.executable, "-m", "lines_model.sample", str(folders / "baseline"), "--steps", "2", "-o", str(tmp_path / "x.png")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: --steps: {folders / 'baseline'} is a baseline student, trained at t = 0 only: it samples in 1 step, not 2"
    r = subprocess.run([sys.executable, "-m", "lines_model.sample", str(tmp_path), "-o", str(tmp_path / "x.png")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "lines_model.json: missing; not a student folder" in r.stderr
    assert not (tmp_path / "x.png").exists()
