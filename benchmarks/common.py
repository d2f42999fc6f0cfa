"""Small helpers shared by the benchmark sections: logging, wall-clock timing and the verdict on
interleaved timings, RSS readers, fresh child processes and the teacher snapshot.

Library imports stay inside the functions that need them, so that a renamed library name breaks
only the section that uses it, not the import of every benchmark module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"  # the driver, also the entry point of every child process

# Noise of the throughput benchmarks: its own seed and stream, disjoint from the pipeline's
# (seed 0, streams TRAIN=0 and HELDOUT=1).
BENCH_SEED, BENCH_STREAM = 1234, 7

T0 = time.perf_counter()  # start of the run: log times and total_s count from here


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def timed_once(fn):
    """(fn(), seconds): one plain wall-clock run, for measurements of a whole generation run, too
    long to repeat (per-call timings go through lines_model.timing instead)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def note_timing(r: dict, what: str, timings) -> bool:
    """Files the verdict on the interleaved `timings` (name -> lines_model.timing.Timing) of `what`:
    `timing_reliable` of the run stays true only while every timing holds, and a flagged one adds
    its one-line warning to `timing_warnings` and prints it. Returns whether these hold."""
    from lines_model.timing import warning

    line = warning(timings)
    if line is not None:
        line = f"warning: {what}: {line.removeprefix('warning: ')}"
        r.setdefault("timing_warnings", []).append(line)
        print(line, file=sys.stderr, flush=True)
    r["timing_reliable"] = r.get("timing_reliable", True) and line is None
    return line is None


# --------------------------------------------------------------------------------------------
# Memory of this process (Linux /proc)
# --------------------------------------------------------------------------------------------


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def vm_hwm_mb() -> float:
    """Peak resident set of this process (VmHWM). Unlike getrusage's ru_maxrss it is not inherited
    from the parent's address space across fork/exec, so a fresh child reports only its own peak."""
    return _status_mb("VmHWM")


def vm_rss_mb() -> float:
    return _status_mb("VmRSS")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------


def child_command(kind: str, *args: str) -> list[str]:
    """The arguments that run child `kind` of run.py (without the interpreter)."""
    return [str(RUN), "--child", kind, *args]


def run_group(cmd: list[str], *, env: dict | None = None, timeout_s: float = 600) -> None:
    """Run `cmd` in its own process group; on error, timeout or interrupt the whole group is ended
    (torch.distributed.run's workers included)."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited with status {rc}")


def run_child(
    args: list[str], result: Path, *, env: dict | None = None, poll_s: float = 0.02, timeout_s: float = 900
) -> dict:
    """Run child `args[0]` of run.py in a fresh process and return the JSON it wrote to `result`,
    plus its RSS sampled with psutil every `poll_s` seconds (`polled_peak_rss_mb`) and `wall_s`."""
    import psutil

    cmd = [sys.executable, *child_command(*args), "--result", str(result)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    peak = 0
    execed = False  # before exec the child is (a vfork of) this process: its RSS is ours
    start = time.perf_counter()
    try:
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                execed = execed or ps.cmdline()[1:] == cmd[1:]
                if execed:
                    peak = max(peak, ps.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                break
            if time.perf_counter() - start > timeout_s:
                raise TimeoutError(f"child {args[0]} ran over {timeout_s:.0f} s")
            time.sleep(poll_s)
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc != 0:
        raise RuntimeError(f"child {' '.join(args[:1])} exited with status {rc}")
    out = json.loads(result.read_text())
    out["polled_peak_rss_mb"] = peak / 2**20
    out["wall_s"] = time.perf_counter() - start
    return out


# --------------------------------------------------------------------------------------------
# The teacher
# --------------------------------------------------------------------------------------------


def snapshot_teacher(src: Path, dst: Path):
    """Copy the teacher folder and load the copy: the shipped teacher may be rewritten (atomically,
    by a training job) while the benchmark runs; every measurement uses this one snapshot."""
    from lines_model.teachers import content_hash, load_teacher

    last = None
    for _ in range(20):
        try:
            shutil.rmtree(dst, ignore_errors=True)
            before = content_hash(src)
            shutil.copytree(src, dst)
            teacher = load_teacher(str(dst))
            if teacher.sha256 == before:
                return teacher
            last = "teacher folder changed during the copy"
        except Exception as e:  # folder briefly missing while it is replaced: try again
            last = f"{type(e).__name__}: {e}"
        time.sleep(1.0)
    raise RuntimeError(f"{src}: could not take a consistent snapshot of the teacher ({last})")
