"""Typed params: defaults, rejection of bad keys with the key's name, and the stage CLI's exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, micro_params
from lines_model.config import load_params, parse_params, to_dict
from lines_model.errors import ConfigError
from lines_model.profile import merge

SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())


def with_(diff: dict, base: dict = SHIPPED) -> dict:
    """The shipped params with `diff` merged in (unlike profile.merge, new keys pass through)."""
    out = dict(base)
    for k, v in diff.items():
        out[k] = with_(v, base[k]) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def test_shipped_params_parse_and_round_trip():
    p = load_params(ROOT / "params.yaml")
    assert p.teacher.model == "teachers/shapes-ddpm"
    assert p.pairs.steps == SHIPPED["pairs"]["steps"] and p.train_lines.epochs == SHIPPED["train_lines"]["epochs"]
    assert parse_params(to_dict(p)) == p
    assert to_dict(p) == {
        k: {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in v.items()} for k, v in SHIPPED.items()
    }


def test_params_yaml_is_the_only_source_of_values():
    # The dataclasses hold no defaults: a missing key is an error naming it, never a silent default.
    with pytest.raises(ConfigError, match=r"teacher: missing required key"):
        parse_params({})
    partial = {k: v for k, v in SHIPPED.items()}
    partial["train_lines"] = {k: v for k, v in SHIPPED["train_lines"].items() if k != "epochs"}
    with pytest.raises(ConfigError, match=r"train_lines\.epochs: missing required key"):
        parse_params(partial)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"pairs": {"cont": 3}}, r"pairs\.cont: unknown key; allowed keys are batch_size, count"),
        ({"paris": {}}, r"paris: unknown key"),
        ({"pairs": {"count": -5}}, r"pairs\.count: -5 is below the minimum 1"),
        ({"pairs": {"count": "many"}}, r"pairs\.count: expected an integer, got str"),
        ({"pairs": {"count": 2.5}}, r"pairs\.count: expected an integer"),
        (
            {"pairs": {"sampler": "euler"}},
            r"pairs\.sampler: 'euler' is not allowed; expected one of 'ddim', 'dpmsolver\+\+'",
        ),
        ({"train_lines": {"lr": "fast"}}, r"train_lines\.lr: expected a number"),
        ({"train_lines": {"loss": "l2"}}, r"train_lines\.loss: 'l2' is not allowed"),
        ({"runtime": {"compile": "yes"}}, r"runtime\.compile: expected true or false"),
        ({"subset": {"count": 10**6}}, r"subset\.count: 1000000 is larger than pairs\.count=4000"),
        ({"pd": {"start_steps": 12}}, r"pd\.start_steps: 12 must be a power-of-two multiple"),
        ({"evaluate": {"pd_steps": [3]}}, r"evaluate\.pd_steps: 3 is not a step count"),
        ({"train_baseline": {"t_dist": "uniform"}}, r"train_baseline\.t_dist: unknown key"),
        ({"student": {"init": "copy"}}, r"student\.init: 'copy' is not allowed; expected one of 'teacher', 'random'"),
        ({"evaluate": {"feature_extractor": "clip"}}, r"evaluate\.feature_extractor: 'clip' is not allowed"),
        ({"evaluate": {"trajectory_ts": [0.5, 1.5]}}, r"evaluate\.trajectory_ts: times must lie in \[0, 1\]"),
        ({"pairs": {"batch_size": 300}}, r"pairs\.batch_size: 300 must divide pairs\.shard_size=1000"),
        ({"student": {"down_block_types": ["DownBlock2D"]}}, r"student\.down_block_types: needs 3 entries"),
        (
            {"evaluate": {"count": 900}},
            r"evaluate\.count \+ evaluate\.reference = 1400 is larger than pairs\.heldout=1000",
        ),
        ({"ema": 1}, r"ema: unknown key"),
    ],
)
def test_bad_params_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(with_(data))


def test_a_renamed_key_names_its_new_name():
    params = with_({})
    params["subset"] = {"size": 1000, "seed": 0}
    with pytest.raises(ConfigError, match=r"^subset\.size: renamed to subset\.count; use subset\.count$"):
        parse_params(params)
    with pytest.raises(ConfigError, match=r"^subset\.size: renamed to subset\.count; use subset\.count$"):
        merge(SHIPPED, {"subset": {"size": 1000}})  # in a profile too


# DVC's run-cache leaves every key of these names out of its key, at any depth, params included
# (treeverse/dvc#10296): a new value of such a key restores the outputs of the previous run.
RUN_CACHE_BLIND = {"size", "nfiles"}


def _keys(data, where: str = ""):
    """Every dotted key of a parsed YAML document, mappings inside lists included."""
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{where}.{k}" if where else str(k)
            yield key
            yield from _keys(v, key)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _keys(v, f"{where}[{i}]")


def _profiles() -> dict[str, dict]:
    """The default params and every profile merged over it (the tests' micro profiles over theirs)."""
    read = lambda path: yaml.safe_load(path.read_text())  # noqa: E731
    out = {"params.yaml": SHIPPED}
    for path in sorted((ROOT / "profiles").glob("*.yaml")):
        out[path.name] = merge(SHIPPED, read(path))
    out["cifar10_micro.yaml"] = merge(out["cifar10.yaml"], read(ROOT / "tests" / "cifar10_micro.yaml"))
    out["micro"] = yaml.safe_load(micro_params())
    return out


@pytest.mark.parametrize("name", list(_profiles()))
def test_no_params_key_has_a_name_dvcs_run_cache_ignores(name):
    params = _profiles()[name]
    parse_params(params)
    blind = [k for k in _keys(params) if k.rsplit(".", 1)[-1].split("[")[0] in RUN_CACHE_BLIND]
    assert not blind, f"{name}: DVC's run-cache ignores {blind}; rename them (and list the old names in RENAMED)"


def test_the_params_walk_sees_keys_at_any_depth():
    assert {"a.size", "b.c[1].nfiles"} <= set(_keys({"a": {"size": 1}, "b": {"c": [{}, {"nfiles": 2}]}}))


def test_params_are_read_as_dvc_reads_them(tmp_path):
    # What DVC records in dvc.lock and what the stage computes with must be the same values.
    from dvc.utils.hydra import apply_overrides
    from dvc.utils.serialize import load_yaml

    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    apply_overrides(path, ["runtime.mixed_precision=no", "pairs.seed=7"])  # what `dvc exp run -S` does
    assert re.search(r"^  mixed_precision: no\s", path.read_text(), re.M)  # unquoted: false in PyYAML's YAML 1.1
    assert load_params(path).runtime.mixed_precision == "no"
    path.write_text(path.read_text().replace("seed: 7\n", "seed: 010\n"))  # octal 8 in YAML 1.1
    assert load_params(path).pairs.seed == load_yaml(path)["pairs"]["seed"] == 10


def test_yaml_floats_written_as_strings_are_accepted():
    assert parse_params(with_({"train_lines": {"lr": "1e-4"}})).train_lines.lr == 1e-4


def _run_stage(cwd: Path, stage: str, timeout: float | None = None):
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


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
    from lines_model.students import build_unet

    cfg = load_params(ROOT / "params.yaml").student
    with pytest.raises(ConfigError, match=r"student\.block_out_channels: 3 levels .* 6x6 image"):
        build_unet(cfg, (3, 6, 6))
    assert build_unet(cfg, (3, 16, 16)).config.sample_size == 16


def test_teacher_pairs_with_a_teacher_folder_without_weights(tmp_path):
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "config.json").write_text('{"_class_name": "UNet2DModel", "sample_size": 16}')
    (tmp_path / "teacher" / "scheduler_config.json").write_text(
        (ROOT / "teachers" / "shapes-ddpm" / "scheduler_config.json").read_text()
    )
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["teacher"]["model"] = "teacher"
    params["evaluate"]["feature_dir"] = str(ROOT / "teachers" / "shapes-features")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data" / "pairs").mkdir(parents=True)
    (tmp_path / "data" / "pairs" / "manifest.json").write_text("{}")
    r = _run_stage(tmp_path, "teacher_pairs")
    assert r.returncode == 2
    assert "no weights: expected diffusion_pytorch_model.safetensors" in r.stderr
    assert (tmp_path / "data" / "pairs" / "manifest.json").read_text() == "{}"


@pytest.mark.parametrize(
    "diff, message",
    [
        ({"pairs": {"steps": 2000}}, r"pairs\.steps: 2000 steps exceed the teacher's 1000 training timesteps"),
        ({"pairs": {"lambda_min": -20.0}}, r"pairs\.lambda_min: -20\.0 lies outside the teacher's log-SNR range"),
        (
            {
                "student": {
                    "init": "random",
                    "block_out_channels": [16, 16, 16, 16, 16, 16],
                    "down_block_types": ["DownBlock2D"] * 6,
                    "up_block_types": ["UpBlock2D"] * 6,
                }
            },
            r"student\.block_out_channels: 6 levels",
        ),
        ({"evaluate": {"feature_weights": "nowhere.pth"}}, r"evaluate\.feature_weights: file nowhere\.pth not found"),
        ({"evaluate": {"data_reference": "cifar.npy"}}, r"evaluate\.data_reference: file cifar\.npy not found"),
    ],
)
def test_values_that_only_the_teacher_or_the_disk_can_refuse(tmp_path, diff, message, monkeypatch):
    from lines_model import preflight

    params = with_(diff)
    params["teacher"]["model"] = str(ROOT / "teachers" / "shapes-ddpm")
    params["evaluate"]["feature_dir"] = str(ROOT / "teachers" / "shapes-features")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        preflight.check(parse_params(params))


@pytest.mark.parametrize(
    "diff, message",
    [
        ({"pd": {"start_steps": 2048}}, r"pd\.start_steps: 2048 steps exceed the teacher's 1000 training timesteps"),
        ({"cd": {"sigma_max": 1.0e6}}, r"cd\.sigma_max: 1000000\.0 lies outside the teacher's noise levels"),
        ({"cd": {"sampling_sigmas": [500.0]}}, r"cd\.sampling_sigmas: 500\.0 must lie between"),
        ({"cd": {"init": ["teacher", "baseline"]}}, r"cd\.init: 'baseline' is not one of teacher, lines"),
    ],
)
def test_a_methods_own_checks_refuse_what_the_teacher_cannot_do(diff, message):
    from lines_model.methods import registry
    from lines_model.teachers import read_configs

    with pytest.raises(ConfigError, match=message):
        registry.check(parse_params(with_(diff)), *read_configs(str(ROOT / "teachers" / "shapes-ddpm")))


def test_a_refused_value_stops_the_first_and_the_last_stage_before_work(tmp_path):
    params = with_({"pairs": {"steps": 2000}})
    params["teacher"]["model"] = str(ROOT / "teachers" / "shapes-ddpm")
    params["evaluate"]["feature_dir"] = str(ROOT / "teachers" / "shapes-features")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("teacher_pairs", "evaluate"):
        r = _run_stage(tmp_path, stage, timeout=120)  # a check that let work start would run for minutes
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip() == "error: pairs.steps: 2000 steps exceed the teacher's 1000 training timesteps", (
            r.stderr
        )
    assert not (tmp_path / "data").exists() and not (tmp_path / "scratch").exists()


@pytest.mark.parametrize(
    "evaluate, message",
    [
        (
            {"se_replicates": 3},
            "error: params.yaml: evaluate.se_replicates: need at least 2 pairs of complementary halves "
            "(4 replicates), got 3",
        ),
        (
            {"count": 600, "reference": 400, "prc_neighborhood": 250},
            "error: params.yaml: evaluate.prc_neighborhood: the errors use halves of 200 items (half of the "
            "smaller of 600 "
            "generated and 400 reference items), so it must lie in [1, 199], got 250 (evaluate.count: 600)",
        ),
    ],
)
def test_what_the_standard_errors_cannot_use_stops_evaluate_before_any_generator_samples(tmp_path, evaluate, message):
    # The params check calls the rule the errors enforce (halves.check): it cannot accept what they refuse.
    params = with_({"evaluate": evaluate})
    params["teacher"]["model"] = str(ROOT / "teachers" / "shapes-ddpm")
    params["evaluate"]["feature_dir"] = str(ROOT / "teachers" / "shapes-features")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    r = _run_stage(tmp_path, "evaluate", timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == message, r.stderr
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()
