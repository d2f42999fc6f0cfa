"""Seed replicates of Lines vs the baseline on the pipeline's pairs (`make compare`).

    python -m tools.compare [--seeds 0 1 2] [-o metrics/compare.json]   # each seed's metrics: metrics/compare_runs.json

Run after `dvc repro`: it reads data/ and models/, trains the students of the other seeds under
scratch/compare (kept, so a rerun only evaluates), writes the summary (lines_model.compare) and
prints the Lines-minus-baseline table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lines_model import atomic, runtime
from lines_model.compare import replicate, summarise, table
from lines_model.config import load_params
from lines_model.cli import ArgumentParser, fail
from lines_model.errors import InputError, TrainingDiverged


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m tools.compare", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds, at least two (default 0 1 2; seed 0 is the pipeline's own)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    p.add_argument("-o", "--out", type=Path, default=Path("metrics/compare.json"), help="summary file (default: metrics/compare.json)")
    p.add_argument("--work", type=Path, default=Path("scratch/compare"), help="where the students of the extra seeds are kept (default: scratch/compare)")
    args = p.parse_args(argv)
    if len(set(args.seeds)) < 2:
        p.error("--seeds: at least two distinct seeds are needed for a standard error")
    try:
        params = load_params(args.params)
        runtime.set_threads(params.runtime)
        runs = []
        for s in args.seeds:
            print(f"compare: seed {s}", flush=True)
            runs.append(replicate(params, s, args.work, models=Path("models"), data=Path("data"), device=runtime.state().device))
    except (InputError, FileNotFoundError, TrainingDiverged) as e:
        fail(str(e))
    summary = summarise(list(args.seeds), runs)
    atomic.write_json(args.out, summary)
    # Each seed's own metrics: a record, kept out of the DVC metric so `dvc exp show` stays readable.
    atomic.write_json(args.out.with_name(args.out.stem + "_runs.json"), dict(zip(map(str, args.seeds), runs)))
    shutil.rmtree(args.work / "scratch", ignore_errors=True)
    print(table(summary))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
