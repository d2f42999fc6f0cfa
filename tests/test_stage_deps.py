"""dvc.yaml (and compare/dvc.yaml) list, for every stage, exactly the lines_model modules it runs:
its script's imports (transitively), with the params schema counted by the sections the stage reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from lines_model.provenance import module_deps
from tools.stage_deps import pipeline_stages, stage_sections

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]  # the default pipeline
ALL_STAGES = pipeline_stages()  # and the comparison's (compare/dvc.yaml)


def _script(stage: dict) -> Path:
    # `python -m` from the repository root: the stage imports the lines_model next to it (an
    # experiment's copy in `dvc exp run --queue`), never another checkout's installed package.
    return ROOT / "stages" / (re.fullmatch(r"python -m stages\.(\w+)", stage["cmd"]).group(1) + ".py")


@pytest.mark.parametrize("name", sorted(ALL_STAGES))
def test_stage_deps_are_the_modules_its_script_imports(name):
    stage = ALL_STAGES[name]
    declared = {d for d in stage["deps"] if isinstance(d, str) and d.startswith("lines_model/")}
    imported = set(module_deps(_script(stage), stage_sections(stage))) - {
        "lines_model/__init__.py"
    }  # empty package marker
    assert declared == imported, (
        f"dvc.yaml {name}: missing {sorted(imported - declared)}, extra {sorted(declared - imported)}"
    )
    assert str(_script(stage).relative_to(ROOT)) in stage["deps"]
    assert "lines_model" not in stage["deps"], "a stage depends on modules, never the whole package"


def test_offline_tools_are_no_stage_dependency():
    for name, stage in ALL_STAGES.items():
        for d in stage["deps"]:
            assert not str(d).startswith(("tools", "benchmarks", "tests")), (name, d)
    pkg = {p.name for p in (ROOT / "lines_model").glob("*.py")}
    assert not pkg & {"teacher_training.py", "feature_training.py", "teacher_quality.py", "oracle.py"}


def test_figure_and_metric_modules_leave_the_pairs_alone():
    pairs_deps = set(STAGES["teacher_pairs"]["deps"])
    for module in (
        "plots.py",
        "report.py",
        "evaluation.py",
        "fidelity.py",
        "extractors.py",
        "uncertainty.py",
        "distance_passes.py",
        "fid_halves.py",
        "features.py",
        "students.py",
        "training.py",
    ):
        assert f"lines_model/{module}" not in pairs_deps


def test_a_params_section_schema_is_a_dep_of_the_stages_reading_that_section_only():
    # Every stage validates the whole params file, but adding an evaluate key must not rerun the
    # pairs or the students, nor a training key the pairs.
    readers = {
        "lines_model/config/evaluate.py": {"evaluate"},
        "lines_model/config/pd.py": {"distill_progressive", "evaluate"},
        "lines_model/config/cd.py": {"distill_consistency", "evaluate"},
        "lines_model/config/subset.py": {"subset_50k"},
        "lines_model/config/pairs.py": {"teacher_pairs", "evaluate"},
        "lines_model/config/__init__.py": set(STAGES),
    }
    for module, stages in readers.items():
        assert {name for name, st in STAGES.items() if module in st["deps"]} == stages, module
    assert stage_sections(STAGES["evaluate"]) == ["cd", "evaluate", "pairs", "pd", "runtime", "teacher"]


def test_config_core_counts_without_the_section_modules_it_imports(tmp_path, monkeypatch):
    import lines_model.provenance as sd

    pkg = tmp_path / "lines_model"
    (pkg / "config").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "config" / "__init__.py").write_text(
        "from lines_model.config.a import A\nfrom lines_model.config.b import B\nfrom lines_model import typed\n"
    )
    (pkg / "config" / "a.py").write_text("from . import shared\n")
    (pkg / "config" / "b.py").write_text("")
    (pkg / "config" / "shared.py").write_text("")
    (pkg / "typed.py").write_text("")
    (pkg / "user.py").write_text("from lines_model.config.b import B\n")
    script = tmp_path / "s.py"
    script.write_text("from lines_model.config import load_params\n")
    monkeypatch.setattr(sd, "ROOT", tmp_path)
    monkeypatch.setattr(sd, "section_modules", lambda sections: {pkg / "config" / f"{s}.py" for s in sections})
    core = ["lines_model/__init__.py", "lines_model/config/__init__.py", "lines_model/typed.py"]
    assert sd.module_deps(script) == core
    assert sd.module_deps(script, ["a"]) == sorted(core + ["lines_model/config/a.py", "lines_model/config/shared.py"])
    # A module that imports a section directly depends on it, whatever the stage's params say.
    script.write_text("from lines_model.config import load_params\nimport lines_model.user\n")
    assert sd.module_deps(script) == sorted(core + ["lines_model/config/b.py", "lines_model/user.py"])


def test_the_import_walk_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    import lines_model.provenance as sd

    pkg = tmp_path / "lines_model"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from lines_model import c\nx = 1\n")
    (pkg / "c.py").write_text("import os\n")
    (pkg / "d.py").write_text("")
    script = tmp_path / "s.py"
    script.write_text("import lines_model.a\n")
    monkeypatch.setattr(sd, "ROOT", tmp_path)
    assert sd.module_deps(script) == [
        "lines_model/__init__.py",
        "lines_model/a.py",
        "lines_model/b.py",
        "lines_model/c.py",
    ]


@pytest.mark.parametrize(
    "name, section",
    [
        ("train_lines", "train_lines"),
        ("train_baseline", "train_baseline"),
        ("distill_progressive", "pd"),
        ("compare", "train_lines"),
        ("compare", "train_baseline"),
    ],
)
def test_a_training_stage_reads_every_key_that_changes_its_result_and_no_log_setting(name, section):
    # A new log interval, checkpoint interval or worker count must not retrain a student (nor
    # the comparison's students of the other seeds).
    import dataclasses
    import typing

    from lines_model.config import Params
    from lines_model.config.training import NON_RESULT_KEYS

    cls = typing.get_type_hints(Params)[section]
    result_keys = {f.name for f in dataclasses.fields(cls)} - set(NON_RESULT_KEYS)
    declared_keys = {
        p.split(".", 1)[1] for p in ALL_STAGES[name]["params"] if isinstance(p, str) and p.startswith(f"{section}.")
    }
    assert declared_keys == result_keys
    assert section not in ALL_STAGES[name]["params"], "the whole section would include the log settings"


def test_the_comparison_reads_what_determines_its_students_and_their_evaluation():
    compare = ALL_STAGES["compare"]
    assert compare["wdir"] == ".." and "compare" not in STAGES, "a pipeline of its own, run from the root"
    assert {
        "data/pairs",
        "data/heldout",
        "data/subset.json",
        "models/lines",
        "models/baseline",
        "metrics/differences.json",
    } <= set(compare["deps"])
    assert {"teacher", "student", "evaluate", "runtime"} <= set(compare["params"])
    assert [next(iter(m)) for m in compare["metrics"]] == ["metrics/compare.json"]


def test_the_pairs_do_not_read_the_training_precision():
    # runtime.mixed_precision is the students' and PD's; the teacher's autocast for the pairs is
    # pairs.mixed_precision, so a new training precision never remakes the most expensive artifact.
    params = STAGES["teacher_pairs"]["params"]
    assert "runtime" not in params and "runtime.mixed_precision" not in params and "pairs" in params
