"""Train a one-step student (Lines or the baseline) on pairs: data, student, logging, saving.

The two students differ only in their loss (losses.LinesLoss / losses.BaselineLoss) and their
data (Lines trains on a subset); everything else is this function and training.train.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from lines_model import imaging, pairs, runtime, samplers
from lines_model.config import Params, to_dict
from lines_model.config.students import BaselineCfg
from lines_model.losses import BaselineLoss, LinesLoss
from lines_model.students import init_student, save_student
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
    kind: Literal["lines", "baseline"],
    *,
    pairs_dir: str | Path,
    heldout_dir: str | Path,
    out_dir: str | Path,
    live_dir: str | Path,
    scratch_dir: str | Path,
    subset_file: str | Path | None = None,
    teacher=None,
    made_from: dict | None = None,
) -> None:
    """Train the `kind` student on the pairs in `pairs_dir` (restricted to `subset_file` if given)
    and save it to `out_dir`; curves and sample grids go to the dvclive folder `live_dir`.

    `teacher` (a teachers.Teacher) is needed when student.init is "teacher"; `made_from`
    (provenance.made_from), where given, goes into the student's sidecar. The resumable
    checkpoint lives under `scratch_dir`, keyed by everything that changes the result, and is
    removed once the student is saved.
    """
    from dvclive import Live

    cfg: BaselineCfg = params.train_lines if kind == "lines" else params.train_baseline
    loss_fn = LinesLoss(cfg.loss, cfg.t_dist) if kind == "lines" else BaselineLoss(cfg.loss)
    indices = load_subset(subset_file) if subset_file is not None else None
    data = pairs.PairStore(pairs_dir, indices=indices)
    heldout = pairs.PairStore(heldout_dir)
    torch.manual_seed(cfg.seed)
    model = init_student(params.student, tuple(data.manifest.sample_shape), teacher)
    settings = {"kind": kind, "train": cfg.identity(), "student": to_dict(params.student), "pairs": data.manifest.shards,
              "indices": fingerprint(indices), "teacher": teacher.sha256 if params.student.init == "teacher" else None}
    key = scratch_key(settings, entry=__file__, sections=("teacher", "student", f"train_{kind}", "runtime"),
                      precision=runtime.mixed_precision(params.runtime))
    ckpt_dir = Path(scratch_dir) / f"{kind}-{key}"
    main_process = runtime.state().is_main_process
    live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None) if main_process else None
    fixed_noise, _ = heldout.take(range(min(PROGRESS_IMAGES, len(heldout))))
    grid_epochs = progress_epochs(cfg.epochs)

    def on_epoch_end(epoch: int, ema_model) -> None:
        if epoch in grid_epochs:
            images = samplers.lines_sample(ema_model, fixed_noise, 1)
            imaging.save_grid(to_unit(images.cpu()), Path(live.plots_dir) / "images" / f"samples_epoch_{epoch:03d}.png", nrow=8)

    result = train(
        model, loss_fn, data, cfg, params.runtime, epochs=cfg.epochs, checkpoint_dir=ckpt_dir,
        identity={"key": key}, live=live, on_epoch_end=on_epoch_end, desc=kind,
    )
    if not main_process:
        return
    live.log_metric("final_loss", result.final_loss, plot=False)
    live.end()
    sidecar = {
        "kind": kind,
        "train_pairs": len(data),
        "steps": result.steps,
        "final_loss": result.final_loss,
        "config": {"student": to_dict(params.student), "train": to_dict(cfg)},
        "teacher": data.manifest.teacher,
        "teacher_sha256": data.manifest.teacher_sha256,
    }
    if made_from is not None:
        sidecar[RECORD] = made_from
    save_student(result.ema_model, out_dir, sidecar)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
