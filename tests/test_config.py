"""Typed params: defaults, rejection of bad keys with the key's name, and the stage CLI's exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from lines_model.config import ConfigError, Params, load_params, parse_params, to_dict


def test_shipped_params_parse_and_round_trip():
    p = load_params(ROOT / "params.yaml")
    assert p.teacher.model == "teachers/shapes-ddpm"
    assert parse_params(to_dict(p)) == p
    assert parse_params({}) == Params()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"pairs": {"cont": 3}}, r"pairs\.cont: unknown key; allowed keys are batch_size, count"),
        ({"paris": {}}, r"paris: unknown key"),
        ({"pairs": {"count": -5}}, r"pairs\.count: -5 is below the minimum 1"),
        ({"pairs": {"count": "many"}}, r"pairs\.count: expected an integer, got str"),
        ({"pairs": {"count": 2.5}}, r"pairs\.count: expected an integer"),
        ({"pairs": {"sampler": "euler"}}, r"pairs\.sampler: 'euler' is not allowed; expected one of 'ddim', 'dpmsolver\+\+'"),
        ({"train_lines": {"lr": "fast"}}, r"train_lines\.lr: expected a number"),
        ({"train_lines": {"loss": "l2"}}, r"train_lines\.loss: 'l2' is not allowed"),
        ({"runtime": {"compile": "yes"}}, r"runtime\.compile: expected true or false"),
        ({"subset": {"size": 10**6}}, r"subset\.size: 1000000 is larger than pairs\.count=4000"),
        ({"pd": {"start_steps": 12}}, r"pd\.start_steps: 12 must be a power-of-two multiple"),
        ({"pd": {"keep_steps": [3]}}, r"pd\.keep_steps: 3 is not a step count"),
        ({"pairs": {"batch_size": 300}}, r"pairs\.batch_size: 300 must divide pairs\.shard_size=1000"),
        ({"student": {"down_block_types": ["DownBlock2D"]}}, r"student\.down_block_types: needs 3 entries"),
        ({"evaluate": {"count": 900}}, r"evaluate\.count \+ evaluate\.reference = 1400 is larger than pairs\.heldout=1000"),
        ({"ema": 1}, r"ema: unknown key"),
    ],
)
def test_bad_params_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(data)


def test_yaml_floats_written_as_strings_are_accepted():
    assert parse_params({"train_lines": {"lr": "1e-4"}}).train_lines.lr == 1e-4


def _run_stage(cwd: Path, stage: str):
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=cwd, capture_output=True, text=True)


def test_stage_rejects_bad_params_before_touching_outputs(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["subset"]["sise"] = 10
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "subset.json").write_text('{"earlier": true}')
    r = _run_stage(tmp_path, "subset")
    assert r.returncode == 2
    assert "subset.sise: unknown key" in r.stderr
    assert (tmp_path / "data" / "subset.json").read_text() == '{"earlier": true}'


def test_stage_reports_missing_inputs(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    r = _run_stage(tmp_path, "subset")
    assert r.returncode == 2
    assert "data/pairs/manifest.json: missing; run the teacher_pairs stage first" in r.stderr


def test_missing_params_file(tmp_path):
    r = _run_stage(tmp_path, "subset")
    assert r.returncode == 2 and "params.yaml: params file not found" in r.stderr


def test_student_that_cannot_take_the_teacher_image_size():
    from lines_model.config import StudentCfg
    from lines_model.students import build_student

    with pytest.raises(ConfigError, match=r"student\.block_out_channels: 3 levels .* 6x6 image"):
        build_student(StudentCfg(), (3, 6, 6))
    assert build_student(StudentCfg(), (3, 16, 16)).config.sample_size == 16


def test_teacher_pairs_with_a_teacher_folder_without_weights(tmp_path):
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["teacher"]["model"] = "teacher"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data" / "pairs").mkdir(parents=True)
    (tmp_path / "data" / "pairs" / "manifest.json").write_text("{}")
    r = _run_stage(tmp_path, "teacher_pairs")
    assert r.returncode == 2
    assert "no weights: expected diffusion_pytorch_model.safetensors" in r.stderr
    assert (tmp_path / "data" / "pairs" / "manifest.json").read_text() == "{}"
