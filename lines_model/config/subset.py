"""Section `subset`: the fixed subset of the pairs the Lines student trains on."""

from __future__ import annotations

from dataclasses import dataclass

from lines_model.typed import field


@dataclass(frozen=True)
class SubsetCfg:
    size: int = field(min=1)  # pairs kept for the Lines student
    seed: int = field(min=0)
