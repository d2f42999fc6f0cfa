"""The results, as the README shows them: tables and findings rendered from the metric files alone.

    python -m lines_model results                     # or: make results
    python -m lines_model results -i other/evaluate.json
    python -m lines_model results --compare           # the seed comparison, metrics/compare.json
    python -m lines_model results --findings          # what the metric files show, in sentences
    python -m lines_model results --against HEAD~1    # differences from another revision or DVC experiment

The table has one row per generator: NFE, FID, KID, precision, recall and MSE each with its
standard error, PSNR, ms per image (with its IQR over timing rounds) and speedup over the teacher,
marked "(unreliable)" where the evaluation flagged its timing (timing_reliable 0).

The findings sort every difference into better, worse or within noise by one rule
(`lines_model.significance`: beyond two standard errors and p < 0.05), so that no number in them is
typed by hand. A pair that the seed comparison covers is judged by it (the mean over seeds, its
total standard error, a t-test at its Welch-Satterthwaite degrees of freedom); every other pair by
the evaluation's paired differences of the pipeline's own students (metrics/differences.json: one
training each, the evaluation's error of the difference itself).

`--against REV` sets the evaluation (metrics/evaluate.json, or -i) beside the one committed at REV: a
git revision, or the name of a DVC experiment (`dvc exp run` keeps each as a commit under
refs/exps/). Each difference gets the two standard errors combined as if independent. Where both
runs evaluated on the same held-out noises and reference, their errors are positively correlated and
the paired error would be smaller, but pairing needs both runs' features, which no metrics file keeps.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from lines_model.cli import ArgumentParser
from lines_model.errors import InputError
from lines_model.files import read_json
from lines_model.significance import Difference, evaluation_difference, format_p, seed_difference

COLUMNS = ("generator", "NFE", "FID", "KID", "precision", "recall", "MSE", "PSNR dB", "ms/image (IQR)", "speedup")
NEEDED = (
    "nfe",
    "fid",
    "fid_se",
    "kid",
    "kid_se",
    "precision",
    "precision_se",
    "recall",
    "recall_se",
    "mse",
    "mse_se",
    "psnr",
    "ms_per_image",
    "ms_per_image_iqr",
    "speedup",
)


def _pm(value: float, se: float, digits: int) -> str:
    return f"{value:.{digits}f} ± {se:.{digits}f}"


def row(name: str, m: dict) -> list[str]:
    psnr = "100 (cap)" if m["psnr"] >= 100 else f"{m['psnr']:.1f}"
    return [
        name,
        str(m["nfe"]),
        _pm(m["fid"], m["fid_se"], 2),
        _pm(m["kid"], m["kid_se"], 3),
        _pm(m["precision"], m["precision_se"], 2),
        _pm(m["recall"], m["recall_se"], 2),
        _pm(m["mse"], m["mse_se"], 4),
        psnr,
        f"{m['ms_per_image']:.2f} ({m['ms_per_image_iqr']:.2f})",
        f"{m['speedup']:.1f}" + (" (unreliable)" if m.get("timing_reliable") == 0 else ""),
    ]


def table(metrics: dict[str, dict]) -> str:
    """The markdown table of `metrics` (generator -> metrics, the schema of metrics/evaluate.json)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(name, m)) + " |" for name, m in metrics.items()]
    return "\n".join(lines)


# A seed-compared metric's entry in metrics/compare.json. Not `mean`/`se`: DVC flattens nested keys with dots,
# and `lines_1step.fid.se` would sit beside metrics/evaluate.json's `lines_1step.fid_se`.
SEED_KEYS = ("seed_mean", "seed_se", "eval_se")
COMPARE_METRICS = {
    "fid": ("FID", 2),
    "kid": ("KID", 3),
    "precision": ("precision", 3),
    "recall": ("recall", 3),
    "mse": ("MSE", 4),
}


def generators_of(summary: dict) -> list[str]:
    """The compared generators of a summary (metrics/compare.json), in its order."""
    return [g for g, v in summary.items() if isinstance(v, dict) and g != "difference"]


def compare_table(summary: dict) -> str:
    """The markdown table of the seed comparison (the schema of metrics/compare.json): each
    generator's mean +- its standard error over seeds (in brackets the evaluation's own), and each
    Lines-minus-baseline difference +- its total standard error, with that many standard errors,
    its Welch-Satterthwaite degrees of freedom and its two-sided t-test p-value (`significance`)."""
    diffs, compared = summary["difference"], generators_of(summary)
    n_seeds = len(summary["seeds"])
    head = ["metric", *compared, *(f"{k.replace('-', ' - ')}" for k in diffs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k, (label, digits) in COMPARE_METRICS.items():
        cells = [label]
        for g in compared:
            m = summary[g][k]
            cells.append(f"{m['seed_mean']:.{digits}f} ± {m['seed_se']:.{digits}f} (± {m['eval_se']:.{digits}f})")
        for d in diffs.values():
            t = seed_difference(d[k], n_seeds)
            test = f"{t.n_se:.1f} SE, {t.dof:.0f} dof, {format_p(t.p)}"
            cells.append(f"{t.mean:+.{digits}f} ± {t.se:.{digits}f} ({test})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


LOWER_IS_BETTER = {"fid", "kid", "mse"}  # precision and recall: higher is better


def _label(name: str) -> str:
    from lines_model.methods import registry  # the methods' labels; the tables need none of it

    return registry.label(name)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(a: str, b: str, tests: dict[str, Difference], detail) -> str:
    """'**A against B**: better on ...; worse on ...; within noise on ...'."""
    groups: dict[str, list[str]] = {"better on": [], "worse on": [], "within noise on": []}
    for k, d in tests.items():
        label, digits = COMPARE_METRICS[k]
        item = f"{label} ({d.mean:+.{digits}f} ± {d.se:.{digits}f}, {detail(d)})"
        if not d.significant:
            groups["within noise on"].append(item)
        else:
            groups["better on" if (d.mean < 0) == (k in LOWER_IS_BETTER) else "worse on"].append(item)
    head = f"{_label(a)} against {_label(b)}"
    if _label(a) != a:  # a label starts the sentence ("the teacher", "baseline 1-step"); a bare name stays as it is
        head = head[0].upper() + head[1:]
    parts = [f"{verdict} {_join(items)}" for verdict, items in groups.items() if items]
    return f"- **{head}**: " + "; ".join(parts) + "."


def _seed_detail(d: Difference) -> str:
    return format_p(d.p)


def _evaluation_detail(d: Difference) -> str:
    return f"{d.n_se:.1f} SE"


def findings(evaluate: dict, differences: dict, compare: dict | None = None) -> str:
    """Markdown bullets of what the files show (the schemas of metrics/evaluate.json,
    metrics/differences.json and metrics/compare.json; `compare` may be None)."""
    out: list[str] = []
    covered: set[str] = set()
    if compare is not None:
        seeds = compare["seeds"]
        out.append(
            f"Over {len(seeds)} training seeds ({_join([str(s) for s in seeds])}; `metrics/compare.json`, "
            "each difference ± its total standard error, p from a t-test at its Welch-Satterthwaite "
            "degrees of freedom):"
        )
        out.append("")
        for key, entry in compare["difference"].items():
            a, b = key.split("-")
            covered.add(f"{a} - {b}")
            tests = {k: seed_difference(entry[k], len(seeds)) for k in COMPARE_METRICS}
            out.append(_sentence(a, b, tests, _seed_detail))
        fid = [compare[g]["fid"] for g in generators_of(compare)]
        ratios = [m["eval_se"] / m["seed_se"] for m in fid]
        seed_se = [m["seed_se"] for m in fid]
        out.append(
            f"- Training seeds move these students little: FID's standard error over seeds is "
            f"{min(seed_se):.2f}-{max(seed_se):.2f}, and the evaluation's own "
            f"({min(m['eval_se'] for m in fid):.2f}-{max(m['eval_se'] for m in fid):.2f}) is "
            f"{min(ratios):.1f} to {max(ratios):.1f} times larger."
        )
        out.append("")
    out.append(
        "The pipeline's own students, one training each (`metrics/differences.json`, each difference ± "
        "the evaluation's error of that difference, from the same noises and reference for both):"
    )
    out.append("")
    for key, entry in differences.items():
        if key in covered:
            continue
        a, b = key.split(" - ")
        tests = {k: evaluation_difference(entry[k], entry[f"{k}_se"]) for k in COMPARE_METRICS}
        out.append(_sentence(a, b, tests, _evaluation_detail))
    speed = {}
    for name, m in evaluate.items():
        if not name.startswith("teacher"):
            speed.setdefault(m["nfe"], []).append(m["speedup"])
    teacher = evaluate.get("teacher")
    if teacher and speed:
        ranges = [
            f"{min(v):.1f}-{max(v):.1f}x at {nfe} NFE" if len(v) > 1 else f"{v[0]:.1f}x at {nfe} NFE"
            for nfe, v in sorted(speed.items())
        ]
        out.append(f"- Speed against the teacher's {teacher['nfe']} NFE, timed in the same rounds: {_join(ranges)}.")
    return "\n".join(out)


def load(path: str | Path) -> dict[str, dict]:
    metrics = read_json(path, "the evaluation's metrics (metrics/evaluate.json; run `dvc repro`)")
    for name, m in metrics.items():
        missing = [k for k in NEEDED if not isinstance(m, dict) or not isinstance(m.get(k), (int, float))]
        if missing:
            raise InputError(
                f"{path}: {name!r} has no number for {', '.join(missing[:4])}; not the evaluation's metrics file"
            )
        if not all(math.isfinite(m[k]) for k in NEEDED):
            raise InputError(f"{path}: {name!r} holds a non-finite value")
    return metrics


def load_compare(path: str | Path) -> dict:
    summary = read_json(path, "the seed comparison (metrics/compare.json; run `make compare`)")
    if not isinstance(summary, dict) or "difference" not in summary or not generators_of(summary):
        raise InputError(f"{path}: not the seed comparison's summary (no 'difference' or no generators)")
    entries = [(g, summary[g], SEED_KEYS) for g in generators_of(summary)]
    entries += [(d, v, (*SEED_KEYS, "total_se")) for d, v in summary["difference"].items()]
    for name, entry, keys in entries:
        for k in COMPARE_METRICS:
            m = entry.get(k) if isinstance(entry, dict) else None
            if not isinstance(m, dict) or not all(isinstance(m.get(n), (int, float)) for n in keys):
                # An older summary holds `mean` and `se`: one line that says what to do, not a KeyError.
                raise InputError(
                    f"{path}: {name!r} {k} has no number for one of {', '.join(keys)}; "
                    "not the seed comparison's summary (rerun `make compare`)"
                )
    return summary


def load_differences(path: str | Path) -> dict:
    differences = read_json(path, "the evaluation's paired differences (metrics/differences.json; run `dvc repro`)")
    needed = [n for k in COMPARE_METRICS for n in (k, f"{k}_se")]
    for key, d in differences.items() if isinstance(differences, dict) else [("", None)]:
        if " - " not in key or not isinstance(d, dict) or not all(isinstance(d.get(n), (int, float)) for n in needed):
            raise InputError(
                f"{path}: {key!r} is not 'a - b' with {', '.join(needed)}; not the evaluation's differences file"
            )
    return differences


EVALUATE = "metrics/evaluate.json"


def _git(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise InputError("--against: git is not installed; it reads the other revision") from None


def resolve(rev: str) -> tuple[str, str]:
    """(commit, description) of `rev`: a git revision, else the name of a DVC experiment, whose commit
    `dvc exp run` keeps at refs/exps/<baseline[:2]>/<baseline[2:]>/<name>."""
    if not rev or rev.startswith("-"):  # never an option to git
        raise InputError(f"--against: {rev!r} is not a revision")
    found = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if found.returncode == 0:
        commit = found.stdout.strip()
        return commit, rev if commit.startswith(rev) else f"{rev} ({commit[:7]})"
    if _git("rev-parse", "--git-dir").returncode != 0:
        raise InputError(f"--against: {Path.cwd()} is not in a git repository")
    refs = _git("for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/").stdout.split()
    named = [(ref.split("/"), sha) for ref, sha in zip(refs[::2], refs[1::2])]
    named = [(parts, sha) for parts, sha in named if len(parts) == 5 and parts[4] == rev]
    if len(named) > 1:  # the same name on several baselines: the current one's, as `dvc exp` would take it
        head = _git("rev-parse", "HEAD").stdout.strip()
        named = [(parts, sha) for parts, sha in named if parts[2] + parts[3] == head] or named
    if not named:
        raise InputError(f"--against: {rev!r} is neither a git revision nor a DVC experiment of this repository")
    if len(named) > 1:
        raise InputError(f"--against: {len(named)} DVC experiments are named {rev!r}; give the commit of the one meant")
    return named[0][1], f"experiment {rev} ({named[0][1][:7]})"


def load_at(rev: str, path: str = EVALUATE) -> tuple[dict[str, dict], str]:
    """The evaluation's metrics as committed at `rev` (resolve), and how to name them."""
    commit, name = resolve(rev)
    shown = _git("show", f"{commit}:{path}")
    if shown.returncode != 0:
        raise InputError(f"--against: {path} is not in {name}")
    source = f"{path} at {name}"
    try:
        data = json.loads(shown.stdout)
    except json.JSONDecodeError as e:
        raise InputError(f"{source}: not valid JSON ({e}); expected the evaluation's metrics") from None
    return _generators(data, source), name


def _generators(data, source: str) -> dict[str, dict]:
    """Generator -> metrics, of an evaluation of any revision: only the shape is required, since an
    older file may lack metrics a newer one has (those are left out of the comparison)."""
    if not isinstance(data, dict) or not data or not all(isinstance(m, dict) for m in data.values()):
        raise InputError(f"{source}: not the evaluation's metrics (generator -> metrics)")
    return data


def _number(m: dict, k: str) -> float | None:
    v = m.get(k)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _compared_metrics(a: dict[str, dict], b: dict[str, dict]) -> list[str]:
    """The metrics with a standard error in either file: the table's and any other (`fid_data`), in order."""
    seen = [k for m in (*a.values(), *b.values()) for k in m if f"{k}_se" in m]
    return [*(k for k in COMPARE_METRICS if k in seen), *dict.fromkeys(k for k in seen if k not in COMPARE_METRICS)]


def _signed(x: float, digits: int) -> str:
    text = f"{x:+.{digits}f}"
    return "+" + text[1:] if float(text) == 0 else text  # no "-0.000" for a difference that rounds to nothing


def against_table(this: dict[str, dict], that: dict[str, dict], this_name: str, that_name: str) -> str:
    """Per generator in both evaluations and metric: this minus that, +- the two standard errors
    combined as independent, in bold with its number of standard errors where beyond two."""
    keys = _compared_metrics(this, that)
    shared = [g for g in this if g in that]
    if not shared or not keys:
        raise InputError(f"--against: {this_name} and {that_name} share no generator with a metric to compare")
    labels = [COMPARE_METRICS.get(k, (k, 3)) for k in keys]
    out = [
        f"{this_name} minus {that_name}, each difference ± its standard error; in bold beyond 2 standard errors.",
        "The two runs' standard errors are combined as independent, sqrt(se_a^2 + se_b^2): where both share the "
        "held-out noises and reference this overstates the error, ignoring their positive correlation.",
        "",
    ]
    out += ["| " + " | ".join(["generator", *(label for label, _ in labels)]) + " |", "|" + "---|" * (len(keys) + 1)]
    for g in shared:
        cells = [g]
        for k, (_, digits) in zip(keys, labels):
            a, b = _number(this[g], k), _number(that[g], k)
            se_a, se_b = _number(this[g], f"{k}_se"), _number(that[g], f"{k}_se")
            if a is None or b is None:
                cells.append("–")
            elif se_a is None or se_b is None:
                cells.append(f"{_signed(a - b, digits)} (no SE)")
            else:
                d = evaluation_difference(a - b, math.hypot(se_a, se_b))
                cell = f"{_signed(d.mean, digits)} ± {d.se:.{digits}f}"
                cells.append(f"**{cell} ({d.n_se:.1f} SE)**" if d.significant else cell)
        out.append("| " + " | ".join(cells) + " |")
    for name, mine, other in ((this_name, this, that), (that_name, that, this)):
        if gens := [g for g in mine if g not in other]:
            out.append(f"Only in {name}: {', '.join(gens)}.")
    return "\n".join(out)


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m lines_model results", description=__doc__.splitlines()[0])
    p.add_argument(
        "-i",
        "--input",
        type=Path,
        default=None,
        help="the metrics file (default: metrics/evaluate.json, or metrics/compare.json with --compare)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="the seed comparison of Lines and the baseline (`make compare`) instead of the evaluation",
    )
    p.add_argument(
        "--findings",
        action="store_true",
        help="what the metric files show, in sentences: from the evaluation's file (-i), and "
        "differences.json and compare.json beside it (`findings`)",
    )
    p.add_argument(
        "--against",
        metavar="REV",
        help="the differences from the evaluation committed at REV (a git revision or a DVC experiment's "
        "name), each with its standard error",
    )
    args = p.parse_args(argv)
    try:
        if args.against is not None:
            if args.compare or args.findings:
                raise InputError("--against compares two evaluations; give it without --compare and --findings")
            path = args.input or Path(EVALUATE)
            this = _generators(read_json(path, f"the evaluation's metrics ({EVALUATE}; run `dvc repro`)"), str(path))
            that, name = load_at(args.against)
            print(against_table(this, that, str(path), name))
        elif args.findings:
            path = args.input or Path("metrics/evaluate.json")
            compare = path.with_name("compare.json")
            print(
                findings(
                    load(path),
                    load_differences(path.with_name("differences.json")),
                    load_compare(compare) if compare.exists() else None,
                )
            )
        elif args.compare:
            print(compare_table(load_compare(args.input or Path("metrics/compare.json"))))
        else:
            print(table(load(args.input or Path("metrics/evaluate.json"))))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
