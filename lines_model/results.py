"""The results table: every generator's metrics from metrics/evaluate.json, as the README shows them.

    python -m lines_model results                     # or: make results
    python -m lines_model results -i other/evaluate.json
    python -m lines_model results --compare           # the seed comparison, metrics/compare.json

One row per generator: NFE, FID, KID, precision, recall and MSE each with its standard error,
PSNR, ms per image (with its IQR over timing rounds) and speedup over the teacher, marked
"(unreliable)" where the evaluation flagged its timing (timing_reliable 0).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lines_model.compare import generators_of
from lines_model.errors import InputError
from lines_model.files import read_json

COLUMNS = ("generator", "NFE", "FID", "KID", "precision", "recall", "MSE", "PSNR dB", "ms/image (IQR)", "speedup")
NEEDED = ("nfe", "fid", "fid_se", "kid", "kid_se", "precision", "precision_se", "recall", "recall_se", "mse", "mse_se", "psnr",
          "ms_per_image", "ms_per_image_iqr", "speedup")


def _pm(value: float, se: float, digits: int) -> str:
    return f"{value:.{digits}f} ± {se:.{digits}f}"


def row(name: str, m: dict) -> list[str]:
    psnr = "100 (cap)" if m["psnr"] >= 100 else f"{m['psnr']:.1f}"
    return [
        name, str(m["nfe"]), _pm(m["fid"], m["fid_se"], 2), _pm(m["kid"], m["kid_se"], 3), _pm(m["precision"], m["precision_se"], 2),
        _pm(m["recall"], m["recall_se"], 2), _pm(m["mse"], m["mse_se"], 4), psnr,
        f"{m['ms_per_image']:.2f} ({m['ms_per_image_iqr']:.2f})",
        f"{m['speedup']:.1f}" + (" (unreliable)" if m.get("timing_reliable") == 0 else ""),
    ]


def table(metrics: dict[str, dict]) -> str:
    """The markdown table of `metrics` (generator -> metrics, the schema of metrics/evaluate.json)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(name, m)) + " |" for name, m in metrics.items()]
    return "\n".join(lines)


COMPARE_METRICS = {"fid": ("FID", 2), "kid": ("KID", 3), "precision": ("precision", 3), "recall": ("recall", 3), "mse": ("MSE", 4)}


def compare_table(summary: dict) -> str:
    """The markdown table of the seed comparison (the schema of metrics/compare.json): each
    generator's mean +- its standard error over seeds (in brackets the evaluation's own), and each
    Lines-minus-baseline difference +- its total standard error, with that many standard errors."""
    diffs, compared = summary["difference"], generators_of(summary)
    head = ["metric", *compared, *(f"{k.replace('-', ' - ')}" for k in diffs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k, (label, digits) in COMPARE_METRICS.items():
        cells = [label]
        for g in compared:
            m = summary[g][k]
            cells.append(f"{m['mean']:.{digits}f} ± {m['se']:.{digits}f} (± {m['eval_se']:.{digits}f})")
        for d in diffs.values():
            m = d[k]
            cells.append(f"{m['mean']:+.{digits}f} ± {m['total_se']:.{digits}f} ({abs(m['mean']) / m['total_se']:.1f} SE)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load(path: str | Path) -> dict[str, dict]:
    metrics = read_json(path, "the evaluation's metrics (metrics/evaluate.json; run `dvc repro`)")
    for name, m in metrics.items():
        missing = [k for k in NEEDED if not isinstance(m, dict) or not isinstance(m.get(k), (int, float))]
        if missing:
            raise InputError(f"{path}: {name!r} has no number for {', '.join(missing[:4])}; not the evaluation's metrics file")
        if not all(math.isfinite(m[k]) for k in NEEDED):
            raise InputError(f"{path}: {name!r} holds a non-finite value")
    return metrics


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lines_model results", description=__doc__.splitlines()[0])
    p.add_argument("-i", "--input", type=Path, default=None,
                   help="the metrics file (default: metrics/evaluate.json, or metrics/compare.json with --compare)")
    p.add_argument("--compare", action="store_true",
                   help="the seed comparison of Lines and the baseline (`make compare`) instead of the evaluation")
    args = p.parse_args(argv)
    try:
        if args.compare:
            path = args.input or Path("metrics/compare.json")
            summary = read_json(path, "the seed comparison (metrics/compare.json; run `make compare`)")
            if not isinstance(summary, dict) or "difference" not in summary or not generators_of(summary):
                raise InputError(f"{path}: not the seed comparison's summary (no 'difference' or no generators)")
            print(compare_table(summary))
        else:
            print(table(load(args.input or Path("metrics/evaluate.json"))))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
