"""Stage compare: seed replicates of Lines vs the baseline on the pipeline's pairs (`make compare`).

    dvc repro compare/dvc.yaml      # what `make compare` runs; plain `dvc repro` leaves it out
    python -m stages.compare [--seeds 0 1 2] [-o metrics/compare.json]
    python -m stages.compare --show                                      # the table of metrics/compare.json

The stage of compare/dvc.yaml, a pipeline of its own so that the default `dvc repro` does not pay
for its extra trainings, while `dvc status` still reports it stale when a student's params, the
pairs, the models or the code change. It reads data/ and models/ (and the evaluation's paired
differences, metrics/differences.json, when the evaluate stage wrote them), trains the students of
the other seeds under scratch/compare (kept, so a rerun only evaluates), writes the summary with
each seed's own metrics (lines_model.compare; its one output, kept in git so that a fresh clone is
up to date without DVC's cache) and prints the Lines-minus-baseline table (lines_model.results).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lines_model import atomic, provenance, runtime
from lines_model.compare import paired as paired_differences, replicate, summarise
from lines_model.config import load_params
from lines_model.cli import ArgumentParser, check_writable, fail
from lines_model.errors import InputError, TrainingDiverged
from lines_model.methods import registry
from lines_model.methods.base import Layout
from lines_model.results import compare_table, load_compare


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m stages.compare", description=__doc__.splitlines()[0])
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="training seeds, at least two (default 0 1 2; seed 0 is the pipeline's own)",
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("metrics/compare.json"),
        help="summary file (default: metrics/compare.json)",
    )
    p.add_argument(
        "--differences",
        type=Path,
        default=Path("metrics/differences.json"),
        help="the evaluate stage's paired differences, for the evaluation's error of a difference; without the file, "
        "the two generators' errors are combined as if independent (default: metrics/differences.json)",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path("scratch/compare"),
        help="where the students of the extra seeds are kept (default: scratch/compare)",
    )
    p.add_argument(
        "--show",
        action="store_true",
        help="print the table of the summary in --out and stop (nothing is trained or evaluated)",
    )
    args = p.parse_args(argv)
    if args.show:
        if not args.out.exists():
            fail(f"{args.out}: missing; `make compare` writes it")
        try:
            print(compare_table(load_compare(args.out)))
        except InputError as e:
            fail(str(e))
        return
    if len(set(args.seeds)) < 2:
        p.error("--seeds: at least two distinct seeds are needed for a standard error")
    try:
        check_writable(args.out, "--out")  # before the seeds are trained, which takes the longest
        params = load_params(args.params)
        layout = Layout()
        provenance.check_inputs(
            params,
            [layout.pairs, layout.heldout, layout.subset, *(layout.model(m.name) for m in registry.seed_compared())],
        )
        runtime.set_threads(params.runtime)
        runs = []
        for s in args.seeds:
            print(f"compare: seed {s}", flush=True)
            runs.append(replicate(params, s, args.work, layout=layout, device=runtime.state().device))
    except (InputError, FileNotFoundError, TrainingDiverged) as e:
        fail(str(e))
    paired = json.loads(args.differences.read_text()) if args.differences.exists() else None
    summary = summarise(list(args.seeds), runs, paired, paired_differences(params))
    atomic.write_json(args.out, summary)
    shutil.rmtree(args.work / "scratch", ignore_errors=True)
    print(compare_table(summary))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
