"""Seed replicates of Lines vs the baseline on the pipeline's pairs (`make compare`).

    python -m tools.compare [--seeds 0 1 2] [-o metrics/compare.json]

Run after `dvc repro`: it reads data/ and models/, trains the students of the other seeds under
scratch/compare (kept, so a rerun only evaluates), writes the summary (lines_model.compare) and
prints the Lines-minus-baseline table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from lines_model import atomic, runtime
from lines_model.compare import replicate, summarise, table
from lines_model.config import load_params
from lines_model.errors import ConfigError, PairsError, TeacherError, TrainingDiverged


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("-o", "--out", type=Path, default=Path("metrics/compare.json"))
    p.add_argument("--work", type=Path, default=Path("scratch/compare"), help="students of the extra seeds")
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
    except (ConfigError, PairsError, TeacherError, FileNotFoundError, TrainingDiverged) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    summary = summarise(list(args.seeds), runs)
    summary["runs"] = dict(zip(map(str, args.seeds), runs))
    atomic.write_json(args.out, summary)
    shutil.rmtree(args.work / "scratch", ignore_errors=True)
    print(table(summary))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
