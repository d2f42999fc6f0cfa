"""Write what evaluate measured: the metrics file, the per-generator table and the figures."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import torch

from lines_model import atomic, imaging, plots
from lines_model.imaging import to_unit

SAMPLES_PER_GRID = 64


def label(name: str, nfe: int) -> str:
    """Row label of a generator: "teacher (22 NFE)", "teacher DDIM-16", "Lines 2-step", "PD 4-step"."""
    if name == "teacher":
        return f"teacher ({nfe} NFE)"
    if m := re.fullmatch(r"teacher_ddim(\d+)", name):
        return f"teacher DDIM-{m.group(1)}"
    if m := re.fullmatch(r"(\w+?)_(\d+)step", name):
        method = {"lines": "Lines", "pd": "PD"}.get(m.group(1), m.group(1))
        return f"{method} {m.group(2)}-step"
    return name


def read_curve(tsv: str | Path, column: str = "loss") -> tuple[list[float], list[float]]:
    """(steps, values) of a dvclive metric file (tab-separated, a `step` column)."""
    with open(tsv, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or column not in rows[0]:
        raise FileNotFoundError(f"{tsv}: no {column!r} column; run the training stage that writes it")
    return [float(r["step"]) for r in rows], [float(r[column]) for r in rows]


def write(
    metrics: dict[str, dict],
    images: dict[str, torch.Tensor],
    traj: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ts,
    *,
    loss_files: dict[str, str | Path],
    metrics_file: str | Path,
    plots_dir: str | Path,
    grid_columns: int,
) -> None:
    """The metrics file, and under `plots_dir`: comparison.png (one row per generator, the same
    noise per column), fid_cost.png (FID against NFE and ms per image, the teacher's FID as the
    reference line), fid_speedup.png, loss_curves.png (the students' training losses on one
    chart, from `loss_files`: label -> dvclive loss.tsv), trajectory.png, samples/<generator>.png.

    The names sort in the order `dvc plots show` should present them: it lists images by folder,
    then file name, so the headline comparison comes first and the samples after the figures.
    """
    plots_dir = Path(plots_dir)
    atomic.write_json(metrics_file, metrics)
    plots.loss_curves({label: read_curve(f) for label, f in loss_files.items()}, plots_dir / "loss_curves.png")
    rows = {label(n, m["nfe"]): images[n][:grid_columns] for n, m in metrics.items()}
    plots.comparison_grid(rows, plots_dir / "comparison.png")
    for name, x in images.items():
        imaging.save_grid(x[:SAMPLES_PER_GRID], plots_dir / "samples" / f"{name}.png", nrow=8)
    plots.metric_bars(metrics, plots_dir / "fid_speedup.png")
    labelled = {label(n, m["nfe"]): m for n, m in metrics.items()}
    reference = label("teacher", metrics["teacher"]["nfe"]) if "teacher" in metrics else None
    plots.quality_cost(labelled, plots_dir / "fid_cost.png", reference=reference)
    inputs, preds, teacher = traj
    plots.trajectory_figure(to_unit(inputs), to_unit(preds), to_unit(teacher), list(ts), plots_dir / "trajectory.png")
