"""Stage subset_50k: a deterministic subset of subset.count pair indices (sorted, without repeats)."""

from lines_model import atomic, pairs, provenance
from lines_model.cli import run_stage
from lines_model.subset import select


def main(params) -> None:
    made_from = provenance.made_from("subset_50k", params, ["data/pairs"])
    m = pairs.PairStore("data/pairs").manifest  # refuses an unfinished or corrupt pairs folder
    idx = select(m.count, params.subset.count, params.subset.seed)
    subset = {"count": len(idx), "seed": params.subset.seed, "pairs_count": m.count, "indices": idx}
    atomic.write_json("data/subset.json", {**subset, provenance.RECORD: made_from})
    print(f"subset: {len(idx)} of {m.count} pairs")


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
