"""The full CIFAR-10 run's cost, estimated from a reduced run's figures (benchmarks/gpu_pipeline.py)
and the hot loops' (benchmarks/gpu_probe.py); and the filing of those figures into
benchmarks/results.json (`merge`).

Pure arithmetic on the runs' JSON: nothing here runs a network, so it is checked on constructed
timings (tests/test_bench_smoke.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.cifar import STAGES, full_params

# Ceilings of one H200 (SXM) by the vendor's datasheet, dense: plain fp32 on the CUDA cores, and
# bf16 on the tensor cores (about 790 measured on this kind of machine for an 8192^3 product).
CEILING_TFLOPS = {"fp32": 67.0, "tf32": 495.0, "bf16": 990.0}


def forward_units(c: dict) -> dict[str, float]:
    """Forward passes of the teacher-sized network per item, or GFLOP per item, per stage: a pair is
    `steps` teacher forwards; a training sample is a student forward and backward (about 3
    forwards); a PD sample is two teacher forwards for the target plus a forward and backward of the
    teacher-sized student."""
    g = c["forward_gflop_per_image"]
    steps = c["params_reduced"]["pairs"]["steps"]
    return {
        "teacher_pairs": steps * g["teacher"],
        "train_lines": 3 * g["student"],
        "train_baseline": 3 * g["student"],
        "distill_progressive": 5 * g["teacher"],
    }


def estimate(c: dict) -> None:
    """Each stage's full-run seconds: its process start, plus the full run's items at the rate
    measured net of that start. The evaluation: if it ran, its generation and features scaled by
    images, plus eight generators' metrics and standard errors at 50,000 vs 50,000 as measured on
    their own; if it was cut, a lower bound from the teacher's measured rate (its generators'
    network evaluations only, features and metrics left out), marked as such."""
    est = {}
    for stage, s in c["stage_s"].items():
        if c["stage_rc"].get(stage) != 0:
            continue
        rate = c["items_per_s_net"].get(stage)
        # A stage shorter than a process start (the subset) is costed at its measured time.
        est[stage] = c["startup_s"] + c["full_items"][stage] / rate if rate else s
    c["full_run_estimate_s_by_stage_rate_scaled"] = {k: round(v) for k, v in est.items()}
    est.update(steps_and_overhead(c))
    u = c.get("evaluate_50k", {})
    notes = {}
    if "evaluate" in est and "s" in u:
        est["evaluate"] += 8 * u["s"]
    elif c["stage_rc"].get("evaluate") != 0 and c["stage_rc"].get("teacher_pairs") == 0:
        g, e, steps = c["forward_gflop_per_image"], c["full_params_evaluate"], c["params_reduced"]["pairs"]["steps"]
        images = e["count"] + e["data_count"]
        teacher_nfe = steps + 32 + sum(e["pd_steps"])  # teacher, teacher_ddim32, the PD students
        student_nfe = sum(e["lines_steps"]) + 1  # Lines at its steps, the baseline's one step
        forwards = images * (teacher_nfe + student_nfe * g["student"] / g["teacher"])
        est["evaluate"] = c["startup_s"] + forwards / (c["items_per_s_net"]["teacher_pairs"] * steps)
        notes["evaluate"] = (
            "lower bound: the generators' network evaluations at the pairs' measured rate; "
            "Inception features and the metrics with standard errors not included"
        )
    flops = forward_units(c)
    c["achieved_tflops"] = {
        k: round(c["items_per_s_net"][k] * f / 1e3, 1) for k, f in flops.items() if c["items_per_s_net"].get(k)
    }
    c["ceiling_tflops"] = CEILING_TFLOPS
    c["full_run_estimate_s_by_stage"] = {k: round(v) for k, v in est.items()}
    c["full_run_estimate_notes"] = notes
    c["full_run_estimate_h"] = round(sum(est.values()) / 3600, 2) if len(est) == len(STAGES) else None
    c["hot_loops_full_run_s"] = hot_loops(c)


def steps_and_overhead(c: dict) -> dict[str, float]:
    """With the probe's seconds per step (fp32, as the profile trains): each training stage's reduced
    run split into its steps and a per-epoch (per-round for PD) remainder (loader start, checkpoints,
    EMA copies, logging), and the full run costed as steps x step time + epochs x that remainder.
    At reduced scale an epoch is one or two steps, so scaling the stage's rate by samples would
    count the per-epoch remainder hundreds of times over."""
    probe = c.get("probe", {}).get("per_call", {})
    reduced, full = c.get("training_steps_reduced"), c.get("training_steps_full")
    if not probe or not reduced:
        return {}
    est, split = {}, {}
    for stage, (steps, epochs, loop) in reduced.items():
        step_ms = probe.get(loop, {}).get("fp32", {}).get("ms")
        if c["stage_rc"].get(stage) != 0 or step_ms is None:
            continue
        net = c["stage_s"][stage] - c["startup_s"]
        per_epoch = max(0.0, (net - steps * step_ms / 1e3) / epochs)
        f_steps, f_epochs, _ = full[stage]
        est[stage] = c["startup_s"] + f_steps * step_ms / 1e3 + f_epochs * per_epoch
        split[stage] = {
            "step_ms": round(step_ms, 2),
            "steps_reduced": steps,
            "epochs_reduced": epochs,
            "per_epoch_s": round(per_epoch, 3),
            "steps_full": f_steps,
            "epochs_full": f_epochs,
        }
    c["training_split"] = split
    return est


def hot_loops(c: dict) -> dict[str, dict[str, float]]:
    """The full run's seconds in its three hot loops alone, under each math mode the probe timed:
    the pairs' teacher forwards, the students' steps, PD's steps. Lower bounds of those stages."""
    probe = c.get("probe", {})
    full = c.get("training_steps_full")
    if not probe.get("items_per_s") or not full:
        return {}
    images = c["full_items"]["teacher_pairs"] * c["params_reduced"]["pairs"]["steps"]
    out = {"teacher_pairs": {v: images / rate for v, rate in probe["items_per_s"].get("teacher_forward", {}).items()}}
    for stage in ("train_lines", "train_baseline", "distill_progressive"):
        steps, _, loop = full[stage]
        out[stage] = {v: steps * t["ms"] / 1e3 for v, t in probe["per_call"].get(loop, {}).items()}
    return {k: {v: round(x) for v, x in d.items()} for k, d in out.items()}


def merge(results: list[Path], into: Path) -> None:
    """Puts the figures of one or more runs (of different parts, later ones winning) under
    `gpu.cifar_pipeline` of the benchmark results (`into`), with the estimate recomputed, keeping
    every other key."""
    from lines_model import atomic

    r = {}
    for path in results:
        run = json.loads(path.read_text())
        c = r.get("cifar_pipeline", {})
        r.update(run)
        r["cifar_pipeline"] = c | run.get("cifar_pipeline", {})
    c = r["cifar_pipeline"]
    c.setdefault("full_params_evaluate", full_params()["evaluate"])
    if "stage_s" in c:  # a run of the pipeline part is among them
        estimate(c)
    c.update(
        {
            "device": r["device"],
            "date": r["date"],
            "torch": r["torch"],
            "cuda_tests": r.get("cuda_tests", {}).get("summary"),
            "make_test": r.get("make_test", {}).get("summary"),
        }
    )
    res = json.loads(into.read_text())
    res.setdefault("gpu", {})["cifar_pipeline"] = c
    atomic.write_json(into, res)
