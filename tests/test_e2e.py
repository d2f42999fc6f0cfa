"""End to end: the real dvc commands on the micro profile in a temporary git repository.

The module fixture reproduces the pipeline once and commits it; every test starts from that
commit and puts the workspace back (git checkout + dvc checkout) when it is done, so the tests
do not depend on each other's order.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, make_tiny_teacher, micro_params
from lines_model.config import load_params
from lines_model.errors import ConfigError
from lines_model.evaluation import METRIC_KEYS
from stages import train_lines
from tools.stage_deps import declared

pytestmark = pytest.mark.e2e
STAGES = {
    "teacher_pairs",
    "subset_50k",
    "train_lines",
    "train_baseline",
    "distill_progressive",
    "distill_consistency",
    "evaluate",
}
GENERATORS = [
    "teacher",
    "teacher_ddim4",
    "lines_1step",
    "lines_2step",
    "baseline_1step",
    "pd_2step",
    "pd_1step",
    "cd_1step",
    "cd_2step",
    "cd_lines_1step",
    "cd_lines_2step",
]
DVC_STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def sh(cwd: Path, *cmd: str, check: bool = True, stdout_only: bool = False) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    out = r.stdout + r.stderr
    if check and r.returncode:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{out[-4000:]}")
    return r.stdout if stdout_only else out


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def changed(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed."""
    status = json.loads(sh(repo, "dvc", "status", "--json", stdout_only=True))
    return {name.split(":")[-1] for name in status}


def restore(repo: Path) -> None:
    sh(repo, "git", "checkout", "--", ".")
    sh(repo, "dvc", "checkout", "--quiet")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("e2e")
    for name in ("lines_model", "stages"):
        shutil.copytree(ROOT / name, r / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, r)
    shutil.copytree(ROOT / "teachers" / "shapes-features", r / "teachers" / "shapes-features")
    make_tiny_teacher(r / "teachers" / "tiny")
    # Room for a subset of 1,000 pairs (the round trip's experiment), trained for one epoch to keep it short.
    (r / "params.yaml").write_text(micro_params(pairs={"count": 1200}, train_lines={"epochs": 1}))
    sh(r, "git", "init", "-q")
    sh(r, "git", "config", "user.email", "e2e@example.com")
    sh(r, "git", "config", "user.name", "e2e")
    sh(r, "dvc", "init", "-q")
    sh(r, "dvc", "config", "core.autostage", "true")
    sh(r, "git", "add", "-A")
    sh(r, "git", "commit", "-qm", "micro profile")
    out = sh(r, "dvc", "repro")
    assert ran(out) == STAGES
    sh(r, "git", "add", "-A")
    sh(r, "git", "commit", "-qm", "repro")
    return r


def test_repro_writes_every_metric_with_its_uncertainty(repo):
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    assert list(metrics) == GENERATORS
    for name in GENERATORS:
        assert list(metrics[name]) == list(METRIC_KEYS)
        assert all(math.isfinite(v) for v in metrics[name].values()), (name, metrics[name])
        assert metrics[name]["fid_se"] > 0
    assert metrics["teacher"]["speedup"] == 1.0
    # One network call against the teacher's four, of the same network size, timed in the same rounds.
    for name in ("lines_1step", "baseline_1step", "pd_1step"):
        assert metrics[name]["speedup"] > 1.5, (name, metrics[name])
    assert (
        metrics["lines_2step"]["nfe"] == 2 and metrics["teacher"]["nfe"] == 4 and metrics["teacher_ddim4"]["nfe"] == 4
    )
    for png in (
        "comparison.png",
        "trajectory.png",
        "fid_speedup.png",
        "samples/lines_1step.png",
        "samples/teacher_ddim4.png",
    ):
        assert (repo / "plots" / png).stat().st_size > 1000
    assert (repo / "models" / "lines" / "diffusion_pytorch_model.safetensors").exists()
    assert sorted(p.name for p in (repo / "models" / "pd").iterdir()) == ["1step", "2step"]
    assert (repo / "training" / "lines" / "plots" / "metrics" / "train" / "loss.tsv").exists()
    assert not list((repo / "scratch").glob("*")), "finished stages leave no resumable state behind"


def test_every_student_folder_reloads_as_the_type_it_trained_as(repo):
    from lines_model.students import load_scheduler_config, load_student

    folders = sorted(p.parent for p in (repo / "models").rglob("lines_model.json"))
    assert len(folders) == 6  # lines, baseline, pd/2step, pd/1step, cd/teacher, cd/lines
    for folder in folders:
        meta = json.loads((folder / "lines_model.json").read_text())
        if meta["method"] == "pd":
            assert meta["prediction_type"] == "v_prediction"  # the tiny teacher's own, kept by its students
            assert load_scheduler_config(folder)["prediction_type"] == meta["prediction_type"]
        elif meta.get("parametrisation") == "teacher":
            assert load_student(folder)[0].output == meta["prediction_type"]


def test_nothing_to_do_after_repro(repo):
    assert "up to date" in sh(repo, "dvc", "status")
    assert ran(sh(repo, "dvc", "repro")) == set()


def test_a_module_edit_reruns_exactly_the_stages_that_import_it(repo):
    for module in ("plots.py", "samplers.py", "config/evaluate.py"):
        path = repo / "lines_model" / module
        path.write_text(path.read_text() + "# a comment\n")
        expected = {s for s, stage in DVC_STAGES.items() if f"lines_model/{module}" in declared(stage)}
        assert changed(repo) == expected, module
        restore(repo)
    # A figure module, and the schema of evaluate's keys, retrain nothing: training writes its sample
    # grids through imaging.py, not the figures' module.
    assert {s for s, stage in DVC_STAGES.items() if "lines_model/plots.py" in declared(stage)} == {"evaluate"}
    assert {s for s, stage in DVC_STAGES.items() if "lines_model/config/evaluate.py" in declared(stage)} == {"evaluate"}


def test_a_log_setting_retrains_nothing(repo):
    params = repo / "params.yaml"
    text = params.read_text()
    data = yaml.safe_load(text)
    for section in ("train_lines", "train_baseline", "pd"):
        data[section] = {**data[section], "log_every": 3, "checkpoint_every": 7, "num_workers": 1}
    params.write_text(yaml.safe_dump(data))
    assert changed(repo) == set()
    data["train_lines"]["lr"] = data["train_lines"]["lr"] / 2  # a result key, for contrast
    params.write_text(yaml.safe_dump(data))
    assert changed(repo) == {"train_lines"}  # dvc status lists the first stage whose own inputs changed
    restore(repo)


def test_a_training_precision_leaves_the_pairs_alone(repo):
    params = repo / "params.yaml"
    data = yaml.safe_load(params.read_text())
    data["runtime"]["mixed_precision"] = "fp16" if data["runtime"]["mixed_precision"] != "fp16" else "bf16"
    params.write_text(yaml.safe_dump(data))
    assert changed(repo) == {"train_lines", "train_baseline", "distill_progressive", "distill_consistency", "evaluate"}
    data["pairs"]["mixed_precision"] = "no" if data["pairs"]["mixed_precision"] != "no" else "bf16"
    params.write_text(yaml.safe_dump(data))
    assert "teacher_pairs" in changed(repo)  # the pairs' own precision key
    restore(repo)


def test_experiment_round_trip_runs_nothing_and_reruns_succeed(repo, monkeypatch):
    # The subset's size: under its old name, subset.size, DVC's run-cache left it out of its key
    # (treeverse/dvc#10296), and this experiment restored the previous subset as "cached".
    out = sh(repo, "dvc", "exp", "run", "-S", "subset.count=1000")
    # Consistency distillation starts one of its models from the Lines student.
    assert ran(out) == {"subset_50k", "train_lines", "distill_consistency", "evaluate"}
    subset_file = repo / "data" / "subset.json"
    made = subset_file.read_text()
    subset = json.loads(made)
    assert subset["count"] == len(set(subset["indices"])) == len(subset["indices"]) == 1000
    assert subset["made_from"]["subset_50k"] == {"subset.count": 1000, "subset.seed": 0}
    sidecar = json.loads((repo / "models" / "lines" / "lines_model.json").read_text())
    assert sidecar["made_from"]["subset_50k"]["subset.count"] == 1000
    first = json.loads((repo / "metrics" / "evaluate.json").read_text())["lines_1step"]
    restore(repo)  # back to the committed params: nothing to redo
    assert changed(repo) == set()
    assert ran(sh(repo, "dvc", "repro")) == set()
    # The experiment's subset restored under the committed params, as a cache that ignores the key
    # would: the stage that reads it refuses it before any work (its command line: test_provenance.py).
    committed = subset_file.read_text()
    subset_file.unlink()  # never write through a link into DVC's cache
    subset_file.write_text(made)
    monkeypatch.chdir(repo)
    stale = (
        r"^subset\.count: data/subset\.json was made with 1000, the params have 100 \(a stale output\); "
        r"remake it: dvc repro"
    )
    with pytest.raises(ConfigError, match=stale + r" --force --single-item subset_50k$"):
        train_lines.main(load_params("params.yaml"))
    assert not (repo / "scratch").exists() or not list((repo / "scratch").iterdir())
    subset_file.unlink()
    subset_file.write_text(committed)
    assert changed(repo) == set()
    # The same experiment again: served from the run-cache, nothing trained or evaluated again.
    out = sh(repo, "dvc", "exp", "run", "-S", "subset.count=1000")
    assert ran(out) == set(), out
    assert all(
        f"Stage '{s}' is cached" in out for s in ("subset_50k", "train_lines", "distill_consistency", "evaluate")
    ), out
    assert subset_file.read_text() == made
    again = json.loads((repo / "metrics" / "evaluate.json").read_text())["lines_1step"]
    assert {k: again[k] for k in ("fid", "kid", "mse")} == {k: first[k] for k in ("fid", "kid", "mse")}
    restore(repo)
    assert changed(repo) == set()


def test_pairs_count_reruns_everything(repo):
    # (A subset.count experiment reruns exactly subset_50k, train_lines and evaluate: see the round trip above.)
    # pairs.count changes teacher_pairs, and every other stage reads what teacher_pairs writes, so
    # `dvc repro` reruns all of them (DVC's own rule; running it would only time the micro pipeline).
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["pairs"]["count"] = 300
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        assert changed(repo) == {"teacher_pairs"}
        stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
        readers = {
            n for n, st in stages.items() if any(str(d).startswith(("data/pairs", "data/heldout")) for d in st["deps"])
        }
        assert readers == STAGES - {"teacher_pairs"}
    finally:
        restore(repo)
    assert changed(repo) == set()


def test_metrics_and_plots_diff_between_commits(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train_baseline"]["lr"] = 0.003
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(sh(repo, "dvc", "repro")) == {"train_baseline", "evaluate"}
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline lr 0.003")
    try:
        changed_metrics = json.loads(sh(repo, "dvc", "metrics", "diff", "HEAD~1", "--json", stdout_only=True))[
            "metrics/evaluate.json"
        ]
        assert changed_metrics["baseline_1step.mse"]["diff"] != 0
        assert "teacher.mse" not in changed_metrics  # the teacher did not change: no diff to report
        sh(repo, "dvc", "plots", "diff", "HEAD~1", "-o", "plots_diff")
        html = (repo / "plots_diff" / "index.html").read_text()
        order = [
            html.index(f"plots_{name}_png")
            for name in ("comparison", "fid_speedup", "loss_curves", "trajectory", "samples_teacher")
        ]
        assert order == sorted(order)
        assert re.search(r'id="([^"]+)"', html).group(1) == "plots_comparison_png", "the comparison grid opens the page"
    finally:
        sh(repo, "git", "reset", "-q", "--hard", "HEAD~1")
        sh(repo, "dvc", "checkout", "--quiet")
        shutil.rmtree(repo / "plots_diff", ignore_errors=True)


def test_the_comparison_is_its_own_pipeline_and_goes_stale_with_a_student(repo):
    # compare/dvc.yaml, recorded as up to date without running it (its seeds train for minutes):
    # plain `dvc status` covers it, a train_lines result key makes it stale, and plain `dvc repro`
    # would still run the root pipeline's stages only.
    (repo / "compare").mkdir()
    shutil.copy(ROOT / "compare" / "dvc.yaml", repo / "compare")
    made = [
        repo / "metrics" / name
        for name in ("compare.json", "differences.json")
        if not (repo / "metrics" / name).exists()
    ]
    ignore = repo / "metrics" / ".gitignore"
    ignored = ignore.read_text() if ignore.exists() else None
    try:
        for f in made:
            f.write_text("{}\n")
        sh(repo, "dvc", "commit", "-f", "-q", "compare/dvc.yaml:compare")
        assert changed(repo) == set()
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["train_lines"]["lr"] /= 2
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert changed(repo) == {"train_lines", "compare"}
        # (a dry run lists the stages stale now; evaluate would follow once train_lines has run)
        assert ran(sh(repo, "dvc", "repro", "--dry")) == {"train_lines"}
    finally:
        shutil.rmtree(repo / "compare")
        for f in made:
            f.unlink(missing_ok=True)
        sh(repo, "git", "reset", "-q", "--hard")  # autostage added compare/'s files to the index
        if ignored is None:
            ignore.unlink(missing_ok=True)
        else:
            ignore.write_text(ignored)
        sh(repo, "dvc", "checkout", "--quiet")
    assert changed(repo) == set() and not sh(repo, "git", "status", "--porcelain")
