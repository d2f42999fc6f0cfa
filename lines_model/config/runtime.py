"""Section `runtime`: precision, compilation and threads; how fast, not what, a stage computes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lines_model.typed import field


@dataclass(frozen=True)
class RuntimeCfg:
    mixed_precision: Literal["auto", "no", "bf16", "fp16"]  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool  # torch.compile the networks (CUDA only)
    threads: int = field(min=0)  # torch CPU threads; 0 = torch's default
