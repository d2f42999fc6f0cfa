"""What a method declares (`Method`) and where the pipeline keeps its files (`Layout`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from lines_model.config import Params
from lines_model.generators import Generator


@dataclass(frozen=True)
class Layout:
    """The pipeline's folders, relative to the repository root (dvc.yaml declares the same paths)."""

    root: Path = Path(".")
    scratch: Path | None = None  # resumable state (default root/scratch)

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "scratch", Path(self.scratch) if self.scratch is not None else self.root / "scratch")

    @property
    def pairs(self) -> Path:
        return self.root / "data" / "pairs"

    @property
    def heldout(self) -> Path:
        return self.root / "data" / "heldout"

    @property
    def subset(self) -> Path:
        return self.root / "data" / "subset.json"

    def model(self, method: str) -> Path:
        return self.root / "models" / method

    def live(self, method: str) -> Path:
        """The method's dvclive folder: its training curves and sample grids."""
        return self.root / "training" / method

    def loss_curve(self, method: str) -> Path:
        return self.live(method) / "plots" / "metrics" / "train" / "loss.tsv"


def generator_name(method: str, steps: int) -> str:
    return f"{method}_{steps}step"


@dataclass(frozen=True)
class Method:
    """One distillation method, as the pipeline sees it.

    `train(params, layout, *, out, live, made_from)` writes the trained model(s) to `out` (default
    layout.model(name)), recording `made_from` (provenance.made_from) in each sidecar;
    `generators(params, folder, **load)` yields the generators of a trained
    output folder that the evaluation scores; `load(folder, meta, steps, **load)` is one generator
    of a folder whose sidecar `meta` names this method (the sample command's path). `differences`
    are the (a, b) generator pairs whose a - b the evaluation reports with paired errors, and
    `teacher_generators` the teacher-side generators the method is compared with (PD: the teacher's
    DDIM on its grid). `seed_compared` puts the method's students in the seed comparison, trained
    once per seed by `train`."""

    name: str  # models/<name>, training/<name>, generators <name>_<k>step, the sidecar's "method"
    label: str  # in tables and figures: "<label> <k>-step"
    section: str  # its params.yaml section
    stage: str  # its DVC stage
    recorded: tuple[str, ...]  # the params its outputs record (provenance.made_from): what dvc.yaml lists for its stage
    train: Callable[..., None]
    steps: Callable[[Params], Sequence[int]]  # the step counts the evaluation samples it at
    generators: Callable[..., list[Generator]]
    load: Callable[..., Generator]
    differences: Callable[[Params], Sequence[tuple[str, str]]] = lambda params: ()
    teacher_generators: Callable[..., list[Generator]] = lambda params, teacher, **load: []
    check: Callable[[Params, dict, dict], None] = lambda params, unet_config, scheduler_config: None
    seed_compared: bool = False
    curves: bool = True  # training writes a dvclive loss curve (layout.loss_curve)
    trajectory: bool = False  # its 1-step generator is a LinesStudent S(X_t, t): the trajectory figure
    aliases: tuple[str, ...] = field(default=())  # earlier names of the method in sidecars
    names: Callable[[Params], list[str]] | None = None  # its generators' names, where not <name>_<k>step

    def generator_names(self, params: Params) -> list[str]:
        if self.names is not None:
            return self.names(params)
        return [generator_name(self.name, k) for k in self.steps(params)]
