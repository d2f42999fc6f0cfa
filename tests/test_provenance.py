"""Every stage output records the params values it was made from, and the stage that reads it refuses
one made with other values, naming the key: what DVC's run-cache restored, silently, when a key it
leaves out of its key changed (treeverse/dvc#10296), must stop the pipeline.

The stale outputs here are written the way such a cache would restore them: records made from other
params, in the places the stages read."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, micro_params
from lines_model import provenance
from lines_model.config import parse_params
from lines_model.errors import ConfigError, InputError
from tools.stage_deps import pipeline_stages

STAGES = pipeline_stages()
# What each stage reads, as its script passes it to provenance (each a DVC dep of the stage).
READS = {
    "subset_50k": ["data/pairs"],
    "train_lines": ["data/pairs", "data/heldout", "data/subset.json"],
    "train_baseline": ["data/pairs", "data/heldout"],
    "distill_progressive": ["data/pairs"],
    "distill_consistency": ["data/pairs", "models/lines"],
    "evaluate": ["data/heldout", "models/lines", "models/baseline", "models/pd", "models/cd"],
    "compare": ["data/pairs", "data/heldout", "data/subset.json", "models/lines", "models/baseline"],
}


def _params(tiny_teacher: Path, **sections) -> dict:
    return yaml.safe_load(
        micro_params(
            teacher={"model": str(tiny_teacher)},
            evaluate={"feature_dir": str(ROOT / "teachers" / "shapes-features")},
            **sections,
        )
    )


def _with(data: dict, key: str, value) -> dict:
    """`data` (parsed params) with the dotted `key` set to `value`."""
    section, name = key.split(".")
    return {**data, section: {**data[section], name: value}}


def _write_outputs(d: Path, data: dict) -> None:
    """The records of every pipeline output, as the stages write them when run on `data`; only the
    records, which the stages check before they read anything else."""
    p = parse_params(data)

    def put(path: Path, made_from: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({provenance.RECORD: made_from}))

    for folder, key in (("pairs", "pairs.count"), ("heldout", "pairs.heldout")):
        put(d / "data" / folder / "manifest.json", provenance.made_from("teacher_pairs", p, keys=(key,)))
    put(d / "data" / "subset.json", provenance.made_from("subset_50k", p, [d / "data" / "pairs"]))
    inputs = {"lines": ["pairs", "heldout", "subset.json"], "baseline": ["pairs", "heldout"]}
    for kind, names in inputs.items():
        put(
            d / "models" / kind / "lines_model.json",
            provenance.made_from(
                f"train_{kind}", p, [d / "data" / n for n in names], keys=_recorded()[f"train_{kind}"]
            ),
        )
    for n in p.pd.round_steps():
        put(
            d / "models" / "pd" / f"{n}step" / "lines_model.json",
            provenance.made_from(
                "distill_progressive", p, [d / "data" / "pairs"], keys=_recorded()["distill_progressive"]
            ),
        )


def test_a_stage_refuses_a_stale_subset_in_one_line_and_writes_nothing(tmp_path, tiny_teacher):
    data = _params(tiny_teacher)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    _write_outputs(tmp_path, data)
    _write_outputs(tmp_path / "stale", _with(data, "subset.count", 150))
    (tmp_path / "stale" / "data" / "subset.json").replace(
        tmp_path / "data" / "subset.json"
    )  # what the run-cache restored
    r = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "train_lines.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr == (
        "error: subset.count: data/subset.json was made with 150, the params have 100 (a stale output); "
        "remake it: dvc repro --force --single-item subset_50k\n"
    )
    assert not (tmp_path / "training").exists() and not (tmp_path / "scratch").exists()


@pytest.mark.parametrize(
    "stage, stale, key, value, maker",
    [
        ("subset", "data/pairs", "pairs.seed", 3, "teacher_pairs"),
        ("train_baseline", "data/heldout", "pairs.heldout", 150, "teacher_pairs"),
        ("distill_progressive", "data/pairs", "pairs.steps", 8, "teacher_pairs"),
        ("evaluate", "models/lines", "train_lines.lr", 0.01, "train_lines"),
        ("evaluate", "models/baseline", "student.t_scale", 10.0, "train_baseline"),
        ("evaluate", "models/pd", "pd.iters_per_round", 5, "distill_progressive"),
        ("evaluate", "models/lines", "subset.count", 150, "subset_50k"),  # a student trained on a stale subset
    ],
)
def test_every_reader_refuses_an_output_made_with_other_params(
    tmp_path, tiny_teacher, monkeypatch, stage, stale, key, value, maker
):
    data = _params(tiny_teacher)
    _write_outputs(tmp_path, data)
    _write_outputs(tmp_path / "stale", _with(data, key, value))
    src = tmp_path / "stale"
    for f in (src / stale).rglob("*.json") if (src / stale).is_dir() else [src / stale]:
        f.replace(tmp_path / f.relative_to(src))  # what the run-cache restored
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(f"stages.{stage}").main
    with pytest.raises(
        ConfigError,
        match=rf"^{key}: {stale}/.*was made with {value!r}, the params have .* "
        rf"remake it: dvc repro --force --single-item {maker}$",
    ):
        main(parse_params(data))


def test_outputs_made_with_the_params_pass_and_a_setting_no_stage_reruns_for_changes_no_record(tmp_path, tiny_teacher):
    data = _params(tiny_teacher)
    _write_outputs(tmp_path, data)
    inputs = [
        tmp_path / p
        for p in ("data/pairs", "data/heldout", "data/subset.json", "models/lines", "models/baseline", "models/pd")
    ]
    made = provenance.check_inputs(parse_params(data), inputs)
    assert list(made) == ["teacher_pairs", "subset_50k", "train_lines", "train_baseline", "distill_progressive"]
    # What changes how an output is made but not what it holds is in no record: log and checkpoint
    # intervals (no stage reruns for them), the teacher's batch size (the pairs are remade the same),
    # an evaluation setting; nor is pairs.order under DDIM, which ignores it.
    for key, value in (
        ("train_lines.log_every", 1000),
        ("pd.checkpoint_every", 7),
        ("pairs.batch_size", 25),
        ("evaluate.count", 50),
    ):
        provenance.check_inputs(parse_params(_with(data, key, value)), inputs)
    # A new held-out count leaves the training pairs' record alone (and every stage that reads only them).
    provenance.check_inputs(parse_params(_with(data, "pairs.heldout", 130)), [tmp_path / "data" / "pairs"])
    with pytest.raises(ConfigError, match=r"^pairs\.heldout: "):
        provenance.check_inputs(parse_params(_with(data, "pairs.heldout", 130)), [tmp_path / "data" / "heldout"])
    ddim = _with(data, "pairs.sampler", "ddim")
    _write_outputs(tmp_path, ddim)
    provenance.check_inputs(parse_params(_with(ddim, "pairs.order", 3)), inputs)


def test_an_output_without_a_record_is_refused_and_a_missing_one_left_to_its_reader(tmp_path, tiny_teacher):
    params = parse_params(_params(tiny_teacher))
    (tmp_path / "subset.json").write_text('{"indices": [1, 2]}')
    with pytest.raises(InputError, match=r"^\S+subset\.json: records no params values it was made from"):
        provenance.check_inputs(params, [tmp_path / "subset.json"])
    assert provenance.check_inputs(params, [tmp_path / "nowhere.json", tmp_path / "no_folder"]) == {}


def _recorded() -> dict[str, tuple[str, ...]]:
    from lines_model.methods import registry

    return {**provenance.RECORDED, **{m.stage: m.recorded for m in registry.METHODS}}


@pytest.mark.parametrize("stage", sorted(_recorded()))
def test_an_output_records_only_params_its_stage_declares(stage):
    # A recorded key that DVC does not rerun the stage for would make a reader refuse an output that
    # is up to date. The training stages record exactly what they declare.
    declared = [p for p in STAGES[stage]["params"] if isinstance(p, str)]
    recorded = _recorded()[stage] + (("pairs.count", "pairs.heldout") if stage == "teacher_pairs" else ())
    for key in recorded:
        assert any(key == p or key.startswith(f"{p}.") for p in declared), (stage, key)
    if stage.startswith(("train_", "distill_")):
        assert sorted(recorded) == sorted(declared)


def _checked_paths(script: Path) -> list[str]:
    """The path lists a stage script hands to provenance.made_from / check_inputs: literals, a name
    bound to one, or expressions of the pipeline's Layout and the method registry."""
    from lines_model.methods import registry
    from lines_model.methods.base import Layout

    source = script.read_text()
    tree = ast.parse(source)
    lists = {
        n.targets[0].id: n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
    }
    env = {"layout": Layout(), "registry": registry}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("made_from", "check_inputs"):
            for arg in node.args:
                arg = lists.get(arg.id, arg) if isinstance(arg, ast.Name) else arg
                if isinstance(arg, ast.List):
                    out += [str(p) for p in eval(ast.get_source_segment(source, arg), env)]  # noqa: S307
    return out


@pytest.mark.parametrize("stage", sorted(READS))
def test_a_stage_checks_what_it_reads_and_only_its_deps(stage):
    # The records a stage merges into its own must come from its DVC deps: a changed input then
    # reruns the stage, which rewrites its record.
    assert _checked_paths(ROOT / "stages" / f"{'subset' if stage == 'subset_50k' else stage}.py") == READS[stage]
    deps = {str(d) for d in STAGES[stage]["deps"]}
    for path in READS[stage]:
        assert path in deps or f"{path}/manifest.json" in deps, (stage, path)


def test_params_values_are_the_leaves_of_the_params():
    p = parse_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    values = provenance.params_values(p)
    assert values["subset.count"] == p.subset.count and values["student.block_out_channels"] == list(
        p.student.block_out_channels
    )
    assert provenance.record(p, ["subset"]) == {"subset.count": p.subset.count, "subset.seed": p.subset.seed}
    ddim = dataclasses.replace(p, pairs=dataclasses.replace(p.pairs, sampler="ddim"))
    assert provenance.params_values(ddim)["pairs.order"] is None
    with pytest.raises(ValueError, match="subset.size: not a params key"):
        provenance.record(p, ["subset.size"])
