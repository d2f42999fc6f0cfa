"""The results view: `python -m lines_model results` prints the README's table from the metrics file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from lines_model.results import compare_table, table


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
    m = {"mean": 8.514, "se": 0.0758, "eval_se": 0.783}
    summary = {"seeds": [0, 1, 2], "lines_1step": {k: m for k in ("fid", "kid", "precision", "recall", "mse")},
               "lines_2step": {k: m for k in ("fid", "kid", "precision", "recall", "mse")},
               "baseline_1step": {k: m for k in ("fid", "kid", "precision", "recall", "mse")},
               "difference": {"lines_1step-baseline_1step": {k: {"mean": -1.2, "se": 0.24, "eval_se": 0.32}
                                                             for k in ("fid", "kid", "precision", "recall", "mse")}}}
    fid_row = compare_table(summary).splitlines()[2]
    # total SE 0.40; dof 0.16^2 / (0.24^4 / 2) = 15.4; p of t = 3.0 at 15.4 dof.
    assert fid_row == "| FID | 8.51 ± 0.08 (± 0.78) | 8.51 ± 0.08 (± 0.78) | 8.51 ± 0.08 (± 0.78) | -1.20 ± 0.40 (3.0 SE, 15 dof, p = 0.009) |"


def test_a_file_that_is_not_the_comparison_is_refused_in_one_line():
    r = subprocess.run([sys.executable, "-m", "lines_model", "results", "--compare", "-i", str(ROOT / "metrics" / "evaluate.json")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not the seed comparison's summary" in r.stderr, r.stderr

