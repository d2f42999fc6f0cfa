"""Devices, precision and process groups, through Accelerate.

The same code runs on a 2-core CPU (fp32, one process) and on GPUs (bf16 autocast,
channels_last, fused AdamW, optional torch.compile; DDP when launched with torchrun or
`accelerate launch`). Nothing here hard-codes a device.
"""

from __future__ import annotations

import contextlib

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState

from lines_model.config.runtime import RuntimeCfg


def set_threads(cfg: RuntimeCfg) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)


def resolve_precision(value: str) -> str:
    """A precision setting (`auto` | `no` | `bf16` | `fp16`) for this machine: auto is bf16 on CUDA, fp32 on a CPU."""
    if value == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return value


def mixed_precision(cfg: RuntimeCfg) -> str:
    return resolve_precision(cfg.mixed_precision)


def _cpu_only() -> bool:
    # Accelerate only sets up a gloo process group for torchrun on CPU when told cpu=True.
    return not torch.cuda.is_available()


def accelerator(cfg: RuntimeCfg, **kwargs) -> Accelerator:
    set_threads(cfg)
    mp = mixed_precision(cfg)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mp:
        # Accelerate keeps one precision per process and refuses another; a process that trains
        # twice with different settings (a notebook, the tests) starts its precision state afresh.
        # The process group (PartialState) is kept.
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mp, cpu=_cpu_only(), **kwargs)


def state() -> PartialState:
    """Process index/count and device; under torchrun on CPU, a gloo process group."""
    return PartialState(cpu=_cpu_only())


def inference_precision(device: torch.device, precision: str) -> str:
    """What a network runs at under the setting `precision` (`auto` | `no` | `bf16` | `fp16`):
    "bf16" or "fp16" only on CUDA (bf16 under `auto`); "fp32" on a CPU, which never autocasts here."""
    mp = resolve_precision(precision)
    return mp if device.type == "cuda" and mp in ("bf16", "fp16") else "fp32"


def autocast_at(device: torch.device, precision: str):
    """A context manager factory that runs inference at `precision` ("fp32" | "bf16" | "fp16")."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return lambda: torch.autocast(device.type, dtype=dtype)


def autocast_for(device: torch.device, precision: str):
    """`autocast_at` for a setting (`auto` | `no` | `bf16` | `fp16`): only CUDA autocasts."""
    return autocast_at(device, inference_precision(device, precision))


def prepare_inference(model: torch.nn.Module, device: torch.device, cfg: RuntimeCfg) -> torch.nn.Module:
    model = model.to(device).eval().requires_grad_(False)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        if cfg.compile:
            model = torch.compile(model)
    return model
