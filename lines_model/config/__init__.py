"""Typed view of params.yaml: one dataclass per section, each in its own module.

The dataclasses carry types and allowed ranges only; params.yaml is the one source of values
(profiles state only their differences from it). `load_params(path)` rejects missing or unknown
keys, wrong types, out-of-range values and broken cross-key rules with a `ConfigError` that
names the key, before any stage does work. Rules that need the teacher live in preflight.py.

Every stage validates the whole file, but its results depend only on the sections it reads: a
stage's DVC deps hold this module and the modules of the sections dvc.yaml lists under its
`params` (tools/stage_deps.py), so adding an evaluate key reruns evaluate and nothing upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lines_model.config.cd import CDCfg
from lines_model.config.evaluate import EvaluateCfg
from lines_model.config.pairs import PairsCfg
from lines_model.config.pd import PDCfg
from lines_model.config.runtime import RuntimeCfg
from lines_model.config.students import BaselineCfg, LinesCfg, StudentCfg
from lines_model.config.subset import SubsetCfg
from lines_model.config.teacher import TeacherCfg
from lines_model.errors import ConfigError, InputError
from lines_model.typed import from_dict, to_dict

__all__ = ["Params", "load_params", "parse_params", "read_yaml", "to_dict"]


@dataclass(frozen=True)
class Params:
    teacher: TeacherCfg
    pairs: PairsCfg
    subset: SubsetCfg
    student: StudentCfg
    train_lines: LinesCfg
    train_baseline: BaselineCfg
    pd: PDCfg
    cd: CDCfg
    evaluate: EvaluateCfg
    runtime: RuntimeCfg

    def validate(self, where: str) -> None:
        if self.subset.count > self.pairs.count:
            raise ConfigError(f"subset.count: {self.subset.count} is larger than pairs.count={self.pairs.count}")
        e = self.evaluate
        if e.count + e.reference > self.pairs.heldout:
            raise ConfigError(
                f"evaluate.count: evaluate.count + evaluate.reference = {e.count + e.reference} "
                f"is larger than pairs.heldout={self.pairs.heldout}"
            )
        for k in e.pd_steps:
            if k not in self.pd.round_steps():
                raise ConfigError(
                    f"evaluate.pd_steps: {k} is not a step count any round of pd produces ({self.pd.round_steps()})"
                )
        if e.feature_extractor == "shapes-features" and not e.feature_dir:
            raise ConfigError("evaluate.feature_dir: the shapes-features extractor needs its weights folder")
        if any(not 1 <= k <= 1 + len(self.cd.sampling_sigmas) for k in e.cd_steps):
            raise ConfigError(
                f"evaluate.cd_steps: step counts must lie in 1..{1 + len(self.cd.sampling_sigmas)} "
                f"(1 + the noise levels of cd.sampling_sigmas), got {list(e.cd_steps)}"
            )
        if any(k < 1 for k in e.lines_steps):
            raise ConfigError(f"evaluate.lines_steps: step counts must be >= 1, got {list(e.lines_steps)}")
        if any(not 0.0 <= t <= 1.0 for t in e.trajectory_ts):
            raise ConfigError(f"evaluate.trajectory_ts: times must lie in [0, 1], got {list(e.trajectory_ts)}")


def parse_params(data: dict) -> Params:
    return from_dict(Params, data, "")


def read_yaml(text: str) -> Any:
    """A params document read as DVC reads it (ruamel.yaml's safe loader, YAML 1.2), so that a stage
    computes with the values DVC records in dvc.lock and that `dvc exp run -S` writes. PyYAML reads
    YAML 1.1, where the unquoted `no` that `-S runtime.mixed_precision=no` writes is false, `010` is 8
    (DVC: 10) and `1:30` is 90. Raises InputError (one line) on a document that does not parse."""
    from ruamel.yaml import YAML, YAMLError

    try:
        return YAML(typ="safe").load(text)
    except YAMLError as e:
        raise InputError(" ".join(str(e).split())) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = read_yaml(path.read_text())
    except InputError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    try:
        return parse_params(data or {})
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
