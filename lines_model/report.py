"""Write what evaluate measured: the metrics file, the per-generator table and the figures."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from lines_model import atomic, imaging, plots
from lines_model.imaging import to_unit

SAMPLES_PER_GRID = 64


def read_curve(tsv: str | Path, column: str = "loss") -> tuple[list[float], list[float]]:
    """(steps, values) of a dvclive metric file (tab-separated, a `step` column)."""
    with open(tsv, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or column not in rows[0]:
        raise FileNotFoundError(f"{tsv}: no {column!r} column; run the training stage that writes it")
    return [float(r["step"]) for r in rows], [float(r[column]) for r in rows]


def write(
    metrics: dict[str, dict],
    labels: dict[str, str],
    images: dict[str, torch.Tensor],
    traj: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    ts,
    *,
    loss_files: dict[str, str | Path],
    metrics_file: str | Path,
    plots_dir: str | Path,
    grid_columns: int,
) -> None:
    """The metrics file, and under `plots_dir` (generators shown by their `labels`): comparison.png (one
    row per generator, the same
    noise per column), fid_cost.png (FID against NFE and ms per image, the teacher's FID as the
    reference line), fid_speedup.png, loss_curves.png (the students' training losses on one
    chart, from `loss_files`: label -> dvclive loss.tsv), trajectory.png, samples/<generator>.png.

    The names sort in the order `dvc plots show` should present them: it lists images by folder,
    then file name, so the headline comparison comes first and the samples after the figures.
    """
    plots_dir = Path(plots_dir)
    atomic.write_json(metrics_file, metrics)
    plots.loss_curves({label: read_curve(f) for label, f in loss_files.items()}, plots_dir / "loss_curves.png")
    rows = {labels[n]: images[n][:grid_columns] for n in metrics}
    plots.comparison_grid(rows, plots_dir / "comparison.png")
    for name, x in images.items():
        imaging.save_grid(x[:SAMPLES_PER_GRID], plots_dir / "samples" / f"{name}.png", nrow=8)
    plots.metric_bars(metrics, plots_dir / "fid_speedup.png")
    labelled = {labels[n]: m for n, m in metrics.items()}
    reference = labels.get("teacher")
    plots.quality_cost(labelled, plots_dir / "fid_cost.png", reference=reference)
    if traj is None:
        return
    inputs, preds, teacher = traj
    plots.trajectory_figure(to_unit(inputs), to_unit(preds), to_unit(teacher), list(ts), plots_dir / "trajectory.png")
