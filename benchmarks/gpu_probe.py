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
the student only: the teacher's targets stay fp32, as PD training does); `+compile` adds
torch.compile. For `teacher_forward` in `fp32` and `bf16`, torch.profiler splits one call's GPU
kernel time into convolutions and matrix products, attention, normalisation and the rest
(element-wise, copies), the first being what tensor cores speed up.

The variants of one loop are timed together by `lines_model.timing.time_interleaved` (the
evaluation's timing: balanced rounds, median and interquartile range), each variant setting its own
math mode, so `speedup` (fp32's time over the variant's, round by round) holds within the run.
Loops run cheapest and most telling first, and stop when `--budget-s` is spent; the JSON is
rewritten after each. `--tiny` is a CPU dry run at batch 2 (nothing measured).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

from benchmarks.cifar import cifar_student, cifar_teacher, forward_gflop, full_params

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
    from lines_model import runtime

    return runtime.autocast_at(device, "bf16" if bf16 else "fp32")()


# Kernel names by what runs them: tensor-core (or fp32 FMA) convolutions and products; attention's
# fused kernels; GroupNorm; and the rest, element-wise and copies, which memory bandwidth bounds.
KERNEL_GROUPS = (
    ("attention", ("flash", "fmha", "attention", "softmax")),
    (
        "conv_and_matmul",
        (
            "conv",
            "gemm",
            "cutlass",
            "xmma",
            "cudnn",
            "sm80_",
            "sm90_",
            "implicit",
            "wgrad",
            "dgrad",
            "fprop",
            "cublas",
            "addmm",
            "bmm",
            "aten::mm",
        ),
    ),
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
    return {
        "total_ms": total,
        "ms": groups,
        "share": {k: v / total if total else 0.0 for k, v in groups.items()},
        "top": [{"ms": ms, "kernel": k, "group": g} for ms, k, g in kernels[:5]],
    }


class Probe:
    def __init__(self, out: Path, tiny: bool, budget_s: float):
        from lines_model.config import parse_params

        self.out, self.tiny, self.budget_s = out, tiny, budget_s
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.params = parse_params(full_params())
        p = self.params
        self.batch = {
            "teacher_forward": 2 if tiny else p.pairs.batch_size,
            "student_step": 2 if tiny else p.train_lines.batch_size,
            "pd_step": 2 if tiny else p.pd.batch_size,
        }
        self.r = {
            "device": torch.cuda.get_device_name() if self.device.type == "cuda" else "cpu (dry run)",
            "torch": torch.__version__,
            "batch": self.batch,
            "defaults": {
                "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            },
            "per_call": {},
            "items_per_s": {},
            "tflops": {},
            "kernels": {},
            "skipped": [],
        }

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - T0)

    def save(self) -> None:
        self.out.write_text(json.dumps(self.r, indent=1))

    def _rounds(self) -> dict:
        return dict(rounds=1, warmup=1) if self.tiny else dict(rounds=8, warmup=3, min_sample_s=0.2)

    def record(self, loop: str, gflop_per_item: float, fns: dict, store_reference: bool = True) -> None:
        """Times `fns` (variant -> one call of `loop`) together, fp32 the reference (whose own
        figures are kept only with `store_reference`: a loop's fp32 is recorded once)."""
        if self.left() <= 0:
            self.r["skipped"] += [f"{loop}/{v}" for v in fns]
            return
        from lines_model.timing import time_interleaved

        n = self.batch[loop]
        timings = time_interleaved(fns, images_per_call=n, reference="fp32", **self._rounds())
        for v, t in timings.items():
            if v == "fp32" and not store_reference:
                continue
            ms = t.ms_per_image * n
            self.r["per_call"].setdefault(loop, {})[v] = {
                "ms": ms,
                "ms_iqr": t.ms_per_image_iqr * n,
                "rounds": t.rounds,
                "speedup_over_fp32": t.speedup,
            }
            self.r["items_per_s"].setdefault(loop, {})[v] = n / (ms / 1e3)
            self.r["tflops"].setdefault(loop, {})[v] = n * gflop_per_item / ms  # GFLOP / ms = TFLOP/s
            print(
                f"[{time.perf_counter() - T0:6.1f}s] {loop} {v}: {ms:.2f} ms per call of {n}, "
                f"{self.r['tflops'][loop][v]:.1f} TFLOP/s, {t.speedup:.2f}x fp32's speed",
                flush=True,
            )
        self.save()

    def run(self) -> None:
        dev = self.device
        teacher, student = cifar_teacher(dev), cifar_student(self.params.student, dev)
        g_teacher, g_student = forward_gflop(teacher, dev), forward_gflop(student, dev)
        x = torch.randn(self.batch["teacher_forward"], 3, 32, 32, device=dev)
        t = torch.full((x.shape[0],), 500, device=dev)
        self.r["forward_gflop_per_image"] = {"teacher": g_teacher, "student": g_student}

        def forward(net, mode="fp32", bf16=False):
            def f():
                with torch.no_grad(), math_mode(mode), autocast(dev, bf16):
                    net(x, t)

            return f

        # 1. The teacher's forward: the pairs' and PD's targets, the evaluation's teacher rows.
        self.record(
            "teacher_forward",
            g_teacher,
            {
                "fp32": forward(teacher),
                "fp32_strict": forward(teacher, "fp32_strict"),
                "tf32": forward(teacher, "tf32"),
                "bf16": forward(teacher, bf16=True),
            },
        )
        for mode, bf16 in (("fp32", False), ("bf16", True)):
            if self.left() > 0:
                self.r["kernels"][f"teacher_forward/{mode}"] = kernel_split(forward(teacher, bf16=bf16), dev)
                self.save()

        # 2. The students' training step, as training.train takes it.
        self.record_train_steps(student, g_student)
        # 3. A progressive-distillation step.
        self.record_pd_steps(teacher, g_teacher)

        # 4. torch.compile, last: its first call compiles (tens of seconds), timed apart.
        if self.tiny:
            self.r["skipped"].append("compile (not in the CPU dry run)")
        else:
            compiled = {}
            for mode, bf16 in (("bf16+compile", True), ("fp32+compile", False)):
                if self.left() < 90:  # a compile of the 35.7M UNet does not fit in less
                    self.r["skipped"].append(f"teacher_forward/{mode}")
                    continue
                compiled[mode] = forward(torch.compile(teacher), bf16=bf16)
                t0 = time.perf_counter()
                compiled[mode]()  # the first call compiles
                _sync()
                self.r.setdefault("compile_s", {})[f"teacher_forward/{mode}"] = time.perf_counter() - t0
            if compiled:
                self.record("teacher_forward", g_teacher, {"fp32": forward(teacher), **compiled}, store_reference=False)
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
        self.record(
            "student_step",
            3 * g_student,
            {"fp32": step(False), "fp32_no_ema": step(False, with_ema=False), "bf16": step(True)},
        )

    def record_pd_steps(self, teacher, g_teacher: float) -> None:
        import copy

        from lines_model.methods.pd.target import PDLoss
        from tools.random_teacher import HUB_SCHEDULER_CONFIG

        dev, n = self.device, self.batch["pd_step"]
        net = copy.deepcopy(teacher).train().requires_grad_(True)
        clean = torch.randn(n, 3, 32, 32, device=dev)
        loss_fn = PDLoss(teacher, "epsilon", "epsilon", HUB_SCHEDULER_CONFIG, 16, "mse")
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
        self.record("pd_step", 5 * g_teacher, {"fp32": step(False), "bf16": step(True)})


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
