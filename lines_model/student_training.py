"""Glue shared by the train_lines and train_baseline stages: data, student, logging, saving."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lines_model import pairs, plots, runtime, samplers
from lines_model.config import Params, TrainCfg, to_dict
from lines_model.students import build_student, save_student
from lines_model.training import train


def load_subset(path: str | Path = "data/subset.json"):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the subset_50k stage first")
    return json.loads(path.read_text())["indices"]


def run(params: Params, *, name: str, cfg: TrainCfg, loss_fn, indices=None, kind: str) -> None:
    """Train a student on data/pairs (optionally a subset) and save it to models/<name>."""
    from dvclive import Live

    data = pairs.PairStore("data/pairs", indices=indices)
    heldout = pairs.PairStore("data/heldout")
    shape = tuple(data.manifest.sample_shape)
    torch.manual_seed(cfg.seed)
    model = build_student(params.student, shape)
    ckpt_dir = Path(f"models/{name}.ckpt")
    main_process = runtime.state().is_main_process
    live = Live(f"dvclive/{name}", resume=(ckpt_dir / "state.json").exists(), save_dvc_exp=False, dvcyaml=None) if main_process else None
    fixed_noise, _ = heldout.take(range(min(64, len(heldout))))

    def on_epoch_end(epoch: int, ema_model) -> None:
        images = samplers.lines_sample(ema_model, fixed_noise, 1, t_scale=params.student.t_scale)
        path = Path(live.plots_dir) / "images" / f"samples_epoch_{epoch:03d}.png"
        plots.save_grid(((images + 1) / 2).clamp(0, 1).cpu(), path, nrow=8)

    result = train(
        model,
        loss_fn,
        data,
        cfg,
        params.runtime,
        checkpoint_dir=ckpt_dir,
        fingerprint_extra={"student": to_dict(params.student), "pairs": data.manifest.shards, "indices_n": len(data), "kind": kind},
        live=live,
        on_epoch_end=on_epoch_end,
        desc=name,
    )
    if not main_process:
        return
    live.log_metric("final_loss", result.final_loss, plot=False)
    live.end()
    sidecar = {
        "kind": kind,
        "t_scale": params.student.t_scale,
        "train_pairs": len(data),
        "steps": result.steps,
        "final_loss": result.final_loss,
        "config": {"student": to_dict(params.student), "train": to_dict(cfg)},
        "teacher": data.manifest.teacher,
        "teacher_sha256": data.manifest.teacher_sha256,
    }
    save_student(result.ema_model, f"models/{name}", sidecar)
