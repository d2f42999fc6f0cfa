"""What limits the CIFAR-10 pipeline's hot loops on a GPU: each loop's per-call cost under each math
mode, and where a call's GPU time goes.

    python -m benchmarks.gpu_probe --out JSON [--budget-s 150] [--tiny]

The pipeline's stage rates (benchmarks/gpu_pipeline.py) include everything a stage does; this
times the three loops that dominate the full run, alone, at the profile's batch sizes and networks:
- `teacher_forward`: one forward of the google/ddpm-cifar10-32 UNet at the pairs' batch (a pair is
  200 of them, per image);
- `student_step`: one training step of the profile's 10M student as `training.train` takes it
  (forward, MSE, backward, clipping, fused AdamW, the EMA update, the loss read back), at its batch;
- `pd_step`: one progressive-distillation step (two teacher forwards without gradients, the
  teacher-sized student's forward and backward, AdamW), at PD's batch.

Math modes: `fp32` is what the profile runs, fp32 tensors with PyTorch's defaults, under which
cuDNN may run convolutions in TF32 on Ampere and later GPUs while matmuls stay IEEE fp32;
`fp32_strict` turns TF32 off everywhere; `tf32` turns it on everywhere; `bf16` autocasts (for PD,
the student only: the teacher's targets stay fp32, as pd_training does); `+compile` adds
torch.compile. For `teacher_forward` in `fp32` and `bf16`, torch.profiler splits one call's GPU
kernel time into convolutions and matrix products, attention, normalisation and the rest
(element-wise, copies), the first being what tensor cores speed up.

Variants run in a fixed order, cheapest and most telling first, and stop when `--budget-s` is
spent; the JSON is rewritten after each. `--tiny` is a CPU dry run at batch 2 (nothing measured).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

T0 = time.perf_counter()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@contextlib.contextmanager
def math_mode(mode: str):
    """TF32 flags for `mode` ("fp32": as they are; "fp32_strict": off; "tf32": on), restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if mode == "fp32_strict":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    elif mode == "tf32":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def time_calls(fn, *, warmup: int, calls: int, min_s: float) -> dict:
    """Median and spread of `fn`'s seconds per call over `calls` calls (at least `min_s` in all)."""
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    t_start = time.perf_counter()
    while len(times) < calls or time.perf_counter() - t_start < min_s:
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"ms": 1e3 * times[len(times) // 2], "ms_min": 1e3 * times[0], "ms_max": 1e3 * times[-1], "calls": len(times)}


# Kernel names by what runs them: tensor-core (or fp32 FMA) convolutions and products; attention's
# fused kernels; GroupNorm; and the rest, element-wise and copies, which memory bandwidth bounds.
KERNEL_GROUPS = (
    ("attention", ("flash", "fmha", "attention", "softmax")),
    ("conv_and_matmul", ("conv", "gemm", "cutlass", "xmma", "cudnn", "sm80_", "sm90_", "implicit", "wgrad", "dgrad",
                         "fprop", "cublas", "addmm", "bmm", "aten::mm")),
    ("normalisation", ("norm", "welford")),
)


def kernel_split(fn, device: torch.device) -> dict:
    """One call's GPU kernel time by group (ms), and its five largest kernels."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=acts) as prof:
        fn()
        _sync()
    groups = {name: 0.0 for name, _ in KERNEL_GROUPS} | {"other": 0.0}
    kernels = []
    for e in prof.key_averages():
        us = e.self_device_time_total if device.type == "cuda" else e.self_cpu_time_total
        if us <= 0 or (device.type == "cuda" and e.device_type.name != "CUDA"):
            continue
        name = e.key.lower()
        group = next((g for g, words in KERNEL_GROUPS if any(w in name for w in words)), "other")
        groups[group] += us / 1e3
        kernels.append((us / 1e3, e.key[:80], group))
    kernels.sort(reverse=True)
    total = sum(groups.values())
    return {"total_ms": total, "ms": groups, "share": {k: v / total if total else 0.0 for k, v in groups.items()},
            "top": [{"ms": ms, "kernel": k, "group": g} for ms, k, g in kernels[:5]]}


class Probe:
    def __init__(self, out: Path, tiny: bool, budget_s: float):
        from benchmarks.gpu_pipeline import full_params
        from lines_model.config import parse_params

        self.out, self.tiny, self.budget_s = out, tiny, budget_s
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.params = parse_params(full_params())
        p = self.params
        self.batch = {"teacher_forward": 2 if tiny else p.pairs.batch_size,
                      "student_step": 2 if tiny else p.train_lines.batch_size,
                      "pd_step": 2 if tiny else p.pd.batch_size}
        self.r = {"device": torch.cuda.get_device_name() if self.device.type == "cuda" else "cpu (dry run)",
                  "torch": torch.__version__, "batch": self.batch,
                  "defaults": {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                               "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32},
                  "per_call": {}, "items_per_s": {}, "tflops": {}, "kernels": {}, "skipped": []}

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - T0)

    def save(self) -> None:
        self.out.write_text(json.dumps(self.r, indent=1))

    def _timing_kw(self) -> dict:
        return dict(warmup=1, calls=1, min_s=0.0) if self.tiny else dict(warmup=3, calls=10, min_s=1.0)

    def teacher(self):
        from diffusers import UNet2DModel

        from tools.random_teacher import CIFAR10_UNET_CONFIG

        torch.manual_seed(0)
        net = UNet2DModel(**CIFAR10_UNET_CONFIG).to(self.device).eval().requires_grad_(False)
        return net.to(memory_format=torch.channels_last) if self.device.type == "cuda" else net

    def student(self):
        from lines_model.students import init_student

        torch.manual_seed(0)
        s = init_student(self.params.student, (3, 32, 32), teacher=None).to(self.device).train()
        return s.to(memory_format=torch.channels_last) if self.device.type == "cuda" else s

    def record(self, loop: str, variant: str, gflop_per_item: float, fn) -> None:
        if self.left() <= 0:
            self.r["skipped"].append(f"{loop}/{variant}")
            return
        t = time_calls(fn, **self._timing_kw())
        n = self.batch[loop]
        self.r["per_call"].setdefault(loop, {})[variant] = t
        self.r["items_per_s"].setdefault(loop, {})[variant] = n / (t["ms"] / 1e3)
        self.r["tflops"].setdefault(loop, {})[variant] = n * gflop_per_item / t["ms"]  # GFLOP / ms = TFLOP/s
        print(f"[{time.perf_counter() - T0:6.1f}s] {loop} {variant}: {t['ms']:.2f} ms per call of {n}, "
              f"{self.r['tflops'][loop][variant]:.1f} TFLOP/s", flush=True)
        self.save()

    def run(self) -> None:
        from torch.utils.flop_counter import FlopCounterMode

        dev = self.device
        teacher = self.teacher()
        x = torch.randn(self.batch["teacher_forward"], 3, 32, 32, device=dev)
        t = torch.full((x.shape[0],), 500, device=dev)
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            teacher(x[:1], t[:1])
        g_teacher = fc.get_total_flops() / 1e9
        student = self.student()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            student(x[:1], torch.zeros(1, device=dev))
        g_student = fc.get_total_flops() / 1e9
        self.r["forward_gflop_per_image"] = {"teacher": g_teacher, "student": g_student}

        def forward(net, bf16):
            def f():
                with torch.no_grad(), autocast(dev, bf16):
                    net(x, t)
            return f

        # 1. The teacher's forward: the pairs' and PD's targets, the evaluation's teacher rows.
        for mode in ("fp32", "fp32_strict", "tf32"):
            with math_mode(mode):
                self.record("teacher_forward", mode, g_teacher, forward(teacher, False))
        self.record("teacher_forward", "bf16", g_teacher, forward(teacher, True))
        for mode, bf16 in (("fp32", False), ("bf16", True)):
            if self.left() > 0:
                self.r["kernels"][f"teacher_forward/{mode}"] = kernel_split(forward(teacher, bf16), dev)
                self.save()

        # 2. The students' training step, as training.train takes it.
        self.record_train_steps(student, g_student)
        # 3. A progressive-distillation step.
        self.record_pd_steps(teacher, g_teacher)

        # 4. torch.compile, last: its first call compiles (tens of seconds), timed apart.
        if self.tiny:
            self.r["skipped"].append("compile (not in the CPU dry run)")
        else:
            for mode, bf16 in (("bf16+compile", True), ("fp32+compile", False)):
                if self.left() < 90:  # a compile of the 35.7M UNet does not fit in less
                    self.r["skipped"].append(f"teacher_forward/{mode}")
                    continue
                compiled = torch.compile(teacher)
                t0 = time.perf_counter()
                forward(compiled, bf16)()
                _sync()
                self.r.setdefault("compile_s", {})[f"teacher_forward/{mode}"] = time.perf_counter() - t0
                self.record("teacher_forward", mode, g_teacher, forward(compiled, bf16))
        self.save()

    def record_train_steps(self, student, g_student: float) -> None:
        from diffusers.training_utils import EMAModel

        from lines_model.losses import LinesLoss

        dev, n = self.device, self.batch["student_step"]
        noise, clean = torch.randn(n, 3, 32, 32, device=dev), torch.randn(n, 3, 32, 32, device=dev)
        loss_fn = LinesLoss("mse", "uniform")
        opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.01, fused=dev.type == "cuda")
        ema = EMAModel(student.parameters(), decay=0.0)
        ema.to(dev)
        g = torch.Generator().manual_seed(0)

        def step(bf16: bool, with_ema: bool = True):
            def f():
                with autocast(dev, bf16):
                    loss = loss_fn(student, noise, clean, g)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if with_ema:
                    ema.step(student.parameters())
                loss.item()
            return f

        # A training step is a forward and a backward: about 3 forwards' FLOPs.
        self.record("student_step", "fp32", 3 * g_student, step(False))
        self.record("student_step", "fp32_no_ema", 3 * g_student, step(False, with_ema=False))
        self.record("student_step", "bf16", 3 * g_student, step(True))

    def record_pd_steps(self, teacher, g_teacher: float) -> None:
        import copy

        from lines_model.progressive import ProgressiveLoss
        from tools.random_teacher import CIFAR10_SCHEDULER_CONFIG

        dev, n = self.device, self.batch["pd_step"]
        net = copy.deepcopy(teacher).train().requires_grad_(True)
        clean = torch.randn(n, 3, 32, 32, device=dev)
        loss_fn = ProgressiveLoss(teacher, "epsilon", "epsilon", CIFAR10_SCHEDULER_CONFIG, 16, "mse")
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=dev.type == "cuda")
        g = torch.Generator().manual_seed(0)

        def step(bf16: bool):
            def f():
                with autocast(dev, bf16):
                    loss = loss_fn(net, clean, clean, g)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                loss.item()
            return f

        # Two teacher forwards for the target, the student's forward and backward: about 5 forwards.
        self.record("pd_step", "fp32", 5 * g_teacher, step(False))
        self.record("pd_step", "bf16", 5 * g_teacher, step(True))
        del net, opt


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file of the results")
    ap.add_argument("--budget-s", type=float, default=150)
    ap.add_argument("--tiny", action="store_true", help="CPU dry run at batch 2 (nothing measured)")
    a = ap.parse_args(argv)
    probe = Probe(a.out, a.tiny, a.budget_s)
    probe.save()
    probe.run()


if __name__ == "__main__":
    main()
