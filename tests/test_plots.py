"""The figures of lines_model.plots: valid PNGs, exact grid geometry, what the charts draw, atomic writes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from lines_model import imaging, plots  # noqa: E402


@pytest.fixture(autouse=True)
def _no_leaked_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before == []


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.copy()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- save_grid


def test_save_grid_exact_size_and_pixels(tmp_path):
    imgs = rand(64, 3, 16, 16)
    out = tmp_path / "sub" / "dir" / "grid.png"  # parent folders are created
    imaging.save_grid(imgs, out, nrow=8, scale=4, padding=1)
    im = png(out)
    side = (8 * (16 + 1) + 1) * 4  # 548
    assert im.size == (side, side)
    assert im.mode == "RGB"
    a = np.asarray(im)
    # image i = 19 -> grid row 2, column 3; its pixel (y, x) = (5, 11), upscaled by 4.
    i, y, x = 19, 5, 11
    r, c = divmod(i, 8)
    top = (1 + r * 17 + y) * 4
    left = (1 + c * 17 + x) * 4
    want = (imgs[i, :, y, x] * 255).round().to(torch.uint8).numpy()
    block = a[top : top + 4, left : left + 4]  # the whole 4x4 nearest-neighbour block
    assert (block == want).all(), (block[0, 0], want)
    assert (a[0, :] == 255).all()  # white padding
    assert leftovers(out.parent) == []


def test_save_grid_partial_row_single_image_and_clamping(tmp_path):
    imaging.save_grid(rand(10, 3, 16, 16), tmp_path / "a.png", nrow=8, scale=2, padding=1)
    assert png(tmp_path / "a.png").size == ((8 * 17 + 1) * 2, (2 * 17 + 1) * 2)
    imaging.save_grid(rand(3, 3, 32, 32), tmp_path / "b.png", nrow=8, scale=1, padding=2)
    assert png(tmp_path / "b.png").size == (3 * 34 + 2, 34 + 2)
    # one image: padded like any other grid (make_grid alone would drop the padding)
    one = torch.full((1, 3, 16, 16), 2.0)  # out of range: clamped to 1, not an error
    one[0, :, 0, 0] = -1.0
    one[0, 0, 0, 1] = float("nan")
    imaging.save_grid(one, tmp_path / "c.png", nrow=8, scale=3, padding=1)
    a = np.asarray(png(tmp_path / "c.png"))
    assert a.shape == (18 * 3, 18 * 3, 3)
    assert (a[3, 3] == 0).all()  # -1 clamped to 0
    assert tuple(a[3, 6]) == (0, 255, 255)  # NaN shown as 0
    assert (a[10, 10] == 255).all()  # 2 clamped to 1
    # single channel accepted (shown as grey)
    imaging.save_grid(torch.full((2, 1, 4, 4), 0.5), tmp_path / "d.png", scale=1, padding=0)
    assert tuple(np.asarray(png(tmp_path / "d.png"))[0, 0]) == (128, 128, 128)


# --------------------------------------------------------------------------- comparison_grid


def test_comparison_grid(tmp_path):
    rows = {
        "teacher (DPM-Solver++ 20)": rand(6, 3, 16, 16, seed=1),
        "Lines 1-step": rand(6, 3, 16, 16, seed=2),
        "naive 1-step": rand(6, 3, 16, 16, seed=3),
    }
    out = tmp_path / "figs" / "compare.png"
    plots.comparison_grid(rows, out, title="same noise, one column each")
    im = png(out)
    # 6 columns of 64 px cells and 3 rows, plus labels on the left and the title on top
    assert 6 * 64 < im.width < 6 * 64 + 600
    assert 3 * 64 < im.height < 3 * 64 + 150
    plots.comparison_grid({"only": rand(1, 3, 32, 32)}, tmp_path / "one.png")
    assert png(tmp_path / "one.png").size[0] >= 64
    assert leftovers(out.parent) == [] and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- trajectory_figure


def test_trajectory_figure(tmp_path):
    k, ts = 2, [0.0, 0.2, 0.4, 0.6, 0.8]
    inputs = rand(k, len(ts), 3, 16, 16, seed=4)
    preds = rand(k, len(ts), 3, 16, 16, seed=5)
    teacher = rand(k, 3, 16, 16, seed=6)
    out = tmp_path / "traj" / "trajectory.png"
    plots.trajectory_figure(inputs, preds, teacher, ts, out)
    im = png(out)
    # T + 1 columns (the teacher's), 2k rows of 64 px cells, row labels and column titles
    assert (len(ts) + 1) * 64 < im.width < (len(ts) + 1) * 64 + 300
    assert 2 * k * 64 < im.height < 2 * k * 64 + 200
    # ts as a tensor works too
    plots.trajectory_figure(inputs, preds, teacher, torch.tensor(ts), tmp_path / "t2.png")
    assert png(tmp_path / "t2.png").size == im.size
    assert leftovers(out.parent) == []


def test_trajectory_figure_time_titles():
    assert plots._fmt_t(0.0) == "t=0.0"
    assert plots._fmt_t(0.2) == "t=0.2"
    assert plots._fmt_t(1.0) == "t=1.0"
    assert plots._fmt_t(0.25) == "t=0.25"


# --------------------------------------------------------------------------- metric_bars


def test_metric_bars(tmp_path):
    metrics = {
        "teacher (DPM-Solver++ 20)": {"fid": 1.5, "speedup": 1.0},
        "Lines 1-step": {"fid": 4.25, "speedup": 20.0, "kid": 0.01},
        "naive 1-step": {"fid": 12.0, "speedup": 20.0},
        "progressive": {"fid": float("nan"), "speedup": float("inf")},  # n/a in both panels
        "broken": {"fid": None},  # missing speedup: n/a
        "zero": {"fid": 3.0, "speedup": 0.0},  # cannot go on a log axis: n/a
    }
    out = tmp_path / "m" / "metrics.png"
    plots.metric_bars(metrics, out)
    im = png(out)
    assert 400 < im.width < 2000 and 200 < im.height < 800
    # nothing finite at all still makes a figure
    plots.metric_bars({"x": {"fid": float("nan"), "speedup": None}}, tmp_path / "empty.png")
    png(tmp_path / "empty.png")
    assert leftovers(out.parent) == []


# --------------------------------------------------------------------------- quality_cost


def _capture_figures(monkeypatch) -> list:
    """The figures plots writes, kept for inspection (and still written)."""
    figures, save = [], plots._save_figure
    monkeypatch.setattr(plots, "_save_figure", lambda fig, path: (figures.append(fig), save(fig, path)))
    return figures


def _error_bars(ax) -> list[tuple[float, float, float]]:
    """(x, y, half height of the vertical error bar) of each point ax.errorbar drew with one."""
    out = []
    for c in ax.containers:
        if not c.has_yerr:
            continue
        line, (bars,) = c.lines[0], c.lines[2]
        (x,), (y,) = line.get_data()
        (lo, hi) = bars.get_segments()[0][:, 1]
        out.append((float(x), float(y), (hi - lo) / 2))
    return out


def test_quality_cost_draws_each_generator_with_its_fid_error_bar_and_the_teacher_line(tmp_path, monkeypatch):
    metrics = {
        "teacher (22 NFE)": {"nfe": 22, "fid": 1.0, "fid_se": 0.2, "ms_per_image": 40.0},
        "Lines 1-step": {"nfe": 1, "fid": 8.0, "fid_se": 0.5, "ms_per_image": 2.0},
        "PD 4-step": {"nfe": 4, "fid": 2.0, "fid_se": 0.3, "ms_per_image": 8.0},
        "untimed": {"nfe": 2, "fid": 3.0, "fid_se": None, "ms_per_image": float("nan")},  # NFE panel only, no bar
    }
    figures = _capture_figures(monkeypatch)
    out = tmp_path / "q" / "fid_cost.png"
    plots.quality_cost(metrics, out, reference="teacher (22 NFE)")
    png(out)
    assert leftovers(out.parent) == []
    (fig,) = figures
    ax_nfe, ax_ms = fig.axes[:2]
    assert len(fig.axes) == 2  # no fid_data: one row
    assert ax_nfe.get_xscale() == ax_ms.get_xscale() == "log"
    bars = sorted(_error_bars(ax_nfe))
    assert [(x, y) for x, y, _ in bars] == [(1, 8.0), (4, 2.0), (22, 1.0)]
    assert [se for *_, se in bars] == pytest.approx([0.5, 0.3, 0.2])
    assert len(ax_nfe.containers) == 4  # the untimed point too, without a bar
    assert sorted(_error_bars(ax_ms))[0][:2] == (2.0, 8.0) and len(ax_ms.containers) == 3
    labels = {t.get_text() for t in ax_nfe.texts}
    assert labels == set(metrics)  # every generator labelled, the untimed one as a bare point
    assert {t.get_text() for t in ax_ms.texts} == set(metrics) - {"untimed"}
    # the teacher's FID as a dashed reference line across the panel, inside its ± 1 SE band
    (ref,) = [ln for ln in ax_nfe.lines if ln.get_linestyle() == "--"]
    assert set(ref.get_ydata()) == {1.0}
    (band,) = ax_nfe.patches
    ys = band.get_patch_transform().transform(band.get_path().vertices)[:, 1]  # y in data units
    assert (ys.min(), ys.max()) == pytest.approx((0.8, 1.2))


def test_quality_cost_adds_a_row_for_fid_against_the_data_and_draws_whatever_it_is_given(tmp_path, monkeypatch):
    figures = _capture_figures(monkeypatch)
    metrics = {
        "teacher": {"nfe": 10, "fid": 1.0, "fid_se": 0.1, "fid_data": 5.0, "fid_data_se": 0.4, "ms_per_image": 9.0},
        "student": {"nfe": 1, "fid": 4.0, "fid_se": 0.3, "fid_data": 9.0, "fid_data_se": 0.6, "ms_per_image": 1.0},
    }
    plots.quality_cost(metrics, tmp_path / "a.png", reference="teacher")
    assert len(figures[-1].axes) == 4
    ax_data = figures[-1].axes[2]
    assert [se for *_, se in sorted(_error_bars(ax_data))] == pytest.approx([0.6, 0.4])
    # nothing finite, no reference, a reference without a FID, a negative FID: still a figure
    plots.quality_cost({"x": {"fid": float("nan"), "nfe": None}}, tmp_path / "b.png")
    plots.quality_cost(
        {"x": {"fid": -0.1, "fid_se": 0.2, "nfe": 1, "ms_per_image": 0.0}}, tmp_path / "c.png", reference="x"
    )
    plots.quality_cost({}, tmp_path / "d.png", reference="missing")
    for name in "bcd":
        png(tmp_path / f"{name}.png")
    assert figures[-2].axes[0].get_yscale() == "linear"  # a FID <= 0 cannot go on a log axis


# --------------------------------------------------------------------------- atomic writes


def _fail_midway():
    """Wrap a save function so it writes part of the file and then fails."""

    def broken(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n half a file")
        raise OSError("disk full (simulated)")

    return broken


def test_failure_while_writing_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(Image.Image, "save", _fail_midway())
    monkeypatch.setattr(Figure, "savefig", _fail_midway())
    calls = [
        lambda p: imaging.save_grid(rand(4, 3, 8, 8), p),
        lambda p: plots.comparison_grid({"a": rand(2, 3, 8, 8), "b": rand(2, 3, 8, 8)}, p),
        lambda p: plots.trajectory_figure(rand(1, 2, 3, 8, 8), rand(1, 2, 3, 8, 8), rand(1, 3, 8, 8), [0.0, 1.0], p),
        lambda p: plots.metric_bars({"a": {"fid": 1.0, "speedup": 2.0}}, p),
        lambda p: plots.quality_cost(
            {"a": {"fid": 1.0, "fid_se": 0.1, "nfe": 1, "ms_per_image": 2.0}}, p, reference="a"
        ),
    ]
    for i, call in enumerate(calls):
        target = tmp_path / f"fig{i}.png"
        with pytest.raises(OSError, match="simulated"):
            call(target)
        assert not target.exists()
        # an existing figure survives a failed rewrite
        target.write_bytes(b"old")
        with pytest.raises(OSError, match="simulated"):
            call(target)
        assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_loss_curves_draw_every_run_and_name_a_bad_log(tmp_path):
    from lines_model.plots import loss_curves
    from lines_model.report import read_curve

    tsv = tmp_path / "loss.tsv"
    tsv.write_text("step\tloss\n0\t0.5\n5\t0.25\n10\t0.125\n")
    assert read_curve(tsv) == ([0.0, 5.0, 10.0], [0.5, 0.25, 0.125])
    loss_curves({"Lines": read_curve(tsv), "baseline": ([0, 10], [0.4, 0.2])}, tmp_path / "c.png")
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "c.png").convert("RGB")).astype(int)
    # Both runs are drawn: matplotlib's C0 blue and C1 orange both appear.
    for rgb in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(img - np.array(rgb)).sum(-1) < 30).sum() > 20, rgb
    (tmp_path / "bad.tsv").write_text("step\tlr\n0\t1\n")
    with pytest.raises(FileNotFoundError, match=r"bad\.tsv: no 'loss' column"):
        read_curve(tmp_path / "bad.tsv")


def test_metric_bars_draw_the_fid_standard_error(tmp_path):
    def dark_grey(path) -> int:
        img = np.asarray(Image.open(path).convert("RGB")).astype(int)
        return int((np.abs(img - 51).sum(-1) < 12).sum())  # the error bars' colour, 0.2 grey

    plain = {"a": {"fid": 4.0, "speedup": 1.0}, "b": {"fid": 2.0, "speedup": 10.0}}
    with_se = {k: {**v, "fid_se": 1.0} for k, v in plain.items()}
    plots.metric_bars(plain, tmp_path / "plain.png")
    plots.metric_bars(with_se, tmp_path / "se.png")
    assert dark_grey(tmp_path / "se.png") > dark_grey(tmp_path / "plain.png") + 20
