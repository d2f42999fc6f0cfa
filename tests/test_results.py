"""The results view: `python -m lines_model results` prints the README's tables and findings from the metric files.

The README's copies sit between markers that tools/readme.py rewrites; the tests below fail when they differ.
"""

from __future__ import annotations

import json
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
    m = {"nfe": 2, "fid": 2.114, "fid_se": 0.26, "kid": 0.0431, "kid_se": 0.009, "precision": 0.884, "precision_se": 0.014,
         "recall": 0.975, "recall_se": 0.017, "mse": 0.01042, "mse_se": 0.0011, "psnr": 19.82, "ms_per_image": 3.981,
         "ms_per_image_iqr": 0.27, "speedup": 11.46}
    assert table({"lines_2step": m}).splitlines()[-1] == (
        "| lines_2step | 2 | 2.11 ± 0.26 | 0.043 ± 0.009 | 0.88 ± 0.01 | 0.97 ± 0.02 | 0.0104 ± 0.0011 | 19.8 | 3.98 (0.27) | 11.5 |"
    )


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ('{"teacher": {"nfe": 1}}', "'teacher' has no number for fid"),
    ('{"teacher": 3}', "'teacher' has no number for nfe"),
])
def test_a_bad_metrics_file_is_one_line_and_exit_2(tmp_path, content, message):
    f = tmp_path / "m.json"
    f.write_text(content)
    r = subprocess.run([sys.executable, "-m", "lines_model", "results", "-i", str(f)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr and str(f) in r.stderr, r.stderr


def test_the_entry_point_lists_its_commands_and_refuses_others():
    r = subprocess.run([sys.executable, "-m", "lines_model", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and all(c in r.stdout for c in ("sample", "score", "results", "profile"))
    r = subprocess.run([sys.executable, "-m", "lines_model", "smaple"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "error: unknown command 'smaple'; expected one of sample, score, results, profile"


def test_the_readme_compare_table_is_what_the_results_command_prints():
    out = subprocess.run([sys.executable, "-m", "lines_model", "results", "--compare"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    printed = out.stdout.strip()
    summary = json.loads((ROOT / "metrics" / "compare.json").read_text())
    assert printed == compare_table(summary)
    assert printed in (ROOT / "README.md").read_text(), "README's comparison table differs from `results --compare`"


def test_a_compare_row_shows_means_seed_and_evaluation_errors_and_the_differences_with_dof_and_p():
    m = {"seed_mean": 8.514, "seed_se": 0.0758, "eval_se": 0.783}
    summary = {"seeds": [0, 1, 2], "lines_1step": {k: m for k in ("fid", "kid", "precision", "recall", "mse")},
               "lines_2step": {k: m for k in ("fid", "kid", "precision", "recall", "mse")},
               "baseline_1step": {k: m for k in ("fid", "kid", "precision", "recall", "mse")},
               "difference": {"lines_1step-baseline_1step": {k: {"seed_mean": -1.2, "seed_se": 0.24, "eval_se": 0.32}
                                                             for k in ("fid", "kid", "precision", "recall", "mse")}}}
    fid_row = compare_table(summary).splitlines()[2]
    # total SE 0.40; dof 0.16^2 / (0.24^4 / 2) = 15.4; p of t = 3.0 at 15.4 dof.
    assert fid_row == ("| FID | 8.51 ± 0.08 (± 0.78) | 8.51 ± 0.08 (± 0.78) | 8.51 ± 0.08 (± 0.78) "
                       "| -1.20 ± 0.40 (3.0 SE, 15 dof, p = 0.009) |")


def test_a_file_that_is_not_the_comparison_is_refused_in_one_line():
    r = subprocess.run([sys.executable, "-m", "lines_model", "results", "--compare", "-i", str(ROOT / "metrics" / "evaluate.json")],
                       cwd=ROOT, capture_output=True, text=True)
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
    evaluate = {"teacher": {"nfe": 22, "speedup": 1.0}, "a_1step": {"nfe": 1, "speedup": 20.04},
                "b_1step": {"nfe": 1, "speedup": 22.7}, "c_2step": {"nfe": 2, "speedup": 11.0}}
    # -1 at SE 0.25: lower FID, KID and MSE are better, lower precision and recall worse; 0.3 at 0.25 is noise.
    text = findings(evaluate, {"a_1step - b_1step": _diff(-1.0, 0.25), "c_2step - b_1step": _diff(0.3, 0.25)})
    lines = text.splitlines()
    assert lines[2] == ("- **a_1step against b_1step**: better on FID (-1.00 ± 0.25, 4.0 SE),"
                        " KID (-1.000 ± 0.250, 4.0 SE) and MSE (-1.0000 ± 0.2500, 4.0 SE);"
                        " worse on precision (-1.000 ± 0.250, 4.0 SE) and recall (-1.000 ± 0.250, 4.0 SE).")
    assert lines[3].startswith("- **c_2step against b_1step**: within noise on FID (+0.30 ± 0.25, 1.2 SE), KID")
    assert lines[4] == ("- Speed against the teacher's 22 NFE, timed in the same rounds: "
                        "20.0-22.7x at 1 NFE and 11.0x at 2 NFE.")


def test_findings_judge_a_pair_the_seed_comparison_covers_by_its_t_test():
    m = {"seed_mean": 1.0, "seed_se": 0.05, "eval_se": 0.5}
    compare = {"seeds": [0, 1, 2], **{g: {k: m for k in ("fid", "kid", "precision", "recall", "mse")}
                                     for g in ("lines_1step", "lines_2step", "baseline_1step")},
               "difference": {"lines_1step-baseline_1step": {
                   k: {"seed_mean": -0.094, "seed_se": 0.02318, "eval_se": 0.03232}
                   for k in ("fid", "kid", "precision", "recall", "mse")}}}
    differences = {"lines_1step - baseline_1step": _diff(9.0, 0.1), "lines_2step - baseline_1step": _diff(0.0, 0.1)}
    text = findings({}, differences, compare)
    assert "- **Lines 1-step against baseline 1-step**: better on FID (-0.09 ± 0.04, p = 0.030)" in text
    assert "9.00" not in text, "the one-seed difference of a pair the seeds cover is not reported beside it"
    assert "- **Lines 2-step against baseline 1-step**: within noise on FID (+0.00 ± 0.10, 0.0 SE)" in text
    assert ("FID's standard error over seeds is 0.05-0.05, and the evaluation's own (0.50-0.50) "
            "is 10.0 to 10.0 times larger") in text


@pytest.mark.parametrize("content, message", [
    ('{"a - b": {"fid": 1}}', "'a - b' is not 'a - b' with fid, fid_se"),
    ('{"ab": ' + json.dumps(_diff(1.0, 0.1)) + "}", "'ab' is not 'a - b'"),
])
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
        for b in results[i + 1:]:
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
