"""Section 4: GPU throughput of the CIFAR-10-sized networks (CUDA machines only; a CPU dry run in tests).

Random-init networks, since the benchmark cannot download weights and speed does not depend on
them: the google/ddpm-cifar10-32 architecture as teacher (tools/random_teacher.py) and the student
of profiles/cifar10.yaml. Per-call timings go through lines_model.timing.time_interleaved, with
CUDA synchronised around every call; whole generation and training runs are timed by wall clock.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import tempfile
import time
from pathlib import Path

from benchmarks.common import BENCH_SEED, BENCH_STREAM, ROOT, log, timed_once
from benchmarks.original import original_loop


def _cifar_params():
    """params.yaml with profiles/cifar10.yaml merged on top: its student (about 10M parameters, as the
    original's ~9M net), its train_lines section and the runtime section."""
    from lines_model.config import parse_params
    from lines_model.profile import merged_params

    return parse_params(merged_params(ROOT / "profiles" / "cifar10.yaml", ROOT / "params.yaml"))


def bench_gpu(S: dict, r: dict | None = None, save=lambda: None, device: str = "cuda") -> dict:
    """Fills `r` measurement by measurement, calling `save()` after each, so a run cut short keeps
    what it measured. `device` is "cuda" except in a CPU dry run of this code with tiny sizes
    (tests), where the numbers mean nothing."""
    import torch
    from diffusers import UNet2DModel

    from lines_model import noise_schedule, runtime
    from lines_model.samplers import ddim, dpmsolver_pp, lines_sample
    from lines_model.students import count_parameters, init_student
    from lines_model.teachers import Teacher
    from lines_model.timing import time_interleaved
    from tools.random_teacher import HUB_SCHEDULER_CONFIG, CIFAR10_UNET_CONFIG

    r = {} if r is None else r
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    bf16 = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    torch.manual_seed(0)
    unet = UNet2DModel(**CIFAR10_UNET_CONFIG).to(dev).eval().requires_grad_(False)
    cfg = noise_schedule.resolve(HUB_SCHEDULER_CONFIG)
    params = _cifar_params()
    # The teacher as the library sees it: what student.init "teacher" copies (init "random" ignores it).
    random_teacher = Teacher(
        unet=unet, scheduler_config=cfg, source="random-init", folder=Path("random-init"), sha256="0" * 64
    )
    student = init_student(params.student, (3, 32, 32), teacher=random_teacher).to(dev).eval().requires_grad_(False)
    inference = dataclasses.replace(params.runtime, compile=False)
    B, b_small = S["gpu_batch"], S["gpu_small_batch"]
    ddim_steps, dpm_steps, order = S["gpu_ddim_steps"], S["gpu_dpm_steps"], S["gpu_dpm_order"]
    dpm = f"dpmsolver{dpm_steps}"
    r.update(
        {
            "device": torch.cuda.get_device_name(dev) if cuda else f"{device} (dry run)",
            "torch": torch.__version__,
            "teacher": "random-init google/ddpm-cifar10-32 architecture (CIFAR10_UNET_CONFIG)",
            "teacher_params": count_parameters(unet),
            "student": "profiles/cifar10.yaml student, "
            + ("random init" if params.student.init == "random" else "untrained copy of the teacher"),
            "student_params": count_parameters(student),
            "batch": B,
            "small_batch": b_small,
            "ours": "bf16 autocast, channels_last, TF32 allowed" if cuda else "fp32 (dry run)",
            "original": "fp32, contiguous, PyTorch's default TF32 settings",
        }
    )
    g = torch.Generator(device=dev).manual_seed(0)
    noise = torch.randn((B, 3, 32, 32), device=dev, generator=g)
    n_small = noise[:b_small]

    def original(net, cfg_, n, steps, **_):
        return original_loop(net, cfg_, n, steps, len(n))

    def one_step(net, _cfg, n, _steps, **_):  # the student, called like a teacher sampler
        return lines_sample(net, n, 1)

    def call(fn, net, n, steps):
        return lambda: fn(net, cfg, n, steps, order=order)

    def ms_per_call(samplers: dict, n, rounds: int, ctx=bf16) -> dict[str, float]:
        """Median ms per call of each (sampler, net, steps), interleaved round by round, after a
        2-step warm-up run of each (kernels, cuDNN autotuning, compilation) that costs little."""
        with ctx():
            for fn, net, _ in samplers.values():
                call(fn, net, n, 2)()
            t = time_interleaved(
                {k: call(fn, net, n, steps) for k, (fn, net, steps) in samplers.items()},
                images_per_call=len(n),
                rounds=rounds,
                warmup=0,
                sync=sync,
            )
        return {k: v.ms_per_image * len(n) for k, v in t.items()}

    # The original first, under PyTorch's default flags; the flags below are ours.
    log(f"gpu: original loop, DDIM {ddim_steps} steps, fp32, batch {B} and {b_small}")
    ms_orig = ms_per_call({"o": (original, unet, ddim_steps)}, noise, S["gpu_ddim_repeats"], contextlib.nullcontext)[
        "o"
    ]
    r[f"pairs_per_s_original_ddim{ddim_steps}_fp32"] = B * 1000 / ms_orig
    ms_orig_small = ms_per_call(
        {"o": (original, unet, ddim_steps)}, n_small, S["gpu_ddim_repeats"], contextlib.nullcontext
    )["o"]
    r[f"teacher_original_ddim{ddim_steps}_fp32_ms_b{b_small}"] = ms_orig_small
    save()
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    teacher = runtime.prepare_inference(copy.deepcopy(unet), dev, inference)  # channels_last on CUDA
    student = runtime.prepare_inference(student, dev, inference)
    log(f"gpu: teacher DDIM {ddim_steps} steps, batch {B}")
    r[f"pairs_per_s_ddim{ddim_steps}"] = (
        B * 1000 / ms_per_call({"t": (ddim, teacher, ddim_steps)}, noise, S["gpu_ddim_repeats"])["t"]
    )
    log(f"gpu: teacher DPM-Solver++ order {order}, {dpm_steps} steps, batch {B}")
    r[f"pairs_per_s_{dpm}"] = (
        B * 1000 / ms_per_call({"t": (dpmsolver_pp, teacher, dpm_steps)}, noise, S["gpu_dpm_repeats"])["t"]
    )
    save()

    with tempfile.TemporaryDirectory(prefix="lines-bench-gpu-") as tmp:
        tmp = Path(tmp)
        _generate(teacher, cfg, tmp, S, r, "bf16" if cuda else "fp32", sync)
        save()
        log(f"gpu: training the student through training.train, batch {B}")
        r["train_samples_per_s"] = _train_rate(params, random_teacher, tmp, S, False, sync)
        r["train_steps_timed"] = 2 * S["gpu_train_steps"]
        save()

        log(
            f"gpu: 1-step student vs teacher DDIM {ddim_steps} / DPM-Solver++ {dpm_steps} steps, "
            f"batch {b_small}, interleaved"
        )
        ms = ms_per_call(
            {
                "ddim": (ddim, teacher, ddim_steps),
                "dpm": (dpmsolver_pp, teacher, dpm_steps),
                "student": (one_step, student, 1),
            },
            n_small,
            S["gpu_speed_repeats"],
        )
        r[f"teacher_ddim{ddim_steps}_ms_b{b_small}"] = ms["ddim"]
        r[f"teacher_{dpm}_ms_b{b_small}"] = ms["dpm"]
        r[f"student_1step_ms_b{b_small}"] = ms["student"]
        r[f"onestep_speedup_b{b_small}_vs_ddim{ddim_steps}"] = ms["ddim"] / ms["student"]
        r[f"onestep_speedup_b{b_small}_vs_original_ddim{ddim_steps}_fp32"] = ms_orig_small / ms["student"]
        r[f"onestep_speedup_b{b_small}_vs_{dpm}"] = ms["dpm"] / ms["student"]
        save()

        if cuda and S["gpu_compile"]:  # runtime.compile: true; last, as compilation takes minutes
            try:
                log("gpu: torch.compile: teacher DPM-Solver++ and training")
                compiled = runtime.prepare_inference(unet, dev, dataclasses.replace(params.runtime, compile=True))
                r[f"pairs_per_s_{dpm}_compiled"] = (
                    B * 1000 / ms_per_call({"t": (dpmsolver_pp, compiled, dpm_steps)}, noise, S["gpu_dpm_repeats"])["t"]
                )
                save()
                r["train_samples_per_s_compiled"] = _train_rate(params, random_teacher, tmp, S, True, sync)
            except Exception as e:  # a compiler failure is a finding, not a reason to lose the rest
                r["compile_error"] = f"{type(e).__name__}: {e}"[:500]
            save()
    if cuda:
        torch.cuda.empty_cache()
    return r


def _generate(teacher_unet, cfg: dict, tmp: Path, S: dict, r: dict, precision: str, sync) -> None:
    """The teacher_pairs path end to end: seeded CPU noise, sampler under autocast, shard files with
    hashes, into tmp/pairs (read back by the training measurement). Wall clock of the whole run."""
    from lines_model.generation import generate
    from lines_model.teachers import Teacher

    B, steps, order = S["gpu_batch"], S["gpu_dpm_steps"], S["gpu_dpm_order"]
    n_pairs = B * S["gpu_train_steps"]
    log(f"gpu: generation.generate, DPM-Solver++ order {order} {steps} steps, {n_pairs} pairs")
    t = Teacher(unet=teacher_unet, scheduler_config=cfg, source="random-init", folder=tmp, sha256="0" * 64)
    gen_args = dict(
        count=n_pairs,
        stream=BENCH_STREAM,
        sampler="dpmsolver++",
        steps=steps,
        order=order,
        seed=BENCH_SEED,
        batch_size=B,
        shard_size=B * 5,
        precision=precision,
        desc="gpu pairs",
    )
    generate(t, tmp / "warm", **dict(gen_args, count=B, shard_size=B))
    if sync is not None:
        sync()
    _, gen_s = timed_once(lambda: generate(t, tmp / "pairs", **gen_args))
    r["pairs_per_s_generate"] = n_pairs / gen_s
    r["pairs_speedup_vs_original"] = (
        r["pairs_per_s_generate"] / r[f"pairs_per_s_original_ddim{S['gpu_ddim_steps']}_fp32"]
    )


def _train_rate(params, teacher, tmp: Path, S: dict, compile_: bool, sync) -> float:
    """Samples per second of the training loop the stages use (Accelerate mixed precision per
    `runtime`, fused AdamW, channels_last, pinned memory) with the Lines loss of the CIFAR-10
    profile's train_lines on tmp/pairs read back through PairStore: 2 epochs timed by wall clock
    after epoch 0, the warm-up (and compilation)."""
    import torch

    from lines_model.losses import LinesLoss
    from lines_model.pairs import PairStore
    from lines_model.students import init_student
    from lines_model.training import train

    torch.manual_seed(0)
    net = init_student(params.student, (3, 32, 32), teacher=teacher)
    stamps: list[float] = []

    def on_epoch_end(epoch, _model):
        if sync is not None:
            sync()
        stamps.append(time.perf_counter())

    B = S["gpu_batch"]
    # The profile's train_lines (lr 1e-4, ...) with the benchmark's batch, a short warm-up, its loader
    # workers, and no logging or checkpoints inside the run.
    tcfg = dataclasses.replace(
        params.train_lines,
        batch_size=B,
        warmup_steps=10,
        num_workers=S["gpu_num_workers"],
        log_every=10**6,
        checkpoint_every=10**6,
    )
    train(
        net,
        LinesLoss(tcfg.loss, tcfg.t_dist),
        PairStore(tmp / "pairs"),
        tcfg,
        dataclasses.replace(params.runtime, compile=compile_),
        epochs=3,
        checkpoint_dir=tmp / f"ckpt-{compile_}",
        identity={},
        on_epoch_end=on_epoch_end,
        desc="gpu train" + (" (compiled)" if compile_ else ""),
    )
    return 2 * B * S["gpu_train_steps"] / (stamps[2] - stamps[0])
