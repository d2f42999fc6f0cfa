"""The CIFAR-10 profile as a real `dvc repro` at reduced scale on one GPU, timed stage by stage,
and the full run's cost estimated from it.

    python -m benchmarks.gpu_pipeline --out DIR [--scale 0.005] [--budget-s 560] [--parts P,P,...]

What runs (`--parts`, in this order), each part time-boxed so that the later parts still run:
1. `cuda_tests`: the CUDA tests (tests/test_cuda.py, with LINES_MODEL_TEST_CUDA=1);
2. `pipeline`: profiles/cifar10.yaml as `dvc repro -s STAGE`, stage after stage, in a temporary git repository:
   a random-init teacher of the google/ddpm-cifar10-32 configuration, random Inception weights of
   torch-fidelity's layout, random uint8 images standing in for CIFAR-10 train. Only counts shrink
   (pairs, held-out images, PD iterations, evaluation images); batch sizes, architectures,
   samplers, step counts and precision are the profile's, so per-item costs are the real ones;
3. `evaluate_50k`: benchmarks/evaluate_50k.py, the evaluation's metrics and standard errors at
   50,000 vs 50,000 (synthetic 2,048-d features), in a child process;
4. `probe`: benchmarks/gpu_probe.py, the hot loops alone under each math mode (fp32 as the profile
   runs it, strict fp32, TF32, bf16, torch.compile) and where the teacher's GPU time goes;
5. `unit`: the unit suite (`make test`'s, on the CPU: the suite hides CUDA), in whatever time is left.

Each stage's wall time includes its process start (Python, torch, diffusers, CUDA context);
that start is measured once on its own (`startup_s`) and taken off before scaling a stage to the
full run (benchmarks/gpu_estimate.py). Peak GPU memory is polled from nvidia-smi (whole device)
every 0.2 s during each stage; peak host memory is the largest RSS of the stage's process tree at
those polls.

Writes DIR/gpu_pipeline.json after every part, so a run cut short keeps what it measured; runs of
different parts are filed together with `--merge A.json B.json`. A CPU dry run with --tiny checks
this code at toy sizes (the numbers mean nothing there).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from benchmarks.cifar import (
    ROOT,
    STAGES,
    UNITS,
    cifar_student,
    cifar_teacher,
    forward_gflop,
    full_params,
    items,
    scaled_params,
    training_steps,
)
from benchmarks.gpu_estimate import estimate, merge

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def left(budget_s: float) -> float:
    return budget_s - (time.perf_counter() - T0)


# Seconds each part took on one H200 at the default scale (2026-11-30), with some slack: the time
# boxes keep this much for the parts still to come.
EXPECTED_S = {
    "teacher_pairs": 85,
    "subset_50k": 10,
    "train_lines": 35,
    "train_baseline": 30,
    "distill_progressive": 70,
    "evaluate": 110,
    "evaluate_50k": 150,
    "probe": 150,
}
PARTS = ("cuda_tests", "pipeline", "evaluate_50k", "probe", "unit")


# --------------------------------------------------------------------------------------------
# Memory polling
# --------------------------------------------------------------------------------------------


class Peaks:
    """Polls the GPU's used memory (nvidia-smi, the whole device) and the RSS of a process tree."""

    def __init__(self, pid: int | None = None, period_s: float = 0.2):
        self.pid, self.period_s = pid, period_s
        self.gpu_gb = 0.0
        self.host_gb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _gpu_used_gb(self) -> float:
        if not shutil.which("nvidia-smi"):
            return 0.0
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True
        ).stdout.split()
        return float(out[0]) / 1024 if out else 0.0

    def _tree_rss_gb(self) -> float:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**30

    def _run(self):
        while not self._stop.is_set():
            self.gpu_gb = max(self.gpu_gb, self._gpu_used_gb())
            if self.pid is not None:
                self.host_gb = max(self.host_gb, self._tree_rss_gb())
            self._stop.wait(self.period_s)


def run_timed(cmd: list[str], cwd: Path, timeout_s: float, log_path: Path, env=None) -> dict:
    """Runs `cmd`, polling its memory; returns rc (124 on timeout), wall seconds and peaks."""
    t0 = time.perf_counter()
    with open(log_path, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        with Peaks(proc.pid) as peaks:
            try:
                rc = proc.wait(timeout=max(timeout_s, 1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                rc = 124
    return {"rc": rc, "s": time.perf_counter() - t0, "peak_gpu_gb": peaks.gpu_gb, "peak_host_gb": peaks.host_gb}


def tail(path: Path, n: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


# --------------------------------------------------------------------------------------------
# Parts
# --------------------------------------------------------------------------------------------


def pytest_summary(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if any(w in line for w in (" passed", " failed", " error", " skipped", "no tests ran")):
            return line.strip("= ")
    return lines[-1] if lines else ""


def part_tests(out: Path, r: dict, args_pytest: list[str], key: str, timeout_s: float, env: dict | None = None) -> None:
    logf = out / f"{key}.log"
    env = dict(os.environ, **(env or {}))
    if "-n" in args_pytest:  # several pytest workers on one host: a few threads each, not every core each
        env["OMP_NUM_THREADS"] = "2"
    res = run_timed(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args_pytest], ROOT, timeout_s, logf, env
    )
    r[key] = {
        "summary": pytest_summary(logf) if res["rc"] != 124 else f"cut at {timeout_s:.0f} s",
        "rc": res["rc"],
        "s": round(res["s"], 1),
        "command": "python -m pytest -q " + " ".join(args_pytest),
    }
    log(f"{key}: {r[key]['summary']} ({res['s']:.0f} s)")


def startup_seconds(repo: Path) -> float:
    """One stage process's fixed cost: the interpreter, torch, diffusers, the package and a CUDA context."""
    code = (
        "import torch, diffusers, accelerate, lines_model.evaluation, lines_model.methods.one_step;"
        "torch.zeros(1, device='cuda' if torch.cuda.is_available() else 'cpu').sum().item()"
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True)
    return time.perf_counter() - t0


def build_repo(repo: Path, params: dict) -> None:
    """A temporary git + DVC repository of the pipeline with `params`: the package, the stages,
    dvc.yaml, a random-init teacher of the google/ddpm-cifar10-32 configuration, random Inception
    weights and random uint8 images standing in for CIFAR-10 train (also `make smoke-cifar`'s)."""
    import numpy as np

    from lines_model.extractors import save_random_inception_weights
    from tools.random_teacher import save_random_cifar_teacher

    for name in ("lines_model", "stages"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo)
    shutil.copytree(ROOT / "teachers" / "shapes-features", repo / "teachers" / "shapes-features")
    save_random_cifar_teacher(repo / params["teacher"]["model"])
    save_random_inception_weights(repo / params["evaluate"]["feature_weights"])
    n = params["evaluate"]["data_count"]
    fake = np.random.default_rng(0).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    (repo / "data").mkdir()
    np.save(repo / params["evaluate"]["data_reference"], fake)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
    )
    git = shutil.which("git") is not None
    cmds = ([["git", "init", "-q"], ["dvc", "init", "-q"]] if git else [["dvc", "init", "-q", "--no-scm"]]) + [
        ["dvc", "config", "core.analytics", "false"]
    ]
    if git:
        cmds += [["git", "add", "-A"], ["git", "commit", "-qm", "CIFAR-10 profile, reduced counts"]]
    for cmd in cmds:
        subprocess.run(cmd, cwd=repo, check=True, env=env, capture_output=True)


def part_pipeline(
    out: Path, r: dict, scale: float, tiny: bool, budget_s: float, save, later: tuple[str, ...] = ()
) -> None:
    full = full_params()
    params = scaled_params(full, scale, tiny)
    work = Path(tempfile.mkdtemp(prefix="gpu-pipeline-"))
    repo = work / "cifar"
    build_repo(repo, params)
    c = r.setdefault("cifar_pipeline", {})
    c.update(
        {
            "scale": scale,
            "params_reduced": {k: params[k] for k in ("pairs", "subset", "pd", "evaluate")},
            "train_epochs": {
                "train_lines": params["train_lines"]["epochs"],
                "train_baseline": params["train_baseline"]["epochs"],
            },
            "startup_s": round(startup_seconds(repo), 2),
            "stage_s": {},
            "items": {},
            "items_per_s": {},
            "items_per_s_net": {},
            "peak_gpu_gb_by_stage": {},
            "peak_host_gb_by_stage": {},
            "stage_rc": {},
        }
    )
    n_items = items(params)
    logf = out / "pipeline.log"
    # Each stage may use what is left, minus what the parts after it are expected to need.
    after = (*STAGES, *(p for p in later if p in EXPECTED_S))
    reserve = {stage: sum(EXPECTED_S[k] for k in after[i + 1 :]) for i, stage in enumerate(STAGES)}
    for stage in STAGES:
        timeout = left(budget_s) - (0 if tiny else reserve[stage])
        log(f"dvc repro -s {stage} (time box {timeout:.0f} s)")
        res = run_timed(["dvc", "repro", "-s", stage], repo, timeout, logf)
        c["stage_rc"][stage] = res["rc"]
        c["stage_s"][stage] = round(res["s"], 2)
        c["peak_gpu_gb_by_stage"][stage] = round(res["peak_gpu_gb"], 2)
        c["peak_host_gb_by_stage"][stage] = round(res["peak_host_gb"], 2)
        c["items"][stage] = n_items[stage]
        c["items_per_s"][stage] = round(n_items[stage] / res["s"], 2)
        net = res["s"] - c["startup_s"]
        c["items_per_s_net"][stage] = round(n_items[stage] / net, 2) if net > 0 else None
        log(
            f"{stage}: rc {res['rc']}, {res['s']:.1f} s, {c['items_per_s'][stage]} {UNITS[stage]}/s, "
            f"peak GPU {res['peak_gpu_gb']:.1f} GB, host {res['peak_host_gb']:.1f} GB"
        )
        save()
        if res["rc"] != 0:
            log(tail(logf))
            break
    c["peak_gpu_gb"] = max(c["peak_gpu_gb_by_stage"].values())
    metrics = repo / "metrics" / "evaluate.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        c["evaluate_ms_per_image"] = {k: v.get("ms_per_image") for k, v in m.items()}
    c["full_items"] = items(full)
    c["full_params_evaluate"] = full["evaluate"]
    c["training_steps_reduced"] = training_steps(params)
    c["training_steps_full"] = training_steps(full)
    save()


def part_probe(out: Path, r: dict, tiny: bool, timeout_s: float, save) -> None:
    """benchmarks/gpu_probe.py in a child process, its results under cifar_pipeline.probe."""
    res_path = out / "probe.json"
    log(f"probe: the hot loops under each math mode (time box {timeout_s:.0f} s)")
    # The probe stops starting variants at its budget; the time box kills it 20 s later.
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.gpu_probe",
        "--out",
        str(res_path),
        "--budget-s",
        str(max(timeout_s - 20, 1)),
    ]
    res = run_timed(cmd + (["--tiny"] if tiny else []), ROOT, timeout_s, out / "probe.log")
    probe = json.loads(res_path.read_text()) if res_path.exists() else {}
    probe.update(rc=res["rc"], wall_s=round(res["s"], 1), peak_gpu_gb_polled=round(res["peak_gpu_gb"], 2))
    r["cifar_pipeline"]["probe"] = probe
    log(f"probe: rc {res['rc']}, {res['s']:.0f} s")
    save()


def part_uncertainty_50k(out: Path, r: dict, n: int, d: int, replicates: int, timeout_s: float, save) -> None:
    """benchmarks/evaluate_50k.py on n vs n synthetic features, in a child process so that its peaks are its own."""
    res_path = out / "uncertainty.json"
    log(
        f"uncertainty: metrics and standard errors of {n:,} vs {n:,} features ({d}-d), {replicates} replicates "
        f"(time box {timeout_s:.0f} s)"
    )
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.evaluate_50k",
        "--out",
        str(res_path),
        "--n",
        str(n),
        "--d",
        str(d),
        "--replicates",
        str(replicates),
    ]
    res = run_timed(cmd, ROOT, timeout_s, out / "uncertainty.log")
    u = {"rc": res["rc"], "wall_s": round(res["s"], 1), "peak_gpu_gb_polled": round(res["peak_gpu_gb"], 2)}
    if res_path.exists():
        u.update(json.loads(res_path.read_text()))
    r["cifar_pipeline"]["evaluate_50k"] = u
    log(f"uncertainty: rc {res['rc']}, {u.get('s', res['s']):.0f} s, peak host {u.get('peak_host_gb', 0):.1f} GB")
    save()


def flops_per_item(r: dict) -> None:
    """Forward FLOPs per image of the teacher and the student (torch's FLOP counter, batch 1)."""
    import torch

    from lines_model.config import parse_params

    cpu = torch.device("cpu")
    r["cifar_pipeline"]["forward_gflop_per_image"] = {
        "teacher": forward_gflop(cifar_teacher(cpu), cpu),
        "student": forward_gflop(cifar_student(parse_params(full_params()).student, cpu), cpu),
    }


# --------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="folder of the run's files")
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="instead of running: put these runs' gpu_pipeline.json into benchmarks/results.json",
    )
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)} (default: all)")
    ap.add_argument("--scale", type=float, default=0.005)
    ap.add_argument("--budget-s", type=float, default=560)
    ap.add_argument("--tiny", action="store_true", help="CPU dry run at toy sizes (nothing measured)")
    ap.add_argument("--skip-tests", action="store_true")
    a = ap.parse_args(argv)
    if a.merge:
        merge(a.merge, ROOT / "benchmarks" / "results.json")
        return
    if a.out is None:
        ap.error("--out is required")
    parts = tuple(a.parts.split(","))
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"--parts: unknown {', '.join(unknown)} (choose from {', '.join(PARTS)})")
    a.out.mkdir(parents=True, exist_ok=True)
    import torch

    r = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (dry run)",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "host_cpu_count": os.cpu_count(),
        "cifar_pipeline": {},
    }
    path = a.out / "gpu_pipeline.json"

    def save():
        path.write_text(json.dumps(r, indent=1))

    save()
    flops_per_item(r)
    save()
    c = r["cifar_pipeline"]
    if "cuda_tests" in parts:
        part_tests(a.out, r, ["tests/test_cuda.py"], "cuda_tests", 90, env={"LINES_MODEL_TEST_CUDA": "1"})
        save()
    if "pipeline" in parts:
        part_pipeline(a.out, r, a.scale, a.tiny, a.budget_s, save, later=parts[parts.index("pipeline") + 1 :])
    if "evaluate_50k" in parts:
        n = 500 if a.tiny else 50_000
        reserve = EXPECTED_S["probe"] if "probe" in parts and not a.tiny else 0
        timeout = 60 if a.tiny else left(a.budget_s) - reserve
        part_uncertainty_50k(a.out, r, n, 64 if a.tiny else 2048, 8 if a.tiny else 200, timeout, save)
    if "probe" in parts:
        part_probe(a.out, r, a.tiny, min(left(a.budget_s), 30 if a.tiny else 10_000), save)
    if "stage_s" in c:
        estimate(c)
        save()
    if "unit" in parts:
        # `make test`'s suite and command (CUDA hidden by tests/conftest.py), a worker per core.
        part_tests(a.out, r, ["-n", "auto"], "make_test", max(left(a.budget_s), 10))
        c["make_test"] = r["make_test"]["summary"]
        save()
    log(json.dumps(c.get("full_run_estimate_s_by_stage")))
    log(f"full run estimate: {c.get('full_run_estimate_h')} h")


if __name__ == "__main__":
    main()
