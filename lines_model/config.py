"""Typed view of params.yaml: one dataclass per section.

The dataclasses carry types and allowed ranges only; params.yaml is the one source of values
(profiles state only their differences from it). `load_params(path)` rejects missing or unknown
keys, wrong types, out-of-range values and broken cross-key rules with a `ConfigError` that
names the key, before any stage does work. Rules that need the teacher live in preflight.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from lines_model.errors import ConfigError
from lines_model.typed import field, from_dict, to_dict

__all__ = ["ConfigError", "Params", "load_params", "parse_params", "to_dict"]

Distance = Literal["mse", "l1", "huber"]


@dataclass(frozen=True)
class TeacherCfg:
    model: str  # local folder (flat or pipeline layout) or a hub id
    revision: str | None  # hub revision to pin (ignored for local folders)


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

    def validate(self, where: str) -> None:
        if self.shard_size % self.batch_size:
            raise ConfigError(f"{where}.batch_size: {self.batch_size} must divide {where}.shard_size={self.shard_size}")


@dataclass(frozen=True)
class SubsetCfg:
    size: int = field(min=1)  # pairs kept for the Lines student
    seed: int = field(min=0)


@dataclass(frozen=True)
class StudentCfg:
    """The one-step students of Lines and the baseline.

    init "teacher": the student is a copy of the teacher's network in the teacher's own
    parametrisation (students.LinesStudent), so the architecture keys below are not used.
    init "random": a fresh diffusers UNet2DModel of the architecture below; t enters as t * t_scale.
    """

    init: Literal["teacher", "random"]
    block_out_channels: tuple[int, ...]
    layers_per_block: int = field(min=1)
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    norm_num_groups: int = field(min=1)
    t_scale: float = field(min=1.0)

    def validate(self, where: str) -> None:
        n = len(self.block_out_channels)
        for key in ("down_block_types", "up_block_types"):
            if len(getattr(self, key)) != n:
                raise ConfigError(f"{where}.{key}: needs {n} entries, one per block_out_channels entry")
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ConfigError(f"{where}.norm_num_groups: {self.norm_num_groups} must divide every block_out_channels entry ({c})")

    def check_image_size(self, size: int) -> None:
        """The random-init UNet halves the image once per level after the first."""
        levels = len(self.block_out_channels)
        if size % 2 ** (levels - 1):
            raise ConfigError(
                f"student.block_out_channels: {levels} levels halve the image {levels - 1} times, "
                f"which a {size}x{size} image (teacher's sample size) cannot take"
            )


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

    def result_identity(self) -> dict:
        """The fields that change a trained result (what a checkpoint fingerprint covers)."""
        d = dataclasses.asdict(self)
        for k in NON_RESULT_KEYS:
            d.pop(k)
        return d


@dataclass(frozen=True)
class BaselineCfg(TrainCfg):
    epochs: int = field(min=1)


@dataclass(frozen=True)
class LinesCfg(BaselineCfg):
    # Distribution of t on the line: the one-step sample lives at t = 0 (losses.sample_t).
    t_dist: Literal["uniform", "logit_normal", "beta"]


@dataclass(frozen=True)
class PDCfg(TrainCfg):
    start_steps: int = field(min=2)  # teacher DDIM steps of the first round
    end_steps: int = field(min=1)  # steps of the last student
    iters_per_round: int = field(min=1)  # optimizer steps of each round, exactly
    prediction: Literal["v_prediction", "sample"]  # student output; eps fails at few steps

    def validate(self, where: str) -> None:
        ratio = self.start_steps // self.end_steps
        if self.start_steps % self.end_steps or ratio & (ratio - 1) or ratio < 2:
            raise ConfigError(
                f"{where}.start_steps: {self.start_steps} must be a power-of-two multiple (>= 2x) of {where}.end_steps={self.end_steps}"
            )

    def round_steps(self) -> list[int]:
        """Student step counts of the rounds, in order: start/2, start/4, ..., end."""
        out, n = [], self.start_steps // 2
        while n >= self.end_steps:
            out.append(n)
            n //= 2
        return out


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
    se_replicates: int = field(min=2)  # half-sample replicates behind every *_se (fidelity.standard_errors)
    speed_batch: int = field(min=1)  # batch size of the ms/image timings
    speed_rounds: int = field(min=1)  # interleaved timing rounds; ms/image is their median
    batch_size: int = field(min=1)  # generation batch
    lines_steps: tuple[int, ...]  # Lines k-step variants evaluated
    pd_steps: tuple[int, ...]  # progressive-distillation students evaluated (their step counts)
    grid_columns: int = field(min=1)
    trajectory_samples: int = field(min=1)  # rows (pairs of rows) of the trajectory figure
    trajectory_ts: tuple[float, ...]


@dataclass(frozen=True)
class RuntimeCfg:
    mixed_precision: Literal["auto", "no", "bf16", "fp16"]  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool  # torch.compile the networks (CUDA only)
    threads: int = field(min=0)  # torch CPU threads; 0 = torch's default


@dataclass(frozen=True)
class Params:
    teacher: TeacherCfg
    pairs: PairsCfg
    subset: SubsetCfg
    student: StudentCfg
    train_lines: LinesCfg
    train_baseline: BaselineCfg
    pd: PDCfg
    evaluate: EvaluateCfg
    runtime: RuntimeCfg

    def validate(self, where: str) -> None:
        if self.subset.size > self.pairs.count:
            raise ConfigError(f"subset.size: {self.subset.size} is larger than pairs.count={self.pairs.count}")
        e = self.evaluate
        if e.count + e.reference > self.pairs.heldout:
            raise ConfigError(
                f"evaluate.count: evaluate.count + evaluate.reference = {e.count + e.reference} "
                f"is larger than pairs.heldout={self.pairs.heldout}"
            )
        for k in e.pd_steps:
            if k not in self.pd.round_steps():
                raise ConfigError(f"evaluate.pd_steps: {k} is not a step count any round of pd produces ({self.pd.round_steps()})")
        # The standard errors recompute precision/recall on half of the generated images.
        if e.prc_neighborhood >= min(e.count // 2, e.reference, e.data_count // 2 if e.data_reference else e.count):
            raise ConfigError(f"evaluate.prc_neighborhood: {e.prc_neighborhood} must be below half of evaluate.count and of evaluate.data_count, and below evaluate.reference")
        if e.feature_extractor == "shapes-features" and not e.feature_dir:
            raise ConfigError("evaluate.feature_dir: the shapes-features extractor needs its weights folder")
        if any(k < 1 for k in e.lines_steps):
            raise ConfigError(f"evaluate.lines_steps: step counts must be >= 1, got {list(e.lines_steps)}")
        if any(not 0.0 <= t <= 1.0 for t in e.trajectory_ts):
            raise ConfigError(f"evaluate.trajectory_ts: times must lie in [0, 1], got {list(e.trajectory_ts)}")


def parse_params(data: dict) -> Params:
    return from_dict(Params, data, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    try:
        return parse_params(data or {})
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
