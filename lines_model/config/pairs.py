"""Section `pairs`: the teacher's deterministic sampler run on seeded noise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lines_model.errors import ConfigError
from lines_model.typed import field


@dataclass(frozen=True)
class PairsCfg:
    count: int = field(min=1)  # training pairs
    heldout: int = field(min=1)  # held-out pairs for evaluation, from a separate noise stream
    sampler: Literal["ddim", "dpmsolver++"]  # deterministic teacher sampler
    steps: int = field(min=1)  # sampler steps = teacher NFE per pair
    order: int = field(min=1, max=3)  # DPM-Solver++ order (ignored by ddim)
    # DPM-Solver++ only: log-SNR where its uniform step grid starts; the stretch below it is crossed in
    # one step (samplers.log_snr_grid). null: the plain grid from the last timestep.
    lambda_min: float | None
    seed: int = field(min=0)  # noise of pair i comes from a generator seeded by (seed, stream, i)
    batch_size: int = field(min=1)  # teacher batch; must divide shard_size
    shard_size: int = field(min=1)  # pairs per shard file (the unit of resume and of work split)
    # Autocast of the teacher while it makes pairs (CUDA only; auto: bf16 on CUDA, fp32 on a CPU). A key
    # of its own, not runtime.mixed_precision: a new training precision must never remake the pairs.
    mixed_precision: Literal["auto", "no", "bf16", "fp16"]

    def validate(self, where: str) -> None:
        if self.shard_size % self.batch_size:
            raise ConfigError(f"{where}.batch_size: {self.batch_size} must divide {where}.shard_size={self.shard_size}")
