"""Figures: sample grids, generator comparisons, the trajectory figure, metric bar charts, quality vs cost.

Callers are the library itself (report.py, the trainers, the sample CLI), which check what they are
given at their own boundaries. Every PNG is written through `atomic.atomic_path`, so a job killed or
failing midway leaves either the old figure or the new one at the target, never a truncated file.

Images are float tensors in [0, 1] shaped (n, 3, H, W) (one channel is also accepted and shown
as grey); values outside [0, 1] are clamped, NaN is shown as 0. They are small (16x16, 32x32),
so they are always enlarged with nearest-neighbour resampling to keep the pixels crisp.

Matplotlib figures are built as `matplotlib.figure.Figure` objects drawn by the Agg canvas
directly: nothing goes through pyplot, so no display is needed and no figure is ever left
registered in pyplot's figure manager.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from .atomic import atomic_path
from .imaging import unit_rgb

__all__ = ["comparison_grid", "trajectory_figure", "metric_bars", "quality_cost", "loss_curves"]

_DPI = 100
_CELL_PX = 64  # on-screen size an image is enlarged to (at least) in matplotlib figures
_GAP_PX = 4
_FONT = 8


# --------------------------------------------------------------------------- helpers


def _hwc(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) float array for imshow."""
    return img.permute(1, 2, 0).numpy()


def _new_figure(width_px: float, height_px: float) -> Figure:
    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Figure, path) -> None:
    # The temporary name ends in ".tmp", so the format is given explicitly.
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.05, facecolor="white")


def _scale_for(h: int, w: int) -> int:
    """Integer enlargement so the larger side is at least _CELL_PX screen pixels."""
    return max(1, math.ceil(_CELL_PX / max(h, w)))


def _image_axes(fig: Figure, left: float, top: float, w: float, h: float, W: float, H: float):
    """Add image axes at a pixel rectangle (origin top-left) of a W x H px figure."""
    ax = fig.add_axes((left / W, 1.0 - (top + h) / H, w / W, h / H))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return ax


def _show(ax, img: torch.Tensor) -> None:
    ax.imshow(_hwc(img), interpolation="nearest", vmin=0.0, vmax=1.0)


def _row_label(ax, text: str) -> None:
    ax.set_ylabel(text, rotation=0, ha="right", va="center", fontsize=_FONT, labelpad=6)


def _fmt_t(t: float) -> str:
    return f"t={t:.1f}" if abs(round(t, 1) - t) < 1e-9 else f"t={t:.3g}"


# --------------------------------------------------------------------------- public API


def comparison_grid(rows: Mapping[str, torch.Tensor], path, title: str | None = None) -> None:
    """One row per generator (its label on the left), one column per noise.

    `rows` maps a label such as "teacher (DPM-Solver++ 20)" or "Lines 1-step" to images
    (n, 3, H, W); every row must have the same n (column j is the same noise for every row).
    """
    checked = [(label, unit_rgb(imgs)) for label, imgs in rows.items()]

    n = checked[0][1].shape[0]
    hmax = max(x.shape[-2] for _, x in checked)
    wmax = max(x.shape[-1] for _, x in checked)
    s = _scale_for(hmax, wmax)
    cw, ch = wmax * s, hmax * s
    left, top = 8, (24 if title else 4)
    W = left + n * cw + (n - 1) * _GAP_PX + 4
    H = top + len(checked) * ch + (len(checked) - 1) * _GAP_PX + 4

    fig = _new_figure(W, H)
    for r, (label, imgs) in enumerate(checked):
        for j in range(n):
            ax = _image_axes(fig, left + j * (cw + _GAP_PX), top + r * (ch + _GAP_PX), cw, ch, W, H)
            _show(ax, imgs[j])
            if j == 0:
                _row_label(ax, label)
    if title:
        fig.suptitle(title, fontsize=_FONT + 2, y=1.0 - 4 / H, va="top")
    _save_figure(fig, path)


def trajectory_figure(inputs, predictions, teacher, ts: Sequence[float], path) -> None:
    """The figure of the original experiment: what the student makes of each point of a trajectory.

    `inputs` and `predictions` are (k, T, 3, H, W) with T = len(ts), `teacher` is (k, 3, H, W).
    Each of the k samples gets a pair of rows: "X_t" (the inputs at each t in `ts`) above
    "S(X_t, t)" (the student's prediction for each); a last column, titled "teacher" and
    spanning the pair, holds the teacher's image for that sample. Columns are titled "t=0.0", ...
    """
    inputs, predictions, teacher = unit_rgb(inputs), unit_rgb(predictions), unit_rgb(teacher)
    ts = [float(t) for t in ts]
    k, T = inputs.shape[:2]

    hmax = max(inputs.shape[-2], teacher.shape[-2])
    wmax = max(inputs.shape[-1], teacher.shape[-1])
    s = _scale_for(hmax, wmax)
    cw, ch = wmax * s, hmax * s
    pair_gap = 4 * _GAP_PX
    teacher_gap = 3 * _GAP_PX
    left, top = 8, 18
    pair_h = 2 * ch + _GAP_PX
    W = left + T * cw + (T - 1) * _GAP_PX + teacher_gap + cw + 4
    H = top + k * pair_h + (k - 1) * pair_gap + 4

    fig = _new_figure(W, H)
    for i in range(k):
        y0 = top + i * (pair_h + pair_gap)
        for r, (name, src) in enumerate((("X_t", inputs), ("S(X_t, t)", predictions))):
            for j in range(T):
                ax = _image_axes(fig, left + j * (cw + _GAP_PX), y0 + r * (ch + _GAP_PX), cw, ch, W, H)
                _show(ax, src[i, j])
                if i == 0 and r == 0:
                    ax.set_title(_fmt_t(ts[j]), fontsize=_FONT, pad=3)
                if j == 0:
                    _row_label(ax, name)
        # The teacher's image, centred on the pair (the axes span both rows; aspect stays equal).
        ax = _image_axes(fig, left + T * cw + (T - 1) * _GAP_PX + teacher_gap, y0, cw, pair_h, W, H)
        _show(ax, teacher[i])
        ax.set_title("teacher", fontsize=_FONT, pad=3)
    _save_figure(fig, path)


def _metric(entry: Mapping, key: str) -> float | None:
    """A finite float, or None for a missing, None, NaN or infinite value (drawn as "n/a")."""
    value = entry.get(key)
    return float(value) if value is not None and math.isfinite(value) else None


def metric_bars(metrics: Mapping[str, Mapping], path) -> None:
    """Two bar charts side by side: FID per generator and speedup per generator (log scale).

    `metrics` maps a generator name to a dict with (at least) "fid" and "speedup"; a "fid_se"
    draws an error bar of one standard error on its FID. A value that is missing, None, NaN or
    infinite (or a speedup <= 0, which a log axis cannot show) draws no bar; "n/a" is written in
    its place.
    """
    names = list(metrics)
    fids = [_metric(e, "fid") for e in metrics.values()]
    fid_ses = [_metric(e, "fid_se") for e in metrics.values()]
    speedups = [sp if sp is not None and sp > 0 else None for sp in (_metric(e, "speedup") for e in metrics.values())]

    width = max(8.0, 1.2 * len(names) + 2.0)
    fig = Figure(figsize=(width, 4.0), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax_fid, ax_sp = fig.subplots(1, 2)
    panels = (
        (ax_fid, fids, fid_ses, "FID ± 1 standard error (lower is better)", "{:.2f}", False),
        (ax_sp, speedups, None, "speedup over teacher (log scale)", "{:.1f}×", True),
    )
    x = np.arange(len(names))
    for ax, values, errors, label, fmt, log in panels:
        ok = [i for i, v in enumerate(values) if v is not None]
        if log and ok:
            ax.set_yscale("log")
        if ok:
            yerr = [errors[i] or 0.0 for i in ok] if errors else None
            bars = ax.bar(
                x[ok],
                [values[i] for i in ok],
                color=[f"C{i % 10}" for i in ok],
                width=0.7,
                yerr=yerr,
                capsize=3 if yerr else 0,
                error_kw={"elinewidth": 1, "ecolor": "0.2"},
            )
            ax.bar_label(bars, labels=[fmt.format(values[i]) for i in ok], fontsize=_FONT, padding=2)
            lo, hi = ax.get_ylim()
            if log:
                vmin = min(values[i] for i in ok)
                vmax = max(values[i] for i in ok)
                lo = min(vmin, 1.0) / 2 if vmin > 0 else lo
                ax.set_ylim(lo, vmax * 3.0)
            else:
                ax.set_ylim(min(lo, 0.0), hi * 1.12 if hi > 0 else 1.0)
        else:
            ax.set_ylim(0.0, 1.0)
        # "n/a" where nothing could be drawn, placed in axes coordinates (valid on log axes too).
        xy = blended_transform_factory(ax.transData, ax.transAxes)
        for i, v in enumerate(values):
            if v is None:
                ax.text(x[i], 0.03, "n/a", transform=xy, ha="center", va="bottom", fontsize=_FONT, color="0.4")
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=_FONT)
        ax.set_title(label, fontsize=_FONT + 2)
        ax.grid(axis="y", alpha=0.3, which="both")
        ax.set_axisbelow(True)
    _save_figure(fig, path)


# (metrics key of the FID, its standard error, the panel's y label); a row of panels per FID present.
_FIDS = (
    ("fid", "fid_se", "FID vs teacher samples ± 1 SE"),
    ("fid_data", "fid_data_se", "FID vs data ± 1 SE"),
)
_COSTS = (("nfe", "network evaluations per image (NFE)"), ("ms_per_image", "ms per image"))


def _plain_log_ticks(axis) -> None:
    """Log-axis ticks at 1, 2, 5 times powers of ten, written as plain numbers (0.5, 2, 20)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def quality_cost(metrics: Mapping[str, Mapping], path, reference: str | None = None) -> None:
    """Quality against cost, the figure distillation papers lead with: one labelled point per generator.

    `metrics` maps a generator label to a dict with "fid", "fid_se" (one standard error, drawn as a
    vertical error bar), "nfe" and "ms_per_image". Columns: cost as NFE, then as milliseconds per
    image, both on log axes. Rows: FID against the teacher's samples, then, when any generator has a
    "fid_data", FID against the data set (with "fid_data_se"). The y axis is logarithmic when every
    FID drawn in it is positive. The `reference` generator (the teacher) is also drawn across each
    panel as a dashed line at its FID inside a band of ± 1 standard error. A value that is missing,
    None, NaN or infinite, or a cost <= 0, leaves that generator out of that panel only.
    """
    rows = [f for f in _FIDS if any(_metric(e, f[0]) is not None for e in metrics.values())] or [_FIDS[0]]
    fig = Figure(figsize=(11.0, 4.2 * len(rows)), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(_COSTS), squeeze=False)
    for (fid_key, se_key, ylabel), row in zip(rows, axes):
        ref = metrics.get(reference, {}) if reference is not None else {}
        ref_fid, ref_se = _metric(ref, fid_key), _metric(ref, se_key) or 0.0
        for (cost_key, xlabel), ax in zip(_COSTS, row):
            ax.set_xscale("log")
            positive, xs = True, set()
            for i, (name, entry) in enumerate(metrics.items()):
                x, y = _metric(entry, cost_key), _metric(entry, fid_key)
                if x is None or x <= 0 or y is None:
                    continue
                positive &= y > 0
                xs.add(x)
                se = _metric(entry, se_key)
                ax.errorbar(
                    [x],
                    [y],
                    yerr=None if se is None else [se],
                    fmt="o",
                    color=f"C{i % 10}",
                    markersize=5,
                    capsize=3,
                    elinewidth=1,
                )
                ax.annotate(name, (x, y), xytext=(5, 3), textcoords="offset points", fontsize=_FONT)
            if ref_fid is not None:
                positive &= ref_fid > 0
                ax.axhspan(ref_fid - ref_se, ref_fid + ref_se, color="0.5", alpha=0.15, linewidth=0)
                ax.axhline(
                    ref_fid,
                    color="0.4",
                    linestyle="--",
                    linewidth=1,
                    label=f"{reference}: {ref_fid:.2f} ± {ref_se:.2f}",
                )
                ax.legend(fontsize=_FONT, loc="upper right")
            if positive and ax.has_data():
                ax.set_yscale("log")
                _plain_log_ticks(ax.yaxis)
            if cost_key == "nfe" and xs:
                ax.set_xticks(sorted(xs))  # the step counts themselves
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            else:
                _plain_log_ticks(ax.xaxis)
            ax.margins(x=0.15)  # room for the labels right of the costliest point
            ax.set_xlabel(xlabel + " (log scale)", fontsize=_FONT + 1)
            ax.set_ylabel(ylabel + " (lower is better)", fontsize=_FONT + 1)
            ax.grid(alpha=0.3, which="both")
            ax.set_axisbelow(True)
    _save_figure(fig, path)


def loss_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path, ylabel: str = "training loss"
) -> None:
    """The training curves of several runs on one chart: `curves` maps a label to (steps, values).

    The y axis is logarithmic when every value is positive (losses fall over decades).
    """
    fig = Figure(figsize=(6.4, 3.6), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    positive = True
    for i, (label, (steps, values)) in enumerate(curves.items()):
        positive &= min(values) > 0
        ax.plot(steps, values, label=label, color=f"C{i % 10}", linewidth=1.2)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step", fontsize=_FONT + 1)
    ax.set_ylabel(ylabel, fontsize=_FONT + 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=_FONT + 1)
    _save_figure(fig, path)
