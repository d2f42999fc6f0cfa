"""Benchmarks: pair throughput at equal fidelity, bounded training memory, one-step speedup, the
fidelity metrics' standard errors at CIFAR-10 size, GPU.

    make bench                                   # = python benchmarks/run.py (about an hour on 2 idle cores)
    python benchmarks/run.py --quick --out /tmp/bench_quick.json    # smoke version, under a minute
    python benchmarks/run.py --skip-memory       # no 12 GB of temporary files

This file is the driver: it parses the arguments, runs the chosen sections (one module each:
pairs.py, onestep.py, memory.py, uncertainty.py, gpu.py), writes benchmarks/results.json atomically after every
measurement it gets back (with "complete": false until the end) and prints a markdown table. Every
number in it is measured by this run; see benchmarks/README.md for what each key means.

It is also the entry point of the sections' child processes (`--child KIND ...`): the 2-process
pair generation under torch.distributed.run and the peak-RSS children of the memory and uncertainty
sections, each started fresh so that its memory and timing are its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks.*` and `tools.*` import from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.common import T0, log, snapshot_teacher  # noqa: E402
from benchmarks.sizes import FULL, QUICK  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results.json"
SECTIONS = ("pairs", "onestep", "train", "memory", "uncertainty", "gpu")
NESTED = ("uncertainty", "gpu")  # sections whose figures sit under their own key, with their own date
# child kind -> the section module that defines it (imported only when that child runs)
CHILD_MODULES = {
    "gen": "benchmarks.pairs",
    "train-mem": "benchmarks.memory",
    "build-pt": "benchmarks.memory",
    "load-pt": "benchmarks.memory",
    "uncertainty": "benchmarks.uncertainty",
}


def run_child_main(kind: str, argv: list[str]) -> None:
    importlib.import_module(CHILD_MODULES[kind]).CHILDREN[kind](argv)


def previous_section(out: Path, key: str) -> dict | None:
    """The `key` figures (a section's own entry) of an earlier results file, unless they came from a
    CPU dry run or a --quick run."""
    try:
        entry = json.loads(out.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(entry, dict) or "dry run" in str(entry.get("device", "")) or entry.get("quick"):
        return None
    return entry


def previous_gpu(out: Path) -> dict | None:
    """The `gpu` figures of an earlier results file, unless they came from a CPU dry run."""
    return previous_section(out, "gpu")


def machine_info(threads: int) -> dict:
    import diffusers
    import psutil
    import torch

    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "ram_gb": psutil.virtual_memory().total / 1e9,
        "loadavg_start": list(os.getloadavg()),
        "threads": threads,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.is_available(),
    }


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


def markdown(results: dict) -> str:
    rows = ["| key | value |", "| --- | --- |"]
    for k, v in results.items():
        if k in NESTED and isinstance(v, dict):
            rows += [f"| {k}.{gk} | {_fmt(gv)} |" for gk, gv in v.items()]
        elif k == "machine":
            rows += [f"| machine.{mk} | {_fmt(mv)} |" for mk, mv in v.items()]
        else:
            rows.append(f"| {k} | {_fmt(v)} |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser(description="Lines model benchmarks (see benchmarks/README.md)")
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes: a smoke run in under a minute (numbers are not meaningful)"
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"results file (default {DEFAULT_OUT.relative_to(ROOT)})"
    )
    p.add_argument(
        "--skip-memory", action="store_true", help="skip the memory section (it writes ~12 GB of temporary files)"
    )
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated sections to run (default: all)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of this process (default: torch's default; 1 with --quick)",
    )
    p.add_argument("--teacher", default=None, help="teacher folder (default: teacher.model of params.yaml)")
    p.add_argument(
        "--mem-pairs", type=int, default=None, help="override the memory section's pair count (for testing the script)"
    )
    p.add_argument("--tmp", default=None, help="folder for temporary files (default: the system's temp folder)")
    p.add_argument(
        "--merge",
        action="store_true",
        help="with --sections among uncertainty,gpu: replace only their entries in the existing results file",
    )
    return p, p.parse_args(argv)


def teacher_info(teacher, src: Path) -> dict:
    prog = teacher.folder / "progress.json"
    return {
        "source": str(src.relative_to(ROOT) if src.is_relative_to(ROOT) else src),
        "sha256": teacher.sha256,
        "training_progress": json.loads(prog.read_text()) if prog.exists() else None,
        "prediction_type": teacher.scheduler_config.get("prediction_type"),
        "clip_sample": teacher.scheduler_config.get("clip_sample"),
        "sample_shape": list(teacher.sample_shape),
    }


def main(argv: list[str] | None = None) -> int:
    p, args = parse_args(argv)

    import torch

    from lines_model import atomic
    from lines_model.config import load_params

    threads = args.threads if args.threads is not None else (1 if args.quick else 0)
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    sections = {x.strip() for x in args.sections.split(",") if x.strip()}
    unknown = sections - set(SECTIONS)
    if unknown:
        p.error(f"--sections: unknown {', '.join(sorted(unknown))}")
    S = dict(QUICK if args.quick else FULL)
    if args.mem_pairs:
        S["mem_pairs"] = args.mem_pairs
    progress = sys.stderr.isatty() and not args.quick
    teacher_src = Path(args.teacher or load_params(ROOT / "params.yaml").teacher.model)
    if not teacher_src.is_absolute():
        teacher_src = ROOT / teacher_src
    if not ((teacher_src / "config.json").exists() or (teacher_src / "unet" / "config.json").exists()):
        p.error(f"{teacher_src}: not a local teacher folder (config.json or unet/config.json); pass --teacher DIR")

    info = machine_info(threads)
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    if args.merge:
        if not sections <= set(NESTED):
            p.error(f"--merge: only with --sections among {','.join(NESTED)}, whose figures carry their own date")
        try:
            results = json.loads(out.read_text())
        except (OSError, ValueError) as e:
            p.error(f"--merge: no results file to merge into: {e}")
    else:
        results = {"complete": False, "quick": args.quick, "sections": sorted(sections), "machine": info}
    kept_gpu = previous_gpu(out)  # read before the first save replaces the file
    kept_uncertainty = previous_section(out, "uncertainty")

    def save() -> None:
        atomic.write_json(out, results)

    work = Path(tempfile.mkdtemp(prefix="lines-bench-", dir=args.tmp))

    def on_term(signum, frame):  # turn SIGTERM into an exception so that `finally` removes the temp files
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        log(f"teacher: snapshot of {teacher_src}")
        teacher = snapshot_teacher(teacher_src, work / "teacher")
        results["teacher"] = teacher_info(teacher, teacher_src)
        if "pairs" in sections:
            from benchmarks.pairs import bench_pairs

            bench_pairs(teacher, teacher.folder, work, S, threads, progress, results, save)
        if "onestep" in sections:
            from benchmarks.onestep import bench_onestep

            bench_onestep(teacher, S, results, save)
        if "train" in sections:
            from benchmarks.training import bench_training

            log("train: every method's optimizer step, interleaved")
            results["train"] = bench_training(load_params(ROOT / "params.yaml"), teacher, batch=S["train_batch"],
                                              rounds=S["train_rounds"])
            save()
        if "memory" not in sections:
            pass
        elif args.skip_memory:
            results["memory_skipped"] = True
            for k in ("train_peak_rss_mb_250k", "original_load_rss_mb_250k", "bytes_per_pair"):
                results[k] = None
        else:
            from benchmarks.memory import bench_memory

            bench_memory(work, S, threads, progress, results, save)
        save()
        if "uncertainty" in sections:
            from benchmarks.uncertainty import bench_uncertainty

            results["uncertainty"] = {"date": info["date"], "quick": args.quick, "loadavg_start": info["loadavg_start"]}
            bench_uncertainty(work, S, threads, results["uncertainty"], save)
            results["uncertainty"]["loadavg_end"] = list(os.getloadavg())
            results.pop("uncertainty_note", None)
        elif not args.merge:
            # A 40-minute section that a run may leave out: keep the figures of the last run that had
            # it (they carry their own date and load) rather than erase them.
            results["uncertainty"] = kept_uncertainty
            results["uncertainty_note"] = "uncertainty section not run: " + (
                f"figures kept from the run of {kept_uncertainty['date']}" if kept_uncertainty else "no earlier figures"
            )
        if "gpu" not in sections:
            pass
        elif torch.cuda.is_available():
            from benchmarks.gpu import bench_gpu

            results["gpu"] = {"date": info["date"]}
            bench_gpu(S, results["gpu"], save)
        else:
            # Most runs of this file have no GPU: keep the figures of the last run that had one
            # (they carry their own device name and date) rather than erase them.
            results["gpu"] = kept_gpu
            results["gpu_note"] = "no CUDA device here (torch.cuda.is_available() is False): " + (
                f"GPU figures kept from the run of {kept_gpu.get('date')} on {kept_gpu.get('device')}"
                if kept_gpu
                else "GPU section not run"
            )
        if not args.merge:
            results["machine"]["loadavg_end"] = list(os.getloadavg())
            results["total_s"] = time.perf_counter() - T0
            results["complete"] = True
        save()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(markdown(results))
    print(f"\nwrote {out}")
    if not args.merge:  # said as they happened; again below the long table (a merge measures no section that warns)
        for line in results.get("timing_warnings", []):
            print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        run_child_main(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
