"""Stage subset_50k: a deterministic subset of subset.size pair indices (sorted, without repeats)."""

import numpy as np

from lines_model import atomic, pairs
from lines_model.cli import run_stage
from lines_model.config import ConfigError


def select(count: int, size: int, seed: int) -> list[int]:
    if size > count:
        raise ConfigError(f"subset.size: {size} is larger than the {count} pairs available (pairs.count)")
    return np.sort(np.random.default_rng([seed, 50_000]).choice(count, size=size, replace=False)).tolist()


def main(params, args) -> None:
    m = pairs.PairStore("data/pairs").manifest  # refuses an unfinished or corrupt pairs folder
    idx = select(m.count, params.subset.size, params.subset.seed)
    atomic.write_json("data/subset.json", {"size": len(idx), "seed": params.subset.seed, "pairs_count": m.count, "indices": idx})
    print(f"subset: {len(idx)} of {m.count} pairs")


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
