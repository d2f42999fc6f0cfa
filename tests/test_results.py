"""The results view: `python -m lines_model results` prints the README's tables and findings from the metric files.

The README's copies sit between markers that tools/readme.py rewrites; the tests below fail when they differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from lines_model.results import compare_table, findings, table
from tools import readme


def test_the_readme_table_is_what_the_results_command_prints():
    out = subprocess.run([sys.executable, "-m", "lines_model", "results"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    printed = out.stdout.strip()
    assert printed == table(json.loads((ROOT / "metrics" / "evaluate.json").read_text()))
    assert printed in (ROOT / "README.md").read_text(), "README's results table differs from `make results`"


def test_a_row_shows_each_metric_with_its_standard_error():
    m = {
        "nfe": 2,
        "fid": 2.114,
        "fid_se": 0.26,
        "kid": 0.0431,
        "kid_se": 0.009,
        "precision": 0.884,
        "precision_se": 0.014,
        "recall": 0.975,
        "recall_se": 0.017,
        "mse": 0.01042,
        "mse_se": 0.0011,
        "psnr": 19.82,
        "ms_per_image": 3.981,
        "ms_per_image_iqr": 0.27,
        "speedup": 11.46,
    }
    assert table({"lines_2step": m}).splitlines()[-1] == (
        "| lines_2step | 2 | 2.11 ± 0.26 | 0.043 ± 0.009 | 0.88 ± 0.01 | 0.97 ± 0.02 | 0.0104 ± 0.0011 | 19.8 | "
        "3.98 (0.27) | 11.5 |"
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "not valid JSON"),
        ('{"teacher": {"nfe": 1}}', "'teacher' has no number for fid"),
        ('{"teacher": 3}', "'teacher' has no number for nfe"),
    ],
)
def test_a_bad_metrics_file_is_one_line_and_exit_2(tmp_path, content, message):
    f = tmp_path / "m.json"
    f.write_text(content)
    r = subprocess.run([sys.executable, "-m", "lines_model", "results", "-i", str(f)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr and str(f) in r.stderr, r.stderr


def test_the_entry_point_lists_its_commands_and_refuses_others():
    r = subprocess.run([sys.executable, "-m", "lines_model", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and all(c in r.stdout for c in ("sample", "score", "results", "profile"))
    r = subprocess.run([sys.executable, "-m", "lines_model", "smaple"], capture_output=True, text=True)
    assert (
        r.returncode == 2
        and r.stderr.strip() == "error: unknown command 'smaple'; expected one of sample, score, results, profile"
    )


def test_the_readme_compare_table_is_what_the_results_command_prints():
    out = subprocess.run(
        [sys.executable, "-m", "lines_model", "results", "--compare"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    printed = out.stdout.strip()
    summary = json.loads((ROOT / "metrics" / "compare.json").read_text())
    assert printed == compare_table(summary)
    assert printed in (ROOT / "README.md").read_text(), "README's comparison table differs from `results --compare`"


def test_a_compare_row_shows_means_seed_and_evaluation_errors_and_the_differences_with_dof_and_p():
    m = {"seed_mean": 8.514, "seed_se": 0.0758, "eval_se": 0.783}
    summary = {
        "seeds": [0, 1, 2],
        "lines_1step": {k: m for k in ("fid", "kid", "precision", "recall", "mse")},
        "lines_2step": {k: m for k in ("fid", "kid", "precision", "recall", "mse")},
        "baseline_1step": {k: m for k in ("fid", "kid", "precision", "recall", "mse")},
        "difference": {
            "lines_1step-baseline_1step": {
                k: {"seed_mean": -1.2, "seed_se": 0.24, "eval_se": 0.32}
                for k in ("fid", "kid", "precision", "recall", "mse")
            }
        },
    }
    fid_row = compare_table(summary).splitlines()[2]
    # total SE 0.40; dof 0.16^2 / (0.24^4 / 2) = 15.4; p of t = 3.0 at 15.4 dof.
    assert fid_row == (
        "| FID | 8.51 ± 0.08 (± 0.78) | 8.51 ± 0.08 (± 0.78) | 8.51 ± 0.08 (± 0.78) "
        "| -1.20 ± 0.40 (3.0 SE, 15 dof, p = 0.009) |"
    )


def test_a_file_that_is_not_the_comparison_is_refused_in_one_line():
    r = subprocess.run(
        [sys.executable, "-m", "lines_model", "results", "--compare", "-i", str(ROOT / "metrics" / "evaluate.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not the seed comparison's summary" in r.stderr, r.stderr


def test_the_readmes_tables_and_findings_are_what_the_metric_files_give():
    text = (ROOT / "README.md").read_text()
    generated = readme.blocks(ROOT / "metrics")
    assert readme.stale(text, generated) == [], "README's generated blocks differ from metrics/: run `make readme`"
    assert readme.fill(text, generated) == text


def test_the_readme_tool_rewrites_only_between_its_markers():
    text = "intro 13.3\n<!-- generated: findings -->\nold 13.3\n<!-- /generated: findings -->\nafter\n"
    assert readme.stale(text, {"findings": "new 13.2"}) == ["findings"]
    out = readme.fill(text, {"findings": "new 13.2"})
    assert out == "intro 13.3\n<!-- generated: findings -->\nnew 13.2\n<!-- /generated: findings -->\nafter\n"
    assert readme.stale(out, {"findings": "new 13.2"}) == []
    with pytest.raises(ValueError, match="no block 'results-table'"):
        readme.fill(text, {"results-table": "x"})


def _diff(mean: float, se: float) -> dict:
    return {k: v for m in ("fid", "kid", "precision", "recall", "mse") for k, v in ((m, mean), (f"{m}_se", se))}


def test_findings_sort_differences_by_direction_and_noise():
    evaluate = {
        "teacher": {"nfe": 22, "speedup": 1.0},
        "a_1step": {"nfe": 1, "speedup": 20.04},
        "b_1step": {"nfe": 1, "speedup": 22.7},
        "c_2step": {"nfe": 2, "speedup": 11.0},
    }
    # -1 at SE 0.25: lower FID, KID and MSE are better, lower precision and recall worse; 0.3 at 0.25 is noise.
    text = findings(evaluate, {"a_1step - b_1step": _diff(-1.0, 0.25), "c_2step - b_1step": _diff(0.3, 0.25)})
    lines = text.splitlines()
    assert lines[2] == (
        "- **a_1step against b_1step**: better on FID (-1.00 ± 0.25, 4.0 SE),"
        " KID (-1.000 ± 0.250, 4.0 SE) and MSE (-1.0000 ± 0.2500, 4.0 SE);"
        " worse on precision (-1.000 ± 0.250, 4.0 SE) and recall (-1.000 ± 0.250, 4.0 SE)."
    )
    assert lines[3].startswith("- **c_2step against b_1step**: within noise on FID (+0.30 ± 0.25, 1.2 SE), KID")
    assert lines[4] == (
        "- Speed against the teacher's 22 NFE, timed in the same rounds: 20.0-22.7x at 1 NFE and 11.0x at 2 NFE."
    )


def test_findings_judge_a_pair_the_seed_comparison_covers_by_its_t_test():
    m = {"seed_mean": 1.0, "seed_se": 0.05, "eval_se": 0.5}
    compare = {
        "seeds": [0, 1, 2],
        **{
            g: {k: m for k in ("fid", "kid", "precision", "recall", "mse")}
            for g in ("lines_1step", "lines_2step", "baseline_1step")
        },
        "difference": {
            "lines_1step-baseline_1step": {
                k: {"seed_mean": -0.094, "seed_se": 0.02318, "eval_se": 0.03232}
                for k in ("fid", "kid", "precision", "recall", "mse")
            }
        },
    }
    differences = {"lines_1step - baseline_1step": _diff(9.0, 0.1), "lines_2step - baseline_1step": _diff(0.0, 0.1)}
    text = findings({}, differences, compare)
    assert "- **Lines 1-step against baseline 1-step**: better on FID (-0.09 ± 0.04, p = 0.030)" in text
    assert "9.00" not in text, "the one-seed difference of a pair the seeds cover is not reported beside it"
    assert "- **Lines 2-step against baseline 1-step**: within noise on FID (+0.00 ± 0.10, 0.0 SE)" in text
    assert (
        "FID's standard error over seeds is 0.05-0.05, and the evaluation's own (0.50-0.50) "
        "is 10.0 to 10.0 times larger"
    ) in text


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"a - b": {"fid": 1}}', "'a - b' is not 'a - b' with fid, fid_se"),
        ('{"ab": ' + json.dumps(_diff(1.0, 0.1)) + "}", "'ab' is not 'a - b'"),
    ],
)
def test_findings_refuse_a_bad_differences_file_in_one_line(tmp_path, content, message):
    (tmp_path / "evaluate.json").write_text((ROOT / "metrics" / "evaluate.json").read_text())
    (tmp_path / "differences.json").write_text(content)
    cmd = [sys.executable, "-m", "lines_model", "results", "--findings", "-i", str(tmp_path / "evaluate.json")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_the_findings_command_prints_what_the_readme_holds():
    cmd = [sys.executable, "-m", "lines_model", "results", "--findings"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == readme.blocks(ROOT / "metrics")["findings"]


def _dvc_metric_keys(obj: dict, prefix: str = "") -> list[str]:
    """The column names `dvc metrics show` makes of a metrics file: nested keys joined by ".", lists left out."""
    out = []
    for k, v in obj.items():
        if isinstance(v, dict):
            out += _dvc_metric_keys(v, f"{prefix}{k}.")
        elif not isinstance(v, list):
            out.append(prefix + k)
    return out


def test_no_two_dvc_metric_keys_differ_only_by_underscore_against_dot():
    # `dvc metrics show` puts every metrics file's keys in one table: `lines_1step.fid_se` (the evaluation's
    # error) beside a `lines_1step.fid.se` (another error) would read as the same number.
    from tools.stage_deps import pipeline_stages

    declared = [m for st in pipeline_stages().values() for m in st.get("metrics", [])]
    files = [next(iter(m)) if isinstance(m, dict) else m for m in declared]
    results = ["metrics/evaluate.json", "metrics/differences.json", "metrics/compare.json"]
    assert set(results) <= set(files)
    keys = {f: _dvc_metric_keys(json.loads((ROOT / f).read_text())) for f in files if (ROOT / f).exists()}
    assert all(keys[f] for f in results)
    by_spelling: dict[str, set[str]] = {}
    for k in (k for ks in keys.values() for k in ks):
        by_spelling.setdefault(k.replace(".", "_"), set()).add(k)
    assert [sorted(v) for v in by_spelling.values() if len(v) > 1] == []
    # Nor does one results file repeat another's key, which would share its column.
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            assert set(keys[a]) & set(keys[b]) == set(), (a, b)


def test_a_seed_comparison_with_the_old_key_names_is_refused_in_one_line(tmp_path):
    summary = json.loads((ROOT / "metrics" / "compare.json").read_text())
    fid = summary["lines_1step"]["fid"]
    summary["lines_1step"]["fid"] = {"mean": fid["seed_mean"], "se": fid["seed_se"], "eval_se": fid["eval_se"]}
    f = tmp_path / "compare.json"
    f.write_text(json.dumps(summary))
    cmd = [sys.executable, "-m", "lines_model", "results", "--compare", "-i", str(f)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "'lines_1step' fid has no number for one of seed_mean, seed_se, eval_se" in r.stderr


def _git(repo, *args):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    r = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=os.environ | env, check=True)
    return r.stdout.strip()


def _evaluation(fid: float, fid_se: float, recall: float) -> dict:
    m = {
        "nfe": 1,
        "fid": fid,
        "fid_se": fid_se,
        "kid": 0.1,
        "kid_se": 0.01,
        "precision": 0.8,
        "precision_se": 0.02,
        "recall": recall,
        "recall_se": 0.03,
        "mse": 0.01,
        "mse_se": 0.001,
    }
    return {"teacher": m | {"fid": 1.0, "fid_se": 0.2, "recall": 0.9}, "lines_1step": m}


@pytest.fixture
def two_revisions(tmp_path):
    """A git repository whose metrics/evaluate.json changed between two commits, with no DVC."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "README").write_text("no metrics yet\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "before any evaluation")
    (tmp_path / "metrics").mkdir()
    f = tmp_path / "metrics" / "evaluate.json"
    f.write_text(json.dumps(_evaluation(8.0, 0.3, 0.70) | {"pd_1step": _evaluation(20.0, 1.0, 0.3)["lines_1step"]}))
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "first")
    f.write_text(json.dumps(_evaluation(9.0, 0.4, 0.72)))
    _git(tmp_path, "commit", "-q", "-am", "second")
    return tmp_path


def _against(repo, *args):
    return subprocess.run(
        [sys.executable, "-m", "lines_model", "results", "--against", *args], cwd=repo, capture_output=True, text=True
    )


def test_results_against_a_revision_shows_each_difference_with_its_standard_error(two_revisions):
    r = _against(two_revisions, "HEAD~1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    first = _git(two_revisions, "rev-parse", "HEAD~1")[:7]
    assert lines[0].startswith(f"metrics/evaluate.json minus HEAD~1 ({first}), each difference ± its standard error")
    # The errors cannot be paired across runs, and the output says, in one line, what that costs.
    assert lines[1].startswith("The two runs' standard errors are combined as independent, sqrt(se_a^2 + se_b^2)")
    assert "overstates the error" in lines[1] and "positive correlation" in lines[1]
    assert lines[3] == "| generator | FID | KID | precision | recall | MSE |"
    # FID 9.0 against 8.0, SE sqrt(0.4^2 + 0.3^2) = 0.5: 2.0 standard errors, not beyond two. Recall +0.02 against
    # an SE of 0.042 is noise; the teacher did not move.
    same = "+0.000 ± 0.014 | +0.000 ± 0.028 | {recall} ± 0.042 | +0.0000 ± 0.0014 |"
    assert lines[5] == "| teacher | +0.00 ± 0.28 | " + same.format(recall="+0.000")
    assert lines[6] == "| lines_1step | +1.00 ± 0.50 | " + same.format(recall="+0.020")
    assert lines[7] == f"Only in HEAD~1 ({first}): pd_1step."


def test_results_against_flags_a_difference_beyond_two_standard_errors(two_revisions):
    f = two_revisions / "metrics" / "evaluate.json"
    f.write_text(json.dumps(_evaluation(10.5, 0.4, 0.72)))  # uncommitted: the working tree's file against HEAD
    r = _against(two_revisions, "HEAD")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("| lines_1step"))
    # +1.5 against sqrt(0.4^2 + 0.4^2) = 0.57: 2.7 standard errors.
    assert row.split(" | ")[1] == "**+1.50 ± 0.57 (2.7 SE)**"
    other = two_revisions / "other.json"
    other.write_text(json.dumps(_evaluation(9.0, 0.4, 0.72)))
    r = _against(two_revisions, "HEAD", "-i", str(other))
    assert r.returncode == 0 and "| lines_1step | +0.00 ± 0.57 |" in r.stdout, r.stdout + r.stderr


def test_results_against_a_dvc_experiment_reads_its_commit(two_revisions):
    # `dvc exp run` keeps an experiment as a commit at refs/exps/<baseline[:2]>/<baseline[2:]>/<name>.
    baseline = _git(two_revisions, "rev-parse", "HEAD")
    _git(two_revisions, "update-ref", f"refs/exps/{baseline[:2]}/{baseline[2:]}/lucky-seed", "HEAD~1")
    r = _against(two_revisions, "lucky-seed")
    assert r.returncode == 0, r.stderr
    first = _git(two_revisions, "rev-parse", "HEAD~1")[:7]
    assert r.stdout.startswith(f"metrics/evaluate.json minus experiment lucky-seed ({first}),")
    assert "| lines_1step | +1.00 ± 0.50 |" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["no-such-rev"], "error: --against: 'no-such-rev' is neither a git revision nor a DVC experiment of this"),
        (["HEAD~2"], "error: --against: metrics/evaluate.json is not in HEAD~2 ("),
        (["HEAD", "--compare"], "error: --against compares two evaluations; give it without --compare and --findings"),
        (["HEAD", "-i", "missing.json"], "error: missing.json: missing; expected the evaluation's metrics"),
    ],
)
def test_results_against_refuses_in_one_line(two_revisions, args, message):
    r = _against(two_revisions, *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith(message) and r.stdout == "", r.stderr


def test_results_against_outside_a_git_repository_is_one_line(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "evaluate.json").write_text(json.dumps(_evaluation(9.0, 0.4, 0.72)))
    # A ceiling, so that git does not find a repository above the temporary folder.
    env = os.environ | {"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}
    r = subprocess.run(
        [sys.executable, "-m", "lines_model", "results", "--against", "HEAD"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2 and r.stderr == f"error: --against: {tmp_path} is not in a git repository\n", r.stderr
