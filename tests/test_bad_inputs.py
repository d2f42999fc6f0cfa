"""Every bad value or damaged file the pipeline or the sample CLI reads ends in one line naming it.

One test per class of input: a non-finite number in params; a file that exists but is not what it
should be (broken JSON, damaged weights) for each kind of folder read (teacher, student, feature net);
and, through the real entry points, exit code 2 with one line and no traceback.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, make_tiny_teacher, micro_params, shipped_params
from lines_model import features, preflight, teachers
from lines_model.config import parse_params
from lines_model.errors import ConfigError
from lines_model.errors import InputError
from lines_model.students import init_student, load_pd_student, load_student, save_student

SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "inf", "-Infinity"])
def test_a_non_finite_number_is_refused_naming_the_key(value):
    data = yaml.safe_load(yaml.safe_dump(SHIPPED))
    data["train_lines"]["lr"] = value
    with pytest.raises(ConfigError, match=r"^train_lines\.lr: expected a finite number, got "):
        parse_params(data)


def _break_json(path: Path) -> None:
    path.write_text('{"_class_name": "UNet2DModel", ')  # cut short


def _break_weights(path: Path) -> None:
    path.write_bytes(b"\x00" * 64)


@pytest.fixture
def folders(tmp_path, tiny_teacher):
    teacher_dir = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher_dir)
    teacher = teachers.load_teacher(str(teacher_dir))
    student = init_student(dataclasses.replace(shipped_params().student, init="teacher"), (3, 16, 16), teacher)
    save_student(student, tmp_path / "lines", {"kind": "lines"})
    save_student(teacher.unet, tmp_path / "pd" / "2step", {"kind": "progressive", "steps": 2}, teacher.scheduler_config)
    shutil.copytree(ROOT / "teachers" / "shapes-features", tmp_path / "features")
    return tmp_path


# (folder, file, how it is damaged, the call that reads it)
CASES = [
    ("teacher", "config.json", _break_json, lambda d: teachers.read_configs(str(d / "teacher"))),
    ("teacher", "scheduler_config.json", _break_json, lambda d: teachers.load_teacher(str(d / "teacher"))),
    (
        "teacher",
        "diffusion_pytorch_model.safetensors",
        _break_weights,
        lambda d: teachers.load_teacher(str(d / "teacher")),
    ),
    ("lines", "lines_model.json", _break_json, lambda d: load_student(d / "lines")),
    ("lines", "config.json", _break_json, lambda d: load_student(d / "lines")),
    ("lines", "scheduler_config.json", _break_json, lambda d: load_student(d / "lines")),
    ("lines", "diffusion_pytorch_model.safetensors", _break_weights, lambda d: load_student(d / "lines")),
    ("pd/2step", "scheduler_config.json", _break_json, lambda d: load_pd_student(d / "pd" / "2step")),
    ("pd/2step", "diffusion_pytorch_model.safetensors", _break_weights, lambda d: load_pd_student(d / "pd" / "2step")),
    ("features", "config.json", _break_json, lambda d: features.load_feature_net(d / "features")),
    ("features", features.WEIGHTS_FILE, _break_weights, lambda d: features.load_feature_net(d / "features")),
]


@pytest.mark.parametrize("folder, name, damage, read", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_a_damaged_file_is_refused_naming_the_file(folders, folder, name, damage, read):
    path = folders / folder / name
    read(folders)  # intact: reads
    damage(path)
    with pytest.raises(InputError) as e:
        read(folders)
    assert str(e.value).startswith(str(path)), str(e.value)
    assert "\n" not in str(e.value)


def test_a_feature_config_without_its_image_size_stops_the_preflight(folders, tmp_path):
    (folders / "features" / "config.json").write_text("{}")
    p = parse_params(
        yaml.safe_load(
            micro_params(
                teacher={"model": str(folders / "teacher")}, evaluate={"feature_dir": str(folders / "features")}
            )
        )
    )
    with pytest.raises(InputError, match=r"config\.json"):
        preflight.check(p)


def _one_line_exit_2(r: subprocess.CompletedProcess, names: str) -> None:
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "sys.meta_path" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], r.stderr


def test_entry_points_refuse_bad_inputs_with_one_line(folders, tmp_path):
    # A stage: a non-finite number, then a teacher whose config is broken JSON.
    work = tmp_path / "work"
    work.mkdir()
    make_tiny_teacher(work / "teachers" / "tiny")
    params = yaml.safe_load(micro_params())
    params["pairs"]["lambda_min"] = float("nan")
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    run = lambda *cmd: subprocess.run([sys.executable, *cmd], cwd=work, capture_output=True, text=True)  # noqa: E731
    _one_line_exit_2(run(str(ROOT / "stages" / "teacher_pairs.py")), "pairs.lambda_min: expected a finite number")
    (work / "params.yaml").write_text(micro_params())
    _break_json(work / "teachers" / "tiny" / "config.json")
    _one_line_exit_2(run(str(ROOT / "stages" / "teacher_pairs.py")), "teachers/tiny/config.json: not valid JSON")
    # The sample CLI on a damaged student folder.
    _break_weights(folders / "lines" / "diffusion_pytorch_model.safetensors")
    out = str(tmp_path / "x.png")
    _one_line_exit_2(
        run("-m", "lines_model.sample", str(folders / "lines"), "-n", "2", "-o", out),
        "diffusion_pytorch_model.safetensors",
    )
    _one_line_exit_2(
        run("-m", "lines_model.sample", str(tmp_path / "nowhere"), "-n", "2", "-o", out), "nowhere: not a folder"
    )


# The command-line usages that are wrong rather than damaged: (argv of `python -m lines_model`, the start of
# the line it must print). {lines} is a student folder, {teacher} a teacher folder, {tmp} the test's folder,
# which holds `afile` (a file), `adir` and `adir.png` (folders) and uint8 image arrays of 1, 2 and 40 images.
USAGES = [
    (["sample", "{lines}", "--seed", "-1", "-o", "{tmp}/a.png"], "error: --seed: must be at least 0, got -1"),
    (
        ["sample", "{lines}", "-o", "/proc/a.png"],
        "error: --out: /proc/a.png cannot be written: /proc takes no new file",
    ),
    (
        ["sample", "{lines}", "-o", "{tmp}/afile/x.png"],
        "error: --out: {tmp}/afile is a file, so {tmp}/afile/x.png cannot be written",
    ),
    (
        ["sample", "{lines}", "-o", "{tmp}/afile/deeper/x.png"],
        "error: --out: {tmp}/afile is a file, so {tmp}/afile/deeper/x.png cannot be written",
    ),
    (["sample", "{lines}", "-o", "{tmp}/adir"], "error: --out: {tmp}/adir must end in .png (a PNG grid)"),
    (["sample", "{lines}", "-o", "{tmp}/adir.png/"], "error: --out: {tmp}/adir.png is a folder; expected a file name"),
    (
        ["sample", "{lines}", "--single", "-o", "{tmp}/grid.png"],
        "error: --out: {tmp}/grid.png names an image file; with --single it is the folder",
    ),
    (
        ["sample", "{lines}", "--single", "-o", "{tmp}/afile/x"],
        "error: --out: {tmp}/afile is a file, so {tmp}/afile/x cannot be written",
    ),
    (
        ["sample", "{teacher}", "--sampler", "ddim", "--order", "2", "-o", "{tmp}/a.png"],
        "error: --order: only for the dpmsolver++ sampler; the teacher samples with ddim here (--sampler ddim)",
    ),
    (
        ["sample", "{teacher}", "--sampler", "ddim", "--lambda-min", "-4", "-o", "{tmp}/a.png"],
        "error: --lambda-min: only for the dpmsolver++ sampler; the teacher samples with ddim here (--sampler ddim)",
    ),
    (
        ["sample", "{teacher}", "--lambda-min", "nan", "-o", "{tmp}/a.png"],
        "error: argument --lambda-min: expected a finite number or none",
    ),
    (
        ["sample", "{teacher}", "--params", "{tmp}/missing.yaml", "-o", "{tmp}/a.png"],
        "error: --params: {tmp}/missing.yaml: no such file",
    ),
    (
        ["sample", "{lines}", "--order", "2", "-o", "{tmp}/a.png"],
        "error: --order: only for a teacher; {lines} is not a teacher model folder",
    ),
    (
        ["sample", "{lines}", "--sampler", "ddim", "-o", "{tmp}/a.png"],
        "error: --sampler: only for a teacher; {lines} is not a teacher model folder",
    ),
    (
        ["score", "{tmp}/40.npy", "--reference", "{tmp}/40.npy", "-o", "{tmp}/adir"],
        "error: --out: {tmp}/adir is a folder; expected a file name",
    ),
    (
        ["score", "{tmp}/40.npy", "--reference", "{tmp}/40.npy", "-o", "{tmp}/afile/s.json"],
        "error: --out: {tmp}/afile is a file, so {tmp}/afile/s.json cannot be written",
    ),
    (
        ["score", "{tmp}/1.npy", "--reference", "{tmp}/40.npy"],
        "error: {tmp}/1.npy: 1 image, too few to score: the metrics need at least 8 in each set "
        "(precision and recall find each image's 3 nearest neighbours within halves of a set)",
    ),
    (
        ["score", "{tmp}/2.npy", "--reference", "{tmp}/40.npy"],
        "error: {tmp}/2.npy: 2 images, too few to score: the metrics need at least 8 in each set",
    ),
    (
        ["score", "{tmp}/40.npy", "--reference", "{tmp}/2.npy"],
        "error: --reference {tmp}/2.npy: 2 images, too few to score",
    ),
    (
        ["profile", "profiles/cifar10.yaml", "-o", "{tmp}/afile/p.yaml"],
        "error: --out: {tmp}/afile is a file, so {tmp}/afile/p.yaml cannot be written",
    ),
]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize("argv, message", USAGES, ids=[" ".join(u[0][:1] + u[0][2:]) for u in USAGES])
def test_a_wrong_command_line_is_one_line_exit_2_and_writes_nothing(
    folders, tiny_teacher, tmp_path, monkeypatch, capsys, argv, message
):
    import numpy as np

    from lines_model.__main__ import main

    if "/proc/" in " ".join(argv) and not Path("/proc/self").is_dir():
        pytest.skip("no /proc on this system")
    (tmp_path / "afile").write_bytes(b"x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir.png").mkdir()
    for n in (1, 2, 40):
        np.save(tmp_path / f"{n}.npy", np.random.default_rng(n).integers(0, 256, size=(n, 3, 16, 16), dtype=np.uint8))
    monkeypatch.chdir(ROOT)  # the shipped params.yaml: the teacher's sampler settings and score's metric settings
    names = {"{tmp}": str(tmp_path), "{lines}": str(folders / "lines"), "{teacher}": str(tiny_teacher)}

    def fill(text: str) -> str:
        for name, value in names.items():
            text = text.replace(name, value)
        return text

    before = _tree(tmp_path)
    with pytest.raises(SystemExit) as e:
        main([fill(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith(fill(message)), err
    assert "prc_neighborhood" not in err  # not a key the user set, so not what a refusal names
    assert _tree(tmp_path) == before  # nothing written, not even a folder on the way
