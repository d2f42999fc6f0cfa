"""The seed-replicate summary: means, standard errors, paired differences and each seed's own metrics."""

from __future__ import annotations

import json
import math

import pytest

from conftest import shipped_params
from lines_model.compare import METRICS, compared, mean_se, paired, summarise as _summarise
from lines_model.methods.base import Layout
from lines_model.significance import seed_difference

COMPARED = compared(shipped_params())
PAIRED = paired(shipped_params())


def summarise(seeds, runs, evaluated=None):
    return _summarise(seeds, runs, evaluated, PAIRED)


def _significant(summary: dict, metric: str = "fid", pair: str = "lines_1step-baseline_1step") -> bool:
    return seed_difference(summary["difference"][pair][metric], len(summary["seeds"])).significant


def _run(base: float, lines: float, eval_se: float = 0.0) -> dict:
    return {
        g: {k: (base if g == "baseline_1step" else lines) for k in METRICS} | {f"{k}_se": eval_se for k in METRICS}
        for g in COMPARED
    }


def test_mean_and_standard_error():
    m = mean_se([1.0, 2.0, 3.0, 6.0])
    assert m["seed_mean"] == 3.0
    # sample std (ddof 1) of 1, 2, 3, 6 is sqrt(14/3); over sqrt(4).
    assert m["seed_se"] == pytest.approx(math.sqrt(14 / 3) / 2)


def test_differences_are_paired_by_seed():
    # The baseline and Lines move together across seeds (a shared seed effect): the paired
    # difference is exactly 1 with zero spread, though each generator alone varies a lot.
    runs = [_run(10.0, 11.0), _run(20.0, 21.0), _run(30.0, 31.0)]
    s = summarise([0, 1, 2], runs)
    assert s["seeds"] == [0, 1, 2]
    assert s["baseline_1step"]["fid"] == {
        "seed_mean": 20.0,
        "seed_se": pytest.approx(10 / math.sqrt(3)),
        "eval_se": 0.0,
    }
    d = s["difference"]["lines_1step-baseline_1step"]["fid"]
    assert d["seed_mean"] == pytest.approx(1.0) and d["seed_se"] == pytest.approx(0.0)
    assert d["total_se"] == pytest.approx(0.0)
    assert _significant(s)


def test_the_summary_keeps_each_seeds_metrics_as_a_list():
    # A list: `dvc metrics show` leaves it out, so the per-seed values add no columns to it.
    runs = [_run(10.0, 11.0, eval_se=0.2), _run(20.0, 21.0, eval_se=0.3)]
    s = summarise([4, 7], runs)
    assert s["runs"] == [{"seed": 4} | runs[0], {"seed": 7} | runs[1]]


def test_a_difference_within_noise_is_not_flagged():
    runs = [_run(10.0, 12.0), _run(12.0, 10.0), _run(11.0, 11.5)]
    s = summarise([0, 1, 2], runs)
    assert not _significant(s)


def test_replicate_folder_changes_with_training_settings_not_log_settings(tmp_path):
    import dataclasses

    from lines_model.compare import replicate_key

    p = shipped_params()
    layout = Layout(tmp_path)
    layout.pairs.mkdir(parents=True)
    (layout.pairs / "manifest.json").write_text('{"shards": ["a"]}')
    layout.subset.write_text('{"indices": [1, 2]}')
    key = replicate_key(p, layout)
    quieter = dataclasses.replace(
        p, train_lines=dataclasses.replace(p.train_lines, log_every=p.train_lines.log_every + 1)
    )
    assert replicate_key(quieter, layout) == key
    longer = dataclasses.replace(
        p, train_baseline=dataclasses.replace(p.train_baseline, epochs=p.train_baseline.epochs + 1)
    )
    assert replicate_key(longer, layout) != key
    layout.subset.write_text('{"indices": [1, 3]}')
    assert replicate_key(p, layout) != key


def test_the_evaluations_own_error_widens_a_difference_the_seeds_agree_on():
    # Every seed gives Lines 0.8 above the baseline, but each FID carries an evaluation error of 0.3
    # (which 500 samples were drawn): 0.8 is within two total standard errors, 2 sqrt(0.3^2 + 0.3^2) = 0.85.
    runs = [_run(10.0, 10.8, eval_se=0.3), _run(12.0, 12.8, eval_se=0.3), _run(11.0, 11.8, eval_se=0.3)]
    s = summarise([0, 1, 2], runs)
    assert s["lines_1step"]["fid"]["eval_se"] == pytest.approx(0.3)
    d = s["difference"]["lines_1step-baseline_1step"]["fid"]
    assert d["seed_se"] == pytest.approx(0.0, abs=1e-12) and d["total_se"] == pytest.approx(math.hypot(0.3, 0.3))
    assert not _significant(s)


def test_a_paired_evaluation_error_replaces_the_two_generators_errors_combined():
    # The evaluate stage's metrics/differences.json gives the evaluation's error of the difference
    # itself (the two generators share the noises and references, so it is below both combined):
    # 0.8 at every seed is then 8 standard errors, not 0.8 / 0.42 = 1.9.
    runs = [_run(10.0, 10.8, eval_se=0.3), _run(12.0, 12.8, eval_se=0.3), _run(11.0, 11.8, eval_se=0.3)]
    paired = {
        "lines_1step - baseline_1step": {"fid": 0.8, "fid_se": 0.1, "kid_se": 0.2},
        "lines_2step - baseline_1step": {"fid_se": 0.05},
    }
    s = summarise([0, 1, 2], runs, paired)
    d = s["difference"]["lines_1step-baseline_1step"]
    assert d["fid"]["eval_se"] == 0.1 and d["fid"]["total_se"] == pytest.approx(0.1)
    assert d["kid"]["eval_se"] == 0.2
    # A metric the file lacks falls back to the unpaired combination, and the summary says so.
    assert d["mse"]["eval_se"] == pytest.approx(math.hypot(0.3, 0.3))
    assert s["difference"]["lines_2step-baseline_1step"]["fid"]["eval_se"] == 0.05
    assert s["paired_eval_se"] is False
    assert _significant(s) and not _significant(s, "mse")
    full = {f"{a} - baseline_1step": {f"{k}_se": 0.1 for k in METRICS} for a in ("lines_1step", "lines_2step")}
    s = summarise([0, 1, 2], runs, full)
    assert s["paired_eval_se"] is True
    assert summarise([0, 1, 2], runs)["paired_eval_se"] is False


def test_the_compared_generators_and_differences_come_from_the_registry():
    assert COMPARED == ("lines_1step", "lines_2step", "baseline_1step")
    assert PAIRED == (("lines_1step", "baseline_1step"), ("lines_2step", "baseline_1step"))


def _outputs(stage: dict) -> list[str]:
    entries = [o for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])]
    return [next(iter(o)) if isinstance(o, dict) else o for o in entries]


def test_a_fresh_clone_finds_the_comparison_current_without_dvcs_cache(tmp_path):
    # `make repro` does not run compare/dvc.yaml, so a clone must find its outputs in git: an output in
    # DVC's cache alone reads "not in cache" in `dvc status`, as if the comparison were stale.
    import shutil
    import subprocess

    import yaml

    from conftest import ROOT

    stages = yaml.safe_load((ROOT / "compare" / "dvc.yaml").read_text())["stages"]
    outputs = [p for st in stages.values() for p in _outputs(st)]
    assert outputs
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", *outputs], cwd=ROOT, capture_output=True, text=True)
    assert tracked.returncode == 0, f"outputs of compare/dvc.yaml not kept in git: {tracked.stderr}"
    # A clone's view: the pipeline files, params and what git holds of the outputs; no data, models or cache.
    for f in ("dvc.yaml", "dvc.lock", "params.yaml", "compare/dvc.yaml", "compare/dvc.lock", ".dvc/config", *outputs):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, tmp_path / f)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    r = subprocess.run(["dvc", "status", "compare/dvc.yaml", "--json"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout or "{}")
    changed_outs = [e for entries in status.values() for e in entries if isinstance(e, dict) and "changed outs" in e]
    assert changed_outs == [], changed_outs
