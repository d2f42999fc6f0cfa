"""Training and loading of one-step students S(X_t, t) (students.LinesStudent) on pairs.

Methods whose student is a LinesStudent differ only in their loss and their data (all pairs or the
subset); everything else is `train_student` and training.train. Their generators sample along the
line in k steps (samplers.lines_sample).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from lines_model import generators, imaging, pairs, runtime, samplers
from lines_model.config import Params, to_dict
from lines_model.config.students import OneStepCfg
from lines_model.errors import InputError
from lines_model.generators import Generator
from lines_model.methods.base import Layout, generator_name
from lines_model.students import init_student, load_student, save_student
from lines_model.hashing import fingerprint
from lines_model.imaging import to_unit
from lines_model.provenance import RECORD, scratch_key
from lines_model.training import train

PROGRESS_GRIDS = 4  # sample grids kept in the training log: evenly spaced epochs, the last included
PROGRESS_IMAGES = 64  # fixed held-out noises those grids show


def load_subset(path: str | Path) -> list[int]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the subset_50k stage first")
    return json.loads(path.read_text())["indices"]


def progress_epochs(epochs: int, n: int = PROGRESS_GRIDS) -> set[int]:
    return {int(e) for e in np.linspace(epochs - 1, 0, n, endpoint=False)} if epochs > n else set(range(epochs))


def train_student(
    params: Params,
    method: str,
    section: str,
    loss_fn,
    layout: Layout,
    *,
    entry: str | Path,
    subset: bool,
    out: str | Path | None = None,
    live: str | Path | None = None,
    made_from: dict | None = None,
) -> None:
    """Train the student of `method` with `loss_fn` under the settings of params section `section`, on
    the pairs (only the subset's with `subset`), and save it to `out` (default layout.model(method));
    curves and sample grids go to the dvclive folder `live` (default layout.live(method)); `made_from`
    (provenance.made_from), where given, goes into the student's sidecar.

    The resumable checkpoint lives under layout.scratch, keyed by everything that changes the result
    (the code `entry` runs among it), and is removed once the student is saved.
    """
    from dvclive import Live

    cfg: OneStepCfg = getattr(params, section)
    out, live_dir = Path(out or layout.model(method)), Path(live or layout.live(method))
    indices = load_subset(layout.subset) if subset else None
    data = pairs.PairStore(layout.pairs, indices=indices)
    heldout = pairs.PairStore(layout.heldout)
    teacher = None
    if params.student.init == "teacher":
        from lines_model.teachers import load_teacher

        teacher = load_teacher(params.teacher.model, params.teacher.revision)
    torch.manual_seed(cfg.seed)
    model = init_student(params.student, tuple(data.manifest.sample_shape), teacher)
    settings = {
        "method": method,
        "train": cfg.identity(),
        "student": to_dict(params.student),
        "pairs": data.manifest.shards,
        "indices": fingerprint(indices),
        "teacher": teacher.sha256 if params.student.init == "teacher" else None,
    }
    key = scratch_key(
        settings,
        entry=entry,
        sections=("teacher", "student", section, "runtime"),
        precision=runtime.mixed_precision(params.runtime),
    )
    ckpt_dir = layout.scratch / f"{method}-{key}"
    main_process = runtime.state().is_main_process
    live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None) if main_process else None
    fixed_noise, _ = heldout.take(range(min(PROGRESS_IMAGES, len(heldout))))
    grid_epochs = progress_epochs(cfg.epochs)

    def on_epoch_end(epoch: int, ema_model) -> None:
        if epoch in grid_epochs:
            images = samplers.lines_sample(ema_model, fixed_noise, 1)
            imaging.save_grid(
                to_unit(images.cpu()), Path(live.plots_dir) / "images" / f"samples_epoch_{epoch:03d}.png", nrow=8
            )

    result = train(
        model,
        loss_fn,
        data,
        cfg,
        params.runtime,
        epochs=cfg.epochs,
        checkpoint_dir=ckpt_dir,
        identity={"key": key},
        live=live,
        on_epoch_end=on_epoch_end,
        desc=method,
    )
    if not main_process:
        return
    live.log_metric("final_loss", result.final_loss, plot=False)
    live.end()
    sidecar = {
        "method": method,
        "train_pairs": len(data),
        "steps": result.steps,
        "final_loss": result.final_loss,
        "config": {"student": to_dict(params.student), "train": to_dict(cfg)},
        "teacher": data.manifest.teacher,
        "teacher_sha256": data.manifest.teacher_sha256,
    }
    if made_from is not None:
        sidecar[RECORD] = made_from
    save_student(result.ema_model, out, sidecar)
    shutil.rmtree(ckpt_dir, ignore_errors=True)


def load(
    folder: str | Path,
    *,
    method: str,
    label: str,
    steps: int | None,
    max_steps: int | None = None,
    device="cpu",
    runtime_cfg=None,
) -> Generator:
    """The `steps`-step generator (default 1) of the one-step student in `folder`; a student trained at
    t = 0 only (`max_steps` 1) refuses more steps."""
    k = 1 if steps is None else steps
    if k < 1:
        raise InputError(f"--steps: must be at least 1, got {k}")
    if max_steps is not None and k > max_steps:
        raise InputError(
            f"--steps: {folder} is a {label} student, trained at t = 0 only: it samples in 1 step, not {k}"
        )
    student, _ = load_student(folder, device)
    shape = generators.sample_shape(student.unet.config)
    student = runtime.prepare_inference(student, device, runtime_cfg) if runtime_cfg else student
    return Generator(
        generator_name(method, k),
        k,
        lambda n: samplers.lines_sample(student, n, k),
        shape,
        student,
        label=f"{label} {k}-step",
    )
