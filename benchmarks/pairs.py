"""Section 1: pair throughput at equal fidelity, against the original DDIM-200 loop, on the same noise.

Fidelity is the median per-sample PSNR against a converged reference solve. The DPM-Solver++
setting of the `teacher_pairs` stage is the cheapest one that reaches the original loop's PSNR
(benchmarks.calibration); it is then timed against the original loop in alternating rounds
(lines_model.timing.time_interleaved), through generation.generate in one process, and through
generation.generate in two processes under torch.distributed.run (child "gen").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.common import BENCH_SEED, BENCH_STREAM, ROOT, child_command, log, note_timing, run_group, timed_once
from benchmarks.original import original_loop


def child_gen(argv: list[str]) -> None:
    """One rank of the 2-process pair generation (started by torch.distributed.run)."""
    p = argparse.ArgumentParser()
    p.add_argument("--teacher", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--order", type=int, default=2)
    p.add_argument("--lambda-min", type=float, default=None)
    p.add_argument("--shard-size", type=int, required=True)
    p.add_argument("--result", required=True)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from lines_model import generation, noise, runtime
    from lines_model.samplers import dpmsolver_pp
    from lines_model.teachers import load_teacher

    st = runtime.state()
    teacher = load_teacher(a.teacher, device=st.device)
    # Warm-up at the timed batch size, so that both ranks start timing with allocations done.
    n = noise.noise_for(range(a.shard_size), teacher.sample_shape, BENCH_SEED + 1, BENCH_STREAM)
    dpmsolver_pp(teacher.unet, teacher.scheduler_config, n, 2, order=a.order)
    st.wait_for_everyone()
    t0 = time.perf_counter()
    generation.generate(
        teacher, a.out, count=a.count, stream=BENCH_STREAM, sampler="dpmsolver++", steps=a.steps, order=a.order,
        lambda_min=a.lambda_min, seed=BENCH_SEED, batch_size=a.shard_size, shard_size=a.shard_size, rank=st.process_index,
        world_size=st.num_processes, barrier=st.wait_for_everyone, desc="2-proc pairs",
    )
    seconds = time.perf_counter() - t0  # generate ends with a barrier: this is the slowest rank's time
    if st.is_main_process:
        Path(a.result).write_text(json.dumps({"seconds": seconds, "world_size": st.num_processes, "threads": torch.get_num_threads()}))


CHILDREN = {"gen": child_gen}


def calibrate(unet, cfg: dict, noise, reference, original, S: dict, lambda_min) -> dict:
    """Choose `pairs_steps`/`pairs_order`: the cheapest DPM-Solver++ candidate whose median PSNR on the
    first `candidate_count` noises reaches the original loop's on the same noises."""
    from benchmarks.calibration import calibrate_steps, median_psnr

    m = S["candidate_count"]
    target = median_psnr(original[:m], reference[:m])
    # Fewest steps first; at equal steps (equal cost) the orders in the order given.
    candidates = [(order, steps) for steps in S["candidate_steps"] for order in S["candidate_orders"]]

    def on_trial(t) -> None:
        log(f"pairs: candidate DPM-Solver++ order {t.order} {t.steps:3d} steps: median PSNR {t.psnr_db:6.2f} dB "
            f"(original {target:6.2f} dB, {m} noises)")

    c = calibrate_steps(unet, cfg, noise[:m], target_psnr_db=target, reference=reference[:m], candidates=candidates,
                        lambda_min=lambda_min, on_trial=on_trial)
    chosen = c.chosen or c.best  # none reached the original: the most accurate one, flagged below
    return {
        "pairs_candidates_psnr": {f"order{t.order}_{t.steps}": t.psnr_db for t in c.trials},
        "pairs_candidates": [{"order": t.order, "steps": t.steps, "psnr_db": t.psnr_db} for t in c.trials],
        "pairs_candidates_target_psnr": target,
        "pairs_candidates_count": m,
        "pairs_equal_fidelity": c.met,
        "pairs_steps": chosen.steps,
        "pairs_order": chosen.order,
        "pairs_sampler": f"dpmsolver++ order {chosen.order}, {chosen.steps} steps, lambda_min {lambda_min}",
        "pairs_lambda_min": lambda_min,
    }


def bench_pairs(teacher, teacher_dir: Path, work: Path, S: dict, threads: int, progress: bool, r: dict | None = None, save=lambda: None) -> dict:
    """Fills `r` (a new dict by default) measurement by measurement, calling `save()` after each, so
    that a run cut short keeps what it measured; returns it."""
    import torch

    from lines_model import noise as noise_mod
    from benchmarks.calibration import median_psnr
    from lines_model.config import load_params
    from lines_model.samplers import dpmsolver_pp

    unet, cfg = teacher.unet, teacher.scheduler_config
    # Our sampler is DPM-Solver++ on params.yaml's log-SNR grid; the reference keeps the plain grid
    # (lambda_min None), so that it shares no choice with the candidates but the solver family.
    lam = load_params(ROOT / "params.yaml").pairs.lambda_min
    N = S["n_noise"]
    noise = noise_mod.noise_for(range(N), teacher.sample_shape, BENCH_SEED, BENCH_STREAM)
    r = {} if r is None else r

    # Warm-up (allocator, kernels) at the batch sizes used below.
    with torch.no_grad():
        for b in sorted({S["original_batch"], N, S["candidate_count"]}):
            unet(noise[:b], torch.tensor(500))

    log(f"pairs: reference DPM-Solver++ order 2, {S['reference_steps']} steps, on {N} noises")
    ref = dpmsolver_pp(unet, cfg, noise, S["reference_steps"], order=2, progress=progress)
    k = S["reference_check_count"]
    log(f"pairs: convergence check, {S['reference_check_steps']} steps on the first {k} noises")
    ref_half = dpmsolver_pp(unet, cfg, noise[:k], S["reference_check_steps"], order=2, progress=progress)
    r["reference_steps"] = S["reference_steps"]
    r["reference_check_steps"] = S["reference_check_steps"]
    r["reference_check_count"] = k
    r["reference_self_psnr"] = median_psnr(ref_half, ref[:k])
    save()

    m = S["candidate_count"]
    log(f"pairs: original loop, DDIM {S['original_steps']} steps, on the first {m} noises: the calibration's target")
    r["pairs_sampler_original"] = f"ddim eta=0, {S['original_steps']} steps, batch {S['original_batch']}, fp32"
    target = original_loop(unet, cfg, noise[:m], S["original_steps"], S["original_batch"])
    r.update(calibrate(unet, cfg, noise, ref, target, S, lam))
    save()
    ours = time_against_original(unet, cfg, noise, ref, S, r, lam, threads)
    save()

    c1 = _generate_1proc(teacher, work / "gen-1proc", noise, ours, r, lam)
    save()
    _generate_2proc(teacher_dir, work, noise, c1, r, lam)
    r["pairs_speedup_2proc"] = r["pairs_per_s_2proc"] / r["pairs_per_s_original"]
    r["pairs_count"] = N
    return r


def time_against_original(unet, cfg: dict, noise, ref, S: dict, r: dict, lam, threads: int):
    """The original loop and our sampler at `r`'s pairs_steps and pairs_order, each on all of `noise`,
    in `pairs_rounds` alternating rounds; fills their rates, PSNRs against `ref`, the speedup with
    its spread, and the timing's verdict into `r`. Returns our images."""
    from benchmarks.calibration import median_psnr
    from lines_model.samplers import dpmsolver_pp
    from lines_model.timing import time_interleaved

    N, steps, order = len(noise), r["pairs_steps"], r["pairs_order"]
    # Timed at different moments, the two would each take whatever load the machine had then, and the
    # ratio with them: they alternate instead, in balanced rounds, each round giving one ratio.
    log(f"pairs: original loop and DPM-Solver++ {steps} steps, each on {N} noises (batch {N}, {threads} threads), "
        f"interleaved in {S['pairs_rounds']} rounds")
    last = {}  # each sampler's images of its last round, for its PSNR

    def keep(name, fn):
        def call():
            last[name] = fn()
        return call

    # No warm-up calls: the network ran at these batch sizes before, and each call lasts seconds to minutes.
    t = time_interleaved({
        "original": keep("original", lambda: original_loop(unet, cfg, noise, S["original_steps"], S["original_batch"])),
        "ours": keep("ours", lambda: dpmsolver_pp(unet, cfg, noise, steps, order=order, lambda_min=lam)),
    }, images_per_call=N, rounds=S["pairs_rounds"], warmup=0, reference="original")
    r["pairs_per_s_original"] = 1000 / t["original"].ms_per_image
    r["psnr_vs_reference_original"] = median_psnr(last["original"], ref)
    r["pairs_per_s"] = 1000 / t["ours"].ms_per_image
    r["psnr_vs_reference"] = median_psnr(last["ours"], ref)
    r["pairs_speedup"] = t["ours"].speedup
    r["pairs_speedup_iqr"] = t["ours"].speedup_iqr
    r["pairs_rounds"] = t["ours"].rounds
    r["pairs_threads"] = threads
    note_timing(r, "pairs", t)
    return last["ours"]


def _generate_1proc(teacher, out: Path, noise, ours, r: dict, lam):
    """The real teacher_pairs path: generate() (seeded noise, sampler, shard files, hashes), one
    process, the work split into two shards as the 2-process run splits it. Returns its images."""
    import torch

    from lines_model import pairs
    from lines_model.generation import generate

    N, half = len(noise), len(noise) // 2
    log(f"pairs: generation.generate, 1 process, {N} pairs in 2 shards of {half}")
    _, gen1_s = timed_once(lambda: generate(
        teacher, out, count=N, stream=BENCH_STREAM, sampler="dpmsolver++", steps=r["pairs_steps"], order=r["pairs_order"],
        lambda_min=lam, seed=BENCH_SEED, batch_size=half, shard_size=half, desc="1-proc pairs",
    ))
    r["pairs_per_s_generate_1proc"] = N / gen1_s
    n1, c1 = pairs.PairStore(out).take(range(N))
    if not torch.equal(n1, noise):
        raise RuntimeError("generate() did not use the benchmark noise")
    r["pairs_generate_max_abs_diff"] = float((c1 - ours.clamp(-1, 1)).abs().max())
    return c1


def _generate_2proc(teacher_dir: Path, work: Path, noise, c1, r: dict, lam) -> None:
    """The same generate() call under torch.distributed.run, 2 processes x 1 thread, one shard each."""
    import torch

    from lines_model import pairs

    N, half = len(noise), len(noise) // 2
    log(f"pairs: generation.generate under torch.distributed.run, 2 processes x 1 thread, {N} pairs")
    gen2 = work / "gen-2proc"
    res = work / "gen-2proc.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        *child_command("gen", "--teacher", str(teacher_dir), "--out", str(gen2), "--count", str(N),
                       "--steps", str(r["pairs_steps"]), "--order", str(r["pairs_order"]),
                       *(["--lambda-min", str(lam)] if lam is not None else []), "--shard-size", str(half), "--result", str(res)),
    ]
    _, wall = timed_once(lambda: run_group(cmd, env=env, timeout_s=600))
    g2 = json.loads(res.read_text())
    if g2["world_size"] != 2:
        raise RuntimeError(f"the 2-process run had world size {g2['world_size']}")
    r["pairs_per_s_2proc"] = N / g2["seconds"]
    r["pairs_2proc_wall_s_with_startup"] = wall
    r["pairs_2proc_threads_per_process"] = g2["threads"]
    n2, c2 = pairs.PairStore(gen2).take(range(N))
    if not torch.equal(n2, noise):
        raise RuntimeError("the 2-process run did not use the benchmark noise")
    r["pairs_2proc_max_abs_diff_vs_1proc"] = float((c2 - c1).abs().max())
