"""Benchmarks: pair throughput at equal fidelity, bounded training memory, one-step speedup, GPU.

    make bench                                   # = python benchmarks/run.py (sized for < 15 min on 2 idle cores)
    python benchmarks/run.py --quick --out /tmp/bench_quick.json    # smoke version, under a minute
    python benchmarks/run.py --skip-memory       # no 12 GB of temporary files

Writes benchmarks/results.json atomically (after every section, with "complete": false until
the end) and prints a markdown table. Every number in it is measured by this run; see
benchmarks/README.md for what each key means and how it is measured.

The same file is also the child program of its subprocess measurements (`--child KIND ...`):
the 2-process pair generation under torch.distributed.run and the peak-RSS children of the
memory section, each started fresh so that its memory and timing are its own.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results.json"

# Noise of the throughput benchmark: its own seed and stream, disjoint from the pipeline's
# (seed 0, streams TRAIN=0 and HELDOUT=1).
BENCH_SEED, BENCH_STREAM = 1234, 7

FULL = dict(
    n_noise=256,  # noises every teacher sampler runs on
    original_steps=200,  # DDIM steps of the original loop
    original_batch=256,  # the original sampled in batches of 256
    reference_steps=500,  # converged DPM-Solver++ solve
    reference_check_steps=250,  # the same solve at half the steps: convergence check
    reference_check_count=128,  # noises of the convergence check
    candidates=(10, 12, 15, 18, 20, 22, 25, 28, 30, 35, 40, 50, 60, 80, 100),  # DPM-Solver++ step counts tried, smallest first
    candidate_count=64,  # noises the candidates' PSNR is measured on
    onestep_batches=(16, 256),
    onestep_repeats=3,
    mem_pairs=250_000,
    mem_shard=5_000,  # as profiles/cifar10.yaml
    mem_shape=(3, 32, 32),
    mem_batch=256,
    mem_train_steps=5,
    mem_microbatch=32,  # training steps accumulate the batch of 256 over micro-batches (see README)
    gpu_batch=256,
    gpu_small_batch=16,
    gpu_ddim_steps=200,
    gpu_dpm_steps=20,
    gpu_ddim_repeats=2,
    gpu_dpm_repeats=3,
    gpu_dpm_order=3,
    gpu_train_steps=30,  # per epoch; 2 epochs timed after one of warm-up
    gpu_num_workers=4,
    gpu_compile=True,
    gpu_speed_repeats=5,
)
QUICK = dict(
    FULL,
    n_noise=32,
    original_steps=30,
    original_batch=32,
    reference_steps=60,
    reference_check_steps=30,
    reference_check_count=8,
    candidates=(4, 6, 8, 10, 15, 20, 30),
    candidate_count=16,
    onestep_batches=(16, 32),
    onestep_repeats=1,
    mem_pairs=2_000,
    mem_shard=500,
    mem_batch=128,
    mem_train_steps=1,
    gpu_ddim_repeats=1,
    gpu_dpm_repeats=1,
    gpu_train_steps=2,
    gpu_num_workers=0,
    gpu_compile=False,
    gpu_speed_repeats=2,
)

_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", flush=True)


def vm_hwm_mb() -> float:
    """Peak resident set of this process (VmHWM). Unlike getrusage's ru_maxrss it is not inherited
    from the parent's address space across fork/exec, so a fresh child reports only its own peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def vm_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


# --------------------------------------------------------------------------------------------
# Children (run in fresh processes)
# --------------------------------------------------------------------------------------------


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


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_train_mem(argv: list[str]) -> None:
    """Open a PairStore, iterate one shuffled epoch with a DataLoader, train a tiny student on the first batches."""
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--train-steps", type=int, required=True)
    p.add_argument("--microbatch", type=int, required=True)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--result", required=True)
    a = p.parse_args(argv)
    import torch
    import torch.nn.functional as F

    if a.threads:
        torch.set_num_threads(a.threads)
    from diffusers import UNet2DModel

    from lines_model.pairs import PairStore
    from lines_model.training import EpochSampler

    torch.manual_seed(0)
    store = PairStore(a.pairs)
    c, h, _ = store.manifest.sample_shape
    model = UNet2DModel(
        sample_size=h, in_channels=c, out_channels=c, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(store, batch_size=a.batch, sampler=EpochSampler(len(store), seed=0), num_workers=0)
    rss_setup = vm_rss_mb()
    items = batches = 0
    train_s = 0.0
    checksum = 0.0
    rss_after_train = peak_train = None
    reset = False
    t0 = time.perf_counter()
    for noise_b, clean_b in loader:
        if batches < a.train_steps:
            # One optimizer step on the whole batch, its gradient accumulated over micro-batches: the
            # same update, with CPU activation memory of a micro-batch (on a GPU they are not in RSS).
            ts = time.perf_counter()
            g = torch.Generator().manual_seed(batches)
            t = torch.rand(len(noise_b), generator=g)
            for i in range(0, len(noise_b), a.microbatch):
                sl = slice(i, i + a.microbatch)
                tt = t[sl].view(-1, 1, 1, 1)
                x = tt * clean_b[sl] + (1 - tt) * noise_b[sl]
                loss = F.mse_loss(model(x, t[sl] * 999).sample, clean_b[sl], reduction="sum") / clean_b.numel()
                loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            train_s += time.perf_counter() - ts
            if batches + 1 == a.train_steps:
                rss_after_train, peak_train = vm_rss_mb(), vm_hwm_mb()
                reset = _reset_peak_rss()
        checksum += float(clean_b[:, 0, 0, 0].sum())  # touch the data
        items += len(noise_b)
        batches += 1
    epoch_s = time.perf_counter() - t0
    hwm = vm_hwm_mb()  # since the reset (when it worked): the peak of the data-only rest of the epoch
    Path(a.result).write_text(json.dumps({
        "peak_rss_mb": max(hwm, peak_train or 0.0), "peak_rss_train_steps_mb": peak_train, "rss_after_setup_mb": rss_setup,
        "rss_after_train_steps_mb": rss_after_train, "epoch_rest_peak_rss_mb": hwm if reset else None,
        "rss_after_epoch_mb": vm_rss_mb(), "items": items, "batches": batches, "epoch_s": epoch_s,
        "train_steps_s": train_s, "data_only_epoch_s": epoch_s - train_s, "threads": torch.get_num_threads(),
        "checksum": checksum,
    }))


def child_build_pt(argv: list[str]) -> None:
    """The original's data file: every pair in two preallocated float32 tensors, one torch.save."""
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", required=True)
    p.add_argument("--pt", required=True)
    p.add_argument("--result", required=True)
    a = p.parse_args(argv)
    import numpy as np
    import torch

    from lines_model import pairs

    m = pairs.read_manifest(Path(a.pairs))
    shape = (m.count, *m.sample_shape)
    t0 = time.perf_counter()
    noise_t, clean_t = torch.empty(shape), torch.empty(shape)
    for j in range(m.num_shards):
        r = m.shard_range(j)
        for kind, dst in (("noise", noise_t), ("clean", clean_t)):
            src = np.load(Path(a.pairs) / f"{pairs.shard_name(j)}.{kind}.npy", mmap_mode="r")
            dst[r.start : r.stop].numpy()[...] = src
            del src
    fill_s = time.perf_counter() - t0
    tmp = Path(a.pt + ".part")
    torch.save({"noise": noise_t, "clean": clean_t}, tmp)
    os.replace(tmp, a.pt)
    Path(a.result).write_text(json.dumps({
        "peak_rss_mb": vm_hwm_mb(), "fill_s": fill_s, "save_s": time.perf_counter() - t0 - fill_s,
        "bytes": os.path.getsize(a.pt),
    }))


def child_load_pt(argv: list[str]) -> None:
    """The original's way of reading its pairs: torch.load of the whole file."""
    p = argparse.ArgumentParser()
    p.add_argument("--pt", required=True)
    p.add_argument("--result", required=True)
    a = p.parse_args(argv)
    import torch

    rss_before = vm_rss_mb()
    t0 = time.perf_counter()
    d = torch.load(a.pt, weights_only=True)
    load_s = time.perf_counter() - t0
    n = int(d["noise"].shape[0])
    checksum = float(d["clean"][:: max(1, n // 1000), 0, 0, 0].sum())
    Path(a.result).write_text(json.dumps({
        "peak_rss_mb": vm_hwm_mb(), "rss_before_load_mb": rss_before, "load_s": load_s, "items": n, "checksum": checksum,
    }))


CHILDREN = {"gen": child_gen, "train-mem": child_train_mem, "build-pt": child_build_pt, "load-pt": child_load_pt}


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


def run_child(args: list[str], result: Path, *, env: dict | None = None, poll_s: float = 0.02, timeout_s: float = 900) -> dict:
    """Run this file as a fresh child; also sample its RSS with psutil every `poll_s` seconds."""
    import psutil

    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args, "--result", str(result)]
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
# Section 1: pair throughput at equal fidelity
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


def _median_psnr(a, b) -> float:
    from lines_model.evaluation import per_sample_psnr, to_unit

    return float(per_sample_psnr(to_unit(a), to_unit(b)).median())


def original_loop(unet, scheduler_config: dict, noise, steps: int, batch: int):
    """A faithful re-creation of the original sampling loop: diffusers DDIM, eta 0, fp32, a plain loop."""
    import torch

    from lines_model.samplers import ddim_scheduler

    outs = []
    with torch.no_grad():
        for i in range(0, len(noise), batch):
            scheduler = ddim_scheduler(scheduler_config, steps)
            x = noise[i : i + batch].clone() * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                out = unet(x, t).sample
                x = scheduler.step(out, t, x, eta=0.0).prev_sample
            outs.append(x)
    return torch.cat(outs)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_pairs(teacher, teacher_dir: Path, work: Path, S: dict, threads: int, progress: bool) -> dict:
    import torch

    from lines_model import noise as noise_mod
    from lines_model import pairs
    from lines_model.config import load_params
    from lines_model.generation import generate
    from lines_model.samplers import dpmsolver_pp

    unet, cfg = teacher.unet, teacher.scheduler_config
    # Our sampler is DPM-Solver++ on params.yaml's log-SNR grid; the reference keeps the plain grid
    # (lambda_min None), so that it shares no choice with the candidates but the solver family.
    lam = load_params(ROOT / "params.yaml").pairs.lambda_min
    N = S["n_noise"]
    noise = noise_mod.noise_for(range(N), teacher.sample_shape, BENCH_SEED, BENCH_STREAM)
    r: dict = {}

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
    r["reference_self_psnr"] = _median_psnr(ref_half, ref[:k])

    log(f"pairs: original loop, DDIM {S['original_steps']} steps, batch {S['original_batch']}, fp32, on {N} noises")
    orig, orig_s = _timed(lambda: original_loop(unet, cfg, noise, S["original_steps"], S["original_batch"]))
    r["pairs_per_s_original"] = N / orig_s
    r["psnr_vs_reference_original"] = _median_psnr(orig, ref)
    r["pairs_sampler_original"] = f"ddim eta=0, {S['original_steps']} steps, batch {S['original_batch']}, fp32"

    m = S["candidate_count"]
    target = _median_psnr(orig[:m], ref[:m])
    cands: dict[str, float] = {}
    chosen = None
    chosen_order = 2
    for steps in S["candidates"]:  # fewest NFE first; at equal NFE both solver orders are tried
        for order in (2, 3):
            v = _median_psnr(dpmsolver_pp(unet, cfg, noise[:m], steps, order=order, lambda_min=lam), ref[:m])
            cands[f"order{order}_{steps}"] = v
            log(f"pairs: candidate DPM-Solver++ order {order} {steps:3d} steps: median PSNR {v:6.2f} dB (original {target:6.2f} dB, {m} noises)")
            if v >= target:
                chosen, chosen_order = steps, order
                break
        if chosen is not None:
            break
    r["pairs_candidates_psnr"] = cands
    r["pairs_candidates_target_psnr"] = target
    r["pairs_equal_fidelity"] = chosen is not None
    if chosen is None:  # no candidate reached the original: report the most accurate one, flagged
        best = max(cands, key=cands.get)
        chosen_order, chosen = int(best[5]), int(best.split("_")[1])
    r["pairs_steps"] = chosen
    r["pairs_order"] = chosen_order
    r["pairs_sampler"] = f"dpmsolver++ order {chosen_order}, {chosen} steps, lambda_min {lam}"
    r["pairs_lambda_min"] = lam

    log(f"pairs: timing DPM-Solver++ {chosen} steps on {N} noises (batch {N}, {threads} threads)")
    ours, ours_s = _timed(lambda: dpmsolver_pp(unet, cfg, noise, chosen, order=chosen_order, lambda_min=lam))
    r["pairs_per_s"] = N / ours_s
    r["psnr_vs_reference"] = _median_psnr(ours, ref)
    r["pairs_speedup"] = r["pairs_per_s"] / r["pairs_per_s_original"]
    r["pairs_threads"] = threads

    # The real teacher_pairs path: generate() (seeded noise, sampler, shard files, hashes), one
    # process, the work split into two shards as the 2-process run splits it.
    half = N // 2
    log(f"pairs: generation.generate, 1 process, {N} pairs in 2 shards of {half}")
    gen1 = work / "gen-1proc"
    _, gen1_s = _timed(lambda: generate(
        teacher, gen1, count=N, stream=BENCH_STREAM, sampler="dpmsolver++", steps=chosen, order=chosen_order, lambda_min=lam, seed=BENCH_SEED,
        batch_size=half, shard_size=half, desc="1-proc pairs",
    ))
    r["pairs_per_s_generate_1proc"] = N / gen1_s
    store = pairs.PairStore(gen1)
    n1, c1 = store.take(range(N))
    if not torch.equal(n1, noise):
        raise RuntimeError("generate() did not use the benchmark noise")
    r["pairs_generate_max_abs_diff"] = float((c1 - ours.clamp(-1, 1)).abs().max())

    log(f"pairs: generation.generate under torch.distributed.run, 2 processes x 1 thread, {N} pairs")
    gen2 = work / "gen-2proc"
    res = work / "gen-2proc.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(Path(__file__).resolve()), "--child", "gen", "--teacher", str(teacher_dir), "--out", str(gen2),
        "--count", str(N), "--steps", str(chosen), "--order", str(chosen_order),
        *(["--lambda-min", str(lam)] if lam is not None else []), "--shard-size", str(half), "--result", str(res),
    ]
    t0 = time.perf_counter()
    run_group(cmd, env=env, timeout_s=600)
    wall = time.perf_counter() - t0
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
    r["pairs_speedup_2proc"] = r["pairs_per_s_2proc"] / r["pairs_per_s_original"]
    r["pairs_count"] = N
    return r


# --------------------------------------------------------------------------------------------
# Section 3: one-step speedup on this machine
# --------------------------------------------------------------------------------------------


def _median_time(fn, repeats: int, sync=lambda: None) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_onestep(teacher, S: dict) -> dict:
    import torch

    from lines_model.config import load_params
    from lines_model.samplers import lines_sample, teacher_sampler
    from lines_model.students import build_student, count_parameters, load_student

    params = load_params(ROOT / "params.yaml")
    pc = params.pairs
    if (ROOT / "models" / "lines" / "diffusion_pytorch_model.safetensors").exists():
        student, _ = load_student(ROOT / "models" / "lines")
        source = "models/lines"
    else:
        torch.manual_seed(0)
        student = build_student(params.student, teacher.sample_shape).eval().requires_grad_(False)
        source = "params.yaml student, random init (models/lines not trained yet)"
    sample = teacher_sampler(pc.sampler)
    nfe = pc.steps
    r: dict = {
        "onestep_student": source,
        "onestep_student_params": count_parameters(student),
        "onestep_teacher_sampler": f"{pc.sampler}" + (f" order {pc.order}" if pc.sampler == "dpmsolver++" else "") + f", {nfe} steps",
        "onestep_batches": list(S["onestep_batches"]),
        "onestep_repeats": S["onestep_repeats"],
    }
    big = max(S["onestep_batches"])
    noise = torch.randn((big, *teacher.sample_shape), generator=torch.Generator().manual_seed(0))
    for b in S["onestep_batches"]:
        n = noise[:b]
        log(f"one-step: batch {b}: teacher {r['onestep_teacher_sampler']} vs student 1 step")
        t_teacher = _median_time(lambda: sample(teacher.unet, teacher.scheduler_config, n, pc.steps, order=pc.order, lambda_min=pc.lambda_min), S["onestep_repeats"])
        t_student = _median_time(lambda: lines_sample(student, n, 1), max(3, S["onestep_repeats"]))
        key = "b16" if b == min(S["onestep_batches"]) else "b256"
        r[f"onestep_teacher_ms_per_image_{key}"] = t_teacher * 1000 / b
        r[f"onestep_student_ms_per_image_{key}"] = t_student * 1000 / b
        r[f"onestep_speedup_{key}"] = t_teacher / t_student
    # Per-call ceiling at the large batch: what the speedup would be if the teacher's sampler
    # cost nothing but its network calls.
    n = noise[:big]
    tt = torch.full((), 500)
    with torch.no_grad():
        call_t = _median_time(lambda: teacher.unet(n, tt), max(3, S["onestep_repeats"]))
        call_s = _median_time(lambda: student(n, torch.zeros(())), max(3, S["onestep_repeats"]))
    r["onestep_teacher_call_ms_b256"] = call_t * 1000
    r["onestep_student_call_ms_b256"] = call_s * 1000
    r["onestep_speedup_ceiling"] = nfe * call_t / call_s
    return r


# --------------------------------------------------------------------------------------------
# Section 2: bounded training memory
# --------------------------------------------------------------------------------------------


def write_synthetic_pairs(folder: Path, count: int, shard: int, shape: tuple[int, ...], progress: bool) -> None:
    """`count` random pairs in the shard format, generated shard by shard (writer memory: one shard)."""
    import torch
    from tqdm.auto import tqdm

    from lines_model import pairs

    m = pairs.Manifest(
        teacher="synthetic", teacher_sha256="none", sampler="synthetic", steps=0, order=0, seed=0, stream=0,
        count=count, shard_size=shard, sample_shape=list(shape),
    )
    folder.mkdir(parents=True, exist_ok=True)
    for j in tqdm(range(m.num_shards), desc="synthetic shards", unit="shard", disable=not progress):
        n = len(m.shard_range(j))
        g = torch.Generator().manual_seed(j)
        noise = torch.randn((n, *shape), generator=g)
        clean = torch.rand((n, *shape), generator=g).mul_(2).sub_(1)
        m.shards[pairs.shard_name(j)] = pairs.write_shard(folder, j, noise, clean)
        del noise, clean
    pairs.write_manifest(folder, m)


def bench_memory(work: Path, S: dict, threads: int, progress: bool) -> dict:
    """Section 2. Everything it writes lives in `work`/memory, removed at the end, error or not."""
    mem = work / "memory"
    mem.mkdir(parents=True, exist_ok=True)
    try:
        return _bench_memory(mem, S, threads, progress)
    finally:
        shutil.rmtree(mem, ignore_errors=True)


def _bench_memory(work: Path, S: dict, threads: int, progress: bool) -> dict:
    import psutil

    count, shape = S["mem_pairs"], S["mem_shape"]
    pair_bytes = 2 * 4 * shape[0] * shape[1] * shape[2]  # noise + clean, float32
    need = 2 * count * pair_bytes  # the shards and the .pt file
    free = shutil.disk_usage(work).free
    if free < need * 1.1:
        raise RuntimeError(f"{work}: {free / 1e9:.1f} GB free, the memory benchmark needs {need * 1.1 / 1e9:.1f} GB")
    r: dict = {"memory_pairs": count, "memory_sample_shape": list(shape), "memory_shard_size": S["mem_shard"]}
    folder = work / "synthetic-pairs"
    log(f"memory: writing {count:,} synthetic pairs {shape} in shards of {S['mem_shard']:,}")
    t0 = time.perf_counter()
    write_synthetic_pairs(folder, count, S["mem_shard"], shape, progress)
    r["memory_write_s"] = time.perf_counter() - t0
    disk = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    r["bytes_per_pair"] = disk / count
    r["memory_disk_gb"] = disk / 1e9

    log(f"memory: child A: PairStore + DataLoader epoch (batch {S['mem_batch']}, shuffled) + {S['mem_train_steps']} training steps")
    a = run_child(
        ["train-mem", "--pairs", str(folder), "--batch", str(S["mem_batch"]), "--train-steps", str(S["mem_train_steps"]),
         "--microbatch", str(S["mem_microbatch"]), "--threads", str(threads)],
        work / "train-mem.json",
    )
    if a["items"] != count:
        raise RuntimeError(f"child A saw {a['items']} pairs, expected {count}")
    r["train_peak_rss_mb_250k"] = max(a["peak_rss_mb"], a["polled_peak_rss_mb"])
    r["train_peak_rss_mb_250k_vmhwm"] = a["peak_rss_mb"]
    r["train_peak_rss_mb_250k_polled"] = a["polled_peak_rss_mb"]
    r["train_rss_after_setup_mb"] = a["rss_after_setup_mb"]
    r["train_rss_after_train_steps_mb"] = a["rss_after_train_steps_mb"]
    r["train_epoch_rest_peak_rss_mb"] = a["epoch_rest_peak_rss_mb"]
    if a["epoch_rest_peak_rss_mb"] is not None:  # RSS growth over the data-only rest of the epoch
        r["train_epoch_rss_growth_mb"] = a["epoch_rest_peak_rss_mb"] - a["rss_after_train_steps_mb"]
    r["train_steps"] = S["mem_train_steps"]
    r["train_batch"] = S["mem_batch"]
    r["train_microbatch"] = S["mem_microbatch"]
    r["train_epoch_s_250k"] = a["epoch_s"]
    r["train_epoch_data_only_s_250k"] = a["data_only_epoch_s"]
    r["train_epoch_pairs_per_s"] = count / a["data_only_epoch_s"]

    avail = psutil.virtual_memory().available
    if avail < need / 2 * 1.25:
        raise RuntimeError(f"{avail / 1e9:.1f} GB of RAM available; building the original's .pt file needs {need / 2 * 1.25 / 1e9:.1f} GB")
    pt = work / "pairs.pt"
    log("memory: building the original's single .pt file (child)")
    b = run_child(["build-pt", "--pairs", str(folder), "--pt", str(pt)], work / "build-pt.json")
    r["original_build_rss_mb_250k"] = max(b["peak_rss_mb"], b["polled_peak_rss_mb"])
    r["original_pt_bytes_per_pair"] = b["bytes"] / count
    log("memory: child B: torch.load(weights_only=True) of the .pt file")
    c = run_child(["load-pt", "--pt", str(pt)], work / "load-pt.json")
    if c["items"] != count:
        raise RuntimeError(f"child B loaded {c['items']} pairs, expected {count}")
    r["original_load_rss_mb_250k"] = max(c["peak_rss_mb"], c["polled_peak_rss_mb"])
    r["original_load_rss_mb_250k_vmhwm"] = c["peak_rss_mb"]
    r["original_load_s_250k"] = c["load_s"]
    r["train_rss_ratio_original_over_ours"] = r["original_load_rss_mb_250k"] / r["train_peak_rss_mb_250k"]
    return r


# --------------------------------------------------------------------------------------------
# Section 4: GPU
# --------------------------------------------------------------------------------------------


def _cifar_student_cfg():
    """The student of profiles/cifar10.yaml (about 10M parameters, as the original's ~9M net)."""
    from lines_model.config import parse_params
    from lines_model.profile import merged_params

    return parse_params(merged_params(ROOT / "profiles" / "cifar10.yaml", ROOT / "params.yaml")).student


def bench_gpu(S: dict, r: dict | None = None, save=lambda: None, device: str = "cuda") -> dict:
    """GPU throughput of the CIFAR-10-sized networks: random-init google/ddpm-cifar10-32 teacher,
    the cifar10 profile's student. Fills `r` measurement by measurement, calling `save()` after
    each, so a run cut short keeps what it measured. `device` is "cuda" except in a CPU dry run of
    this code with tiny sizes (tests), where the numbers mean nothing."""
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    from lines_model import runtime
    from lines_model.config import RuntimeCfg, TrainCfg
    from lines_model.generation import generate
    from lines_model.losses import LinesLoss
    from lines_model.pairs import PairStore
    from lines_model.samplers import ddim, dpmsolver_pp, lines_sample
    from lines_model.students import build_student, count_parameters
    from lines_model.teachers import CIFAR10_SCHEDULER_CONFIG, CIFAR10_UNET_CONFIG, Teacher
    from lines_model.training import train

    r = {} if r is None else r
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    bf16 = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    torch.manual_seed(0)
    unet = UNet2DModel(**CIFAR10_UNET_CONFIG).to(dev).eval().requires_grad_(False)
    cfg = dict(DDPMScheduler(**CIFAR10_SCHEDULER_CONFIG).config)
    scfg = _cifar_student_cfg()
    student = build_student(scfg, (3, 32, 32)).to(dev).eval().requires_grad_(False)
    B, b_small = S["gpu_batch"], S["gpu_small_batch"]
    ddim_steps, dpm_steps, order = S["gpu_ddim_steps"], S["gpu_dpm_steps"], S["gpu_dpm_order"]
    dpm = f"dpmsolver{dpm_steps}"
    r.update({
        "device": torch.cuda.get_device_name(dev) if cuda else f"{device} (dry run)",
        "torch": torch.__version__,
        "teacher": "random-init google/ddpm-cifar10-32 architecture (CIFAR10_UNET_CONFIG)",
        "teacher_params": count_parameters(unet),
        "student": "profiles/cifar10.yaml student, random init",
        "student_params": count_parameters(student),
        "batch": B,
        "ours": "bf16 autocast, channels_last, TF32 allowed" if cuda else "fp32 (dry run)",
        "original": "fp32, contiguous, PyTorch's default TF32 settings",
    })
    g = torch.Generator(device=dev).manual_seed(0)
    noise = torch.randn((B, 3, 32, 32), device=dev, generator=g)

    def sampler_time(fn, steps, repeats, n, net, ctx=bf16):
        with ctx():
            fn(net, cfg, n, 2, order=order)  # warm-up: kernels, cudnn autotuning, compilation
            return _median_time(lambda: fn(net, cfg, n, steps, order=order), repeats, sync)

    def original(net, cfg_, n, steps, **_):
        return original_loop(net, cfg_, n, steps, len(n))

    # The original first, under PyTorch's default flags; the flags below are ours.
    log(f"gpu: original loop, DDIM {ddim_steps} steps, fp32, batch {B}")
    t_orig = sampler_time(original, ddim_steps, S["gpu_ddim_repeats"], noise, unet, contextlib.nullcontext)
    r[f"pairs_per_s_original_ddim{ddim_steps}_fp32"] = B / t_orig
    n_small = noise[:b_small]
    t_orig_s = sampler_time(original, ddim_steps, S["gpu_ddim_repeats"], n_small, unet, contextlib.nullcontext)
    save()
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    teacher = runtime.prepare_inference(copy.deepcopy(unet), dev, RuntimeCfg())  # channels_last on CUDA
    student = runtime.prepare_inference(student, dev, RuntimeCfg())
    log(f"gpu: teacher DDIM {ddim_steps} steps, batch {B}")
    r[f"pairs_per_s_ddim{ddim_steps}"] = B / sampler_time(ddim, ddim_steps, S["gpu_ddim_repeats"], noise, teacher)
    log(f"gpu: teacher DPM-Solver++ order {order}, {dpm_steps} steps, batch {B}")
    r[f"pairs_per_s_{dpm}"] = B / sampler_time(dpmsolver_pp, dpm_steps, S["gpu_dpm_repeats"], noise, teacher)
    save()

    with tempfile.TemporaryDirectory(prefix="lines-bench-gpu-") as tmp:
        # The teacher_pairs path end to end: seeded CPU noise, sampler under autocast, shard files with hashes.
        n_pairs = B * S["gpu_train_steps"]
        log(f"gpu: generation.generate, DPM-Solver++ order {order} {dpm_steps} steps, {n_pairs} pairs")
        t = Teacher(unet=teacher, scheduler_config=cfg, source="random-init", folder=Path(tmp), sha256="0" * 64)
        gen_args = dict(count=n_pairs, stream=BENCH_STREAM, sampler="dpmsolver++", steps=dpm_steps, order=order, seed=BENCH_SEED,
                        batch_size=B, shard_size=B * 5, autocast=bf16, desc="gpu pairs")
        generate(t, Path(tmp) / "warm", **dict(gen_args, count=B, shard_size=B))
        sync()
        _, gen_s = _timed(lambda: generate(t, Path(tmp) / "pairs", **gen_args))
        r["pairs_per_s_generate"] = n_pairs / gen_s
        r["pairs_speedup_vs_original"] = r["pairs_per_s_generate"] / r[f"pairs_per_s_original_ddim{ddim_steps}_fp32"]
        save()

        # The training loop the stages use (Accelerate bf16, fused AdamW, channels_last, pinned
        # memory) on those pairs read back through PairStore; epoch 0 is warm-up (and compilation).
        def train_rate(compile_: bool) -> float:
            torch.manual_seed(0)
            net = build_student(scfg, (3, 32, 32))
            stamps: list[float] = []

            def on_epoch_end(epoch, _model):
                sync()
                stamps.append(time.perf_counter())

            tcfg = TrainCfg(lr=1e-4, epochs=3, batch_size=B, warmup_steps=10, num_workers=S["gpu_num_workers"],
                            log_every=10**6, checkpoint_every=10**6)
            train(net, LinesLoss(), PairStore(Path(tmp) / "pairs"), tcfg, RuntimeCfg(compile=compile_),
                  checkpoint_dir=Path(tmp) / f"ckpt-{compile_}", fingerprint_extra={}, on_epoch_end=on_epoch_end,
                  desc="gpu train" + (" (compiled)" if compile_ else ""))
            return 2 * n_pairs / (stamps[2] - stamps[0])

        log(f"gpu: training the student through training.train, batch {B}")
        r["train_samples_per_s"] = train_rate(False)
        r["train_steps_timed"] = 2 * S["gpu_train_steps"]
        save()

        log(f"gpu: 1-step student vs teacher DDIM {ddim_steps} / DPM-Solver++ {dpm_steps} steps, batch {b_small}")
        t_ddim = sampler_time(ddim, ddim_steps, S["gpu_ddim_repeats"], n_small, teacher)
        t_dpm = sampler_time(dpmsolver_pp, dpm_steps, S["gpu_dpm_repeats"], n_small, teacher)
        with bf16():
            t_student = _median_time(lambda: lines_sample(student, n_small, 1), S["gpu_speed_repeats"], sync)
        r[f"teacher_original_ddim{ddim_steps}_fp32_ms_b{b_small}"] = t_orig_s * 1000
        r[f"teacher_ddim{ddim_steps}_ms_b{b_small}"] = t_ddim * 1000
        r[f"teacher_{dpm}_ms_b{b_small}"] = t_dpm * 1000
        r[f"student_1step_ms_b{b_small}"] = t_student * 1000
        r[f"onestep_speedup_b{b_small}_vs_ddim{ddim_steps}"] = t_ddim / t_student
        r[f"onestep_speedup_b{b_small}_vs_original_ddim{ddim_steps}_fp32"] = t_orig_s / t_student
        r[f"onestep_speedup_b{b_small}_vs_{dpm}"] = t_dpm / t_student
        save()

        if cuda and S["gpu_compile"]:  # runtime.compile: true; last, as compilation takes minutes
            try:
                log("gpu: torch.compile: teacher DPM-Solver++ and training")
                compiled = runtime.prepare_inference(unet, dev, RuntimeCfg(compile=True))
                r[f"pairs_per_s_{dpm}_compiled"] = B / sampler_time(dpmsolver_pp, dpm_steps, S["gpu_dpm_repeats"], noise, compiled)
                save()
                r["train_samples_per_s_compiled"] = train_rate(True)
            except Exception as e:  # a compiler failure is a finding, not a reason to lose the rest
                r["compile_error"] = f"{type(e).__name__}: {e}"[:500]
            save()
    if cuda:
        torch.cuda.empty_cache()
    return r


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _previous_gpu(out: Path) -> dict | None:
    try:
        gpu = json.loads(out.read_text()).get("gpu")
    except (OSError, ValueError):
        return None
    return gpu if isinstance(gpu, dict) and "dry run" not in str(gpu.get("device", "")) else None


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
        if k == "gpu" and isinstance(v, dict):
            rows += [f"| gpu.{gk} | {_fmt(gv)} |" for gk, gv in v.items()]
        elif k == "machine":
            rows += [f"| machine.{mk} | {_fmt(mv)} |" for mk, mv in v.items()]
        else:
            rows.append(f"| {k} | {_fmt(v)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Lines model benchmarks (see benchmarks/README.md)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in under a minute (numbers are not meaningful)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results file (default {DEFAULT_OUT.relative_to(ROOT)})")
    p.add_argument("--skip-memory", action="store_true", help="skip the memory section (it writes ~12 GB of temporary files)")
    p.add_argument("--sections", default="pairs,onestep,memory,gpu", help="comma-separated sections to run (default: all)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of this process (default: torch's default; 1 with --quick)")
    p.add_argument("--teacher", default=None, help="teacher folder (default: teacher.model of params.yaml)")
    p.add_argument("--mem-pairs", type=int, default=None, help="override the memory section's pair count (for testing the script)")
    p.add_argument("--tmp", default=None, help="folder for temporary files (default: the system's temp folder)")
    args = p.parse_args(argv)

    import torch

    from lines_model import atomic
    from lines_model.config import load_params

    threads = args.threads if args.threads is not None else (1 if args.quick else 0)
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    sections = {x.strip() for x in args.sections.split(",") if x.strip()}
    unknown = sections - {"pairs", "onestep", "memory", "gpu"}
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

    results: dict = {"complete": False, "quick": args.quick, "sections": sorted(sections), "machine": machine_info(threads)}
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    previous_gpu = _previous_gpu(out)  # read before the first save replaces the file

    def save() -> None:
        atomic.write_json(out, results)

    work = Path(tempfile.mkdtemp(prefix="lines-bench-", dir=args.tmp))

    def on_term(signum, frame):  # turn SIGTERM into an exception so that `finally` removes the temp files
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        log(f"teacher: snapshot of {teacher_src}")
        teacher = snapshot_teacher(teacher_src, work / "teacher")
        prog = teacher.folder / "progress.json"
        results["teacher"] = {
            "source": str(teacher_src.relative_to(ROOT) if teacher_src.is_relative_to(ROOT) else teacher_src),
            "sha256": teacher.sha256,
            "training_progress": json.loads(prog.read_text()) if prog.exists() else None,
            "prediction_type": teacher.scheduler_config.get("prediction_type"),
            "clip_sample": teacher.scheduler_config.get("clip_sample"),
            "sample_shape": list(teacher.sample_shape),
        }
        if "pairs" in sections:
            results.update(bench_pairs(teacher, teacher.folder, work, S, threads, progress))
            save()
        if "onestep" in sections:
            results.update(bench_onestep(teacher, S))
            save()
        if "memory" not in sections:
            pass
        elif args.skip_memory:
            results["memory_skipped"] = True
            for k in ("train_peak_rss_mb_250k", "original_load_rss_mb_250k", "bytes_per_pair"):
                results[k] = None
        else:
            results.update(bench_memory(work, S, threads, progress))
        save()
        if "gpu" not in sections:
            pass
        elif torch.cuda.is_available():
            results["gpu"] = {"date": results["machine"]["date"]}
            bench_gpu(S, results["gpu"], save)
        else:
            # Most runs of this file have no GPU: keep the figures of the last run that had one
            # (they carry their own device name and date) rather than erase them.
            previous = previous_gpu
            results["gpu"] = previous
            results["gpu_note"] = "no CUDA device here (torch.cuda.is_available() is False): " + (
                f"GPU figures kept from the run of {previous.get('date')} on {previous.get('device')}" if previous else "GPU section not run"
            )
        results["machine"]["loadavg_end"] = list(os.getloadavg())
        results["total_s"] = time.perf_counter() - _T0
        results["complete"] = True
        save()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(markdown(results))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        CHILDREN[sys.argv[2]](sys.argv[3:])
    else:
        sys.exit(main())
