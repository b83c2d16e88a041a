"""Figures and tables a user can read: accuracy axes fitted to the curves, no trivial
top-5 line, a DC spectrum not stretched by rounding noise, sweep titles inside the figure,
whole numbers in the sweep table printed as such."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from hncl_jax import sweep
from hncl_jax.train import plots


def _acc_history(top5: float):
    rows = []
    for epoch, acc in ((1, 0.92), (2, 0.95), (3, 0.99)):
        row = {"step": epoch * 10, "epoch": epoch}
        for rep in "hz":
            row[f"eval/test/{rep}/ncm_acc"] = acc
            row[f"eval/test/{rep}/knn5_acc"] = acc - 0.01
        if epoch == 3:
            row["eval/test/z/probe_top1"] = 0.97
            row["eval/test/z/probe_top5"] = top5
        rows.append(row)
    return rows


def test_accuracy_axis_spans_the_curves_and_trivial_top5_is_not_drawn():
    fig = plots.accuracy_figure(_acc_history(top5=1.0))
    for ax in fig.axes:
        low, high = ax.get_ylim()
        assert 0.85 < low < 0.91 and 0.99 < high <= 1.02, (low, high)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert not any("top5" in label for label in labels)
    fig = plots.accuracy_figure(_acc_history(top5=0.995))  # informative: drawn
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "linear probe top5 (test)" in labels


def test_dc_spectrum_axis_is_not_stretched_by_rounding_noise():
    spectrum = np.array([1.0, 0.3, 0.02, 1e-12])  # the last: a zero of the rank-C-1 means
    fig = plots.dc_spectrum_figure({"test/z": spectrum})
    (ax,) = fig.axes
    fig.canvas.draw()
    assert ax.get_ylim()[0] > 1e-4
    drawn = np.asarray(ax.lines[0].get_ydata(), float)
    assert np.isnan(drawn[-1]) and np.allclose(drawn[:3], spectrum[:3])


def test_sweep_panel_title_stays_inside_the_figure():
    rows = sweep.aggregate(
        [
            {"loss.beta": b, "seed": s, "eval/test/z/probe_top1": 0.5 + b / 100 + s / 100}
            for b in (0.0, 2.0, 10.0)
            for s in (0, 1, 2)
        ]
    )
    for metric in ("eval/test/z/probe_top1", "nc/train/z/equal_inner_product"):
        for r in rows:
            r[metric], r[f"{metric}_std"] = r["eval/test/z/probe_top1"], 0.01
        fig = plots.sweep_figure(rows, "loss.beta", [metric])  # as `--plot` draws it
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        (ax,) = fig.axes
        box = ax.title.get_window_extent(canvas.get_renderer())
        width = fig.get_figwidth() * fig.dpi
        assert box.x0 >= 0 and box.x1 <= width, (metric, box, width)


def test_sweep_table_prints_whole_numbers_as_such():
    rows = sweep.aggregate(
        [
            {"loss.beta": b, "seed": s, "epoch": 2.0, "eval/acc": 0.5 + s / 10}
            for b in (0.0, 10.0)
            for s in (0, 1)
        ]
    )
    table = sweep.markdown_table(rows, ["loss.beta", "n", "epoch", "eval/acc"])
    body = table.splitlines()[2:]
    assert body[0].startswith("| 0 | 2 | 2 | 0.5500 ± 0.0707 |"), table
    assert body[1].startswith("| 10 | 2 | 2 |"), table
    assert "2.0000" not in table and "0.0000" not in table
