"""Section `evaluate`: what the evaluation runs, on how many images, and its figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lines_model import halves
from lines_model.errors import ConfigError
from lines_model.typed import field


@dataclass(frozen=True)
class EvaluateCfg:
    count: int = field(min=2)  # held-out pairs whose noise every generator is run on
    reference: int = field(min=2)  # the next held-out teacher images: the FID/KID/PRC reference set
    feature_extractor: Literal["shapes-features", "inception-v3-compat"]
    feature_dir: str | None  # weights folder of shapes-features
    feature_weights: str | None  # local Inception weights file (null: torch-fidelity downloads its own)
    # A real data set as a second reference (uint8 .npy, tools/prefetch.py); metrics against it are
    # named *_data (fid_data, ...) and use data_count generated images per generator. null: off.
    data_reference: str | None
    data_count: int = field(min=2)
    kid_subset_size: int = field(min=2)
    prc_neighborhood: int = field(min=1)
    se_replicates: int = field(min=2)  # half-sample replicates behind every *_se (uncertainty.standard_errors)
    speed_batch: int = field(min=1)  # batch size of the ms/image timings
    speed_rounds: int = field(
        min=1
    )  # interleaved timing rounds, rounded up to a multiple of the generators; ms/image is their median
    # A fast generator's turn repeats its call until it spans this long: a one-step student makes a
    # timing batch in milliseconds on a CPU, where a scheduler tick or a cold cache after the teacher's
    # turn is a sizeable part of a single call.
    speed_min_sample_s: float = field(min=0.0)
    batch_size: int = field(min=1)  # generation batch
    lines_steps: tuple[int, ...]  # Lines k-step variants evaluated
    pd_steps: tuple[int, ...]  # progressive-distillation students evaluated (their step counts)
    cd_steps: tuple[int, ...]  # consistency-model sampling step counts evaluated
    grid_columns: int = field(min=1)
    trajectory_samples: int = field(min=1)  # rows (pairs of rows) of the trajectory figure
    trajectory_ts: tuple[float, ...]

    def validate(self, where: str) -> None:
        # The errors of the held-out evaluation, and of the data reference where there is one.
        sets = [("count", self.count, self.reference)]
        if self.data_reference:
            sets.append(("data_count", self.data_count, self.data_count))
        for name, n, m in sets:
            try:
                halves.check(n, m, self.se_replicates, self.prc_neighborhood)
            except halves.SizeError as e:
                key = "se_replicates" if e.arg == "replicates" else e.arg
                sizes = f" ({where}.{name}: {n})" if e.arg != "replicates" else ""
                raise ConfigError(f"{where}.{key}: {e.reason}{sizes}") from None
