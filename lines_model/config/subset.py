"""Section `subset`: the fixed subset of the pairs the Lines student trains on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lines_model.typed import field


@dataclass(frozen=True)
class SubsetCfg:
    count: int = field(min=1)  # pairs kept for the Lines student
    seed: int = field(min=0)

    # Old names refused with their new one. DVC's run-cache leaves every key named `size` or
    # `nfiles` out of its key, at any depth and params included (treeverse/dvc#10296): under
    # `subset.size`, `dvc exp run -S subset.size=N` restored the previous subset instead of making one.
    RENAMED: ClassVar[dict[str, str]] = {"size": "count"}
