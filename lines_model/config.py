"""Typed view of params.yaml: one dataclass per section, every default commented.

`load_params(path)` rejects unknown keys, wrong types, out-of-range values and broken
cross-key rules with a `ConfigError` that names the key, before any stage does work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from lines_model.typed import ConfigError, field, from_dict, to_dict

__all__ = ["ConfigError", "Params", "load_params", "parse_params", "to_dict"]


@dataclass(frozen=True)
class TeacherCfg:
    model: str = "teachers/shapes-ddpm"  # local folder (flat or pipeline layout) or a hub id
    revision: str | None = None  # hub revision to pin (ignored for local folders)


@dataclass(frozen=True)
class PairsCfg:
    count: int = field(4000, min=1)  # training pairs (250,000 in the CIFAR-10 profile)
    heldout: int = field(1000, min=1)  # held-out pairs for evaluation, from a separate noise stream
    sampler: Literal["ddim", "dpmsolver++"] = "dpmsolver++"  # deterministic teacher sampler
    steps: int = field(32, min=1)  # sampler steps = teacher NFE per pair
    order: int = field(3, min=1, max=3)  # DPM-Solver++ order (ignored by ddim)
    # DPM-Solver++ only: log-SNR where its uniform step grid starts; the stretch below it is crossed in
    # one step (samplers.log_snr_grid). null: the plain grid from the last timestep.
    lambda_min: float | None = -5.0
    seed: int = field(0, min=0)  # noise of pair i comes from a generator seeded by (seed, stream, i)
    batch_size: int = field(250, min=1)  # teacher batch; must divide shard_size
    shard_size: int = field(1000, min=1)  # pairs per shard file (the unit of resume and of work split)

    def validate(self, where: str) -> None:
        if self.shard_size % self.batch_size:
            raise ConfigError(f"{where}.batch_size: {self.batch_size} must divide {where}.shard_size={self.shard_size}")


@dataclass(frozen=True)
class SubsetCfg:
    size: int = field(2000, min=1)  # pairs kept for the Lines student (50,000 in the CIFAR-10 profile)
    seed: int = field(0, min=0)


@dataclass(frozen=True)
class StudentCfg:
    """diffusers UNet2DModel of the one-step students; sample_size follows the teacher."""

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = field(1, min=1)
    down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    norm_num_groups: int = field(16, min=1)
    t_scale: float = field(999.0, min=1.0)  # Lines time t in [0,1] enters the UNet as t * t_scale

    def validate(self, where: str) -> None:
        n = len(self.block_out_channels)
        for key in ("down_block_types", "up_block_types"):
            if len(getattr(self, key)) != n:
                raise ConfigError(f"{where}.{key}: needs {n} entries, one per block_out_channels entry")
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ConfigError(f"{where}.norm_num_groups: {self.norm_num_groups} must divide every block_out_channels entry ({c})")


@dataclass(frozen=True)
class TrainCfg:
    """One training loop; Lines and baseline differ only in their loss (section names pick it)."""

    lr: float = field(1e-3, min=0.0)  # AdamW peak learning rate (1e-4 in the original)
    epochs: int = field(20, min=1)
    batch_size: int = field(128, min=1)
    warmup_steps: int = field(100, min=0)  # linear warmup, then cosine decay to zero
    weight_decay: float = field(0.0, min=0.0)
    grad_clip: float = field(1.0, min=0.0)  # max-norm; 0 disables
    ema_decay: float = field(0.999, min=0.0, max=1.0)  # EMA of weights; the saved student is the EMA
    loss: Literal["mse", "l1", "huber"] = "mse"
    t_dist: Literal["uniform", "logit_normal", "beta"] = "uniform"  # Lines only: distribution of t
    seed: int = field(0, min=0)
    log_every: int = field(10, min=1)  # dvclive step logging interval (optimizer steps)
    checkpoint_every: int = field(200, min=1)  # optimizer steps between resumable checkpoints
    num_workers: int = field(0, min=0)  # DataLoader workers


@dataclass(frozen=True)
class PDCfg:
    start_steps: int = field(16, min=1)  # teacher DDIM steps of the first round
    end_steps: int = field(1, min=1)  # steps of the last student
    iters_per_round: int = field(400, min=1)
    batch_size: int = field(64, min=1)
    lr: float = field(2e-4, min=0.0)
    warmup_steps: int = field(20, min=0)
    grad_clip: float = field(1.0, min=0.0)
    ema_decay: float = field(0.99, min=0.0, max=1.0)
    prediction: Literal["v_prediction", "sample"] = "v_prediction"  # student output; eps fails at few steps
    loss: Literal["mse", "l1", "huber"] = "mse"
    keep_steps: tuple[int, ...] = (4, 2, 1)  # students kept for evaluation
    seed: int = field(0, min=0)

    def validate(self, where: str) -> None:
        ratio = self.start_steps // self.end_steps
        if self.start_steps % self.end_steps or ratio & (ratio - 1) or ratio < 2:
            raise ConfigError(
                f"{where}.start_steps: {self.start_steps} must be a power-of-two multiple (>= 2x) of {where}.end_steps={self.end_steps}"
            )
        for k in self.keep_steps:
            if k < self.end_steps or k > self.start_steps // 2 or (self.start_steps // k) & (self.start_steps // k - 1) or self.start_steps % k:
                raise ConfigError(f"{where}.keep_steps: {k} is not a step count any round produces")


@dataclass(frozen=True)
class EvaluateCfg:
    count: int = field(500, min=2)  # held-out pairs whose noise every generator is run on
    reference: int = field(500, min=2)  # the next held-out teacher images: the FID/KID/PRC reference set
    feature_extractor: str = "shapes-features"  # torch-fidelity extractor; inception-v3-compat for CIFAR-10
    feature_dir: str = "teachers/shapes-features"  # weights of the shapes extractor
    kid_subset_size: int = field(100, min=2)
    prc_neighborhood: int = field(3, min=1)
    speed_batch: int = field(16, min=1)  # batch size of the ms/image timings
    speed_repeats: int = field(3, min=1)  # timings are the median of this many runs
    batch_size: int = field(250, min=1)  # generation batch
    lines_steps: tuple[int, ...] = (1, 2)  # Lines k-step variants evaluated
    grid_columns: int = field(8, min=1)
    trajectory_ts: tuple[float, ...] = (0.0, 0.2, 0.5, 0.8, 1.0)


@dataclass(frozen=True)
class RuntimeCfg:
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the networks (CUDA only)
    threads: int = field(0, min=0)  # torch CPU threads; 0 = torch's default


@dataclass(frozen=True)
class Params:
    teacher: TeacherCfg = TeacherCfg()
    pairs: PairsCfg = PairsCfg()
    subset: SubsetCfg = SubsetCfg()
    student: StudentCfg = StudentCfg()
    train_lines: TrainCfg = TrainCfg()
    train_baseline: TrainCfg = TrainCfg()
    pd: PDCfg = PDCfg()
    evaluate: EvaluateCfg = EvaluateCfg()
    runtime: RuntimeCfg = RuntimeCfg()

    def validate(self, where: str) -> None:
        if self.subset.size > self.pairs.count:
            raise ConfigError(f"subset.size: {self.subset.size} is larger than pairs.count={self.pairs.count}")
        if self.evaluate.count + self.evaluate.reference > self.pairs.heldout:
            raise ConfigError(
                f"evaluate.count: evaluate.count + evaluate.reference = {self.evaluate.count + self.evaluate.reference} "
                f"is larger than pairs.heldout={self.pairs.heldout}"
            )


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
