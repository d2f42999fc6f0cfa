"""The keys of the one training loop (training.train), which every student section extends."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from lines_model.typed import field

Distance = Literal["mse", "l1", "huber"]

# Keys of the training loop that change how a run is logged or checkpointed, not what it computes:
# a resumable checkpoint survives a change of these.
NON_RESULT_KEYS = ("log_every", "checkpoint_every", "num_workers")


@dataclass(frozen=True)
class TrainCfg:
    """The one training loop (training.train); every student section extends it."""

    lr: float = field(min=0.0)  # AdamW peak learning rate
    batch_size: int = field(min=1)
    warmup_steps: int = field(min=0)  # linear warmup, then cosine decay to zero
    weight_decay: float = field(min=0.0)
    grad_clip: float = field(min=0.0)  # max-norm; 0 disables
    ema_decay: float = field(min=0.0, max=1.0)  # EMA of weights; the saved student is the EMA
    loss: Distance
    seed: int = field(min=0)
    log_every: int = field(min=1)  # dvclive step logging interval (optimizer steps)
    checkpoint_every: int = field(min=1)  # optimizer steps between resumable checkpoints
    num_workers: int = field(min=0)  # DataLoader workers

    def identity(self) -> dict:
        """The fields that change a trained result (what a checkpoint fingerprint covers)."""
        d = dataclasses.asdict(self)
        for k in NON_RESULT_KEYS:
            d.pop(k)
        return d
