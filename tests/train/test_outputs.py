"""Tests of what a run shows its user: figures, spectra history, summary, TensorBoard, W&B."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import struct

import numpy as np
import pytest

from configs import default, synthetic
from hncl_jax import train
from hncl_jax.train import plots, reporting, validation
from hncl_jax.train import workdir as workdir_lib

STEPS_PER_EPOCH = 10
CONFIG = {
    "name": "digits:smoke",
    "dataset": "digits",
    "model": "tiny_cnn",
    "seed": 3,
    "embed_dim": -1,
    "normalization": "unit_ball",
    "batch_size": 64,
    "optimizer": {"name": "adam", "learning_rate": 0.001},
    "loss": {
        "name": "hscl",
        "psi": "infonce",
        "alpha": 1.0,
        "hardening": "exponential",
        "beta": 2.0,
        "epsilon": 3.0,
        "k": 16,
        "estimator": "sampled",
        "draw": "anchor",
        "temperature": 0.5,
    },
    "clop": {"weight": 0.0, "prototypes": "orthonormal"},
}
TITLE = reporting.run_title(CONFIG)


def _history(num_epochs: int = 6, eval_every: int = 2, same_splits: bool = True):
    """Training rows at every step (no epoch key, as the trainer writes them) and
    evaluation rows every `eval_every` epochs; train and test NC values coincide."""
    rows = []
    for step in range(1, num_epochs * STEPS_PER_EPOCH + 1):
        rows.append({"step": step, "train/loss": 2.0 / np.sqrt(step)})
        if step % (eval_every * STEPS_PER_EPOCH):
            continue
        epoch = step // STEPS_PER_EPOCH
        row = {"step": step, "epoch": epoch, "train/epoch_loss": 1.0 / epoch}
        row["train/theorem_bound"] = 0.25
        for rep in ("h", "z"):
            row[f"eval/train/{rep}/ncm_acc"] = 1 - 0.5 / epoch
            row[f"eval/test/{rep}/ncm_acc"] = 1 - 0.5 / epoch  # coincides with train
            row[f"eval/test/{rep}/knn5_acc"] = 1 - 0.6 / epoch
            row[f"eval/test/{rep}/knn200_acc"] = 1 - 0.6 / epoch
            if epoch == num_epochs:
                row[f"eval/test/{rep}/probe_top1"] = 0.9
                row[f"eval/test/{rep}/probe_top5"] = 0.99
        for split in ("train", "test"):
            for i, metric in enumerate(plots.NC_PANELS):
                shift = 0 if same_splits or split == "train" else 1
                row[f"nc/{split}/z/{metric}"] = 10.0 ** (-epoch - i - shift)
        rows.append(row)
    return rows


def _spectra_records(epochs=(2, 4, 6)):
    rng = np.random.default_rng(0)
    return [
        {
            "step": e * STEPS_PER_EPOCH,
            "epoch": e,
            "spectra": {
                f"{split}/{rep}": np.sort(rng.random(9))[::-1] ** e
                for split in ("train", "test")
                for rep in "hz"
            },
        }
        for e in epochs
    ]


def _suptitle(fig) -> str:
    return fig._suptitle.get_text().replace("\n", " · ")


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None, f"axes {ax.get_title()!r} has no legend"
    return [t.get_text() for t in legend.get_texts()]


def _assert_distinguishable(lines) -> None:
    """Every series differs in marker or line style (and marker size), semi-transparent:
    a series drawn exactly on another one stays visible."""
    styles = [(line.get_marker(), str(line.get_linestyle())) for line in lines]
    assert len(set(styles)) == len(styles), styles
    assert all(line.get_alpha() is not None and line.get_alpha() < 1 for line in lines)
    sizes = [line.get_markersize() for line in lines]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)


def test_epoch_axis_maps_steps_to_epochs():
    rows = _history()
    xs, label = plots.epoch_axis(rows)  # steps per epoch inferred from evaluation rows
    assert label == "epoch"
    assert xs[5] == pytest.approx(0.5) and xs[20] == 2.0
    xs, label = plots.epoch_axis([{"step": 7, "train/loss": 1.0}], steps_per_epoch=7)
    assert (xs[7], label) == (1.0, "epoch")
    xs, label = plots.epoch_axis([{"step": 7, "train/loss": 1.0}])
    assert (xs[7], label) == (7.0, "step")


def test_loss_figure_every_logged_step_against_epochs():
    rows = _history()
    fig = plots.loss_figure(rows, title=TITLE)
    (ax,) = fig.axes
    assert _suptitle(fig) == TITLE and "digits:smoke" in TITLE
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss"
    step_line = next(line for line in ax.lines if line.get_label().startswith("loss"))
    logged = [r for r in rows if "train/loss" in r]
    assert len(step_line.get_xdata()) == len(logged) == 60
    np.testing.assert_allclose(step_line.get_xdata(), [r["step"] / 10 for r in logged])
    texts = _legend_texts(ax)
    assert "epoch mean" in texts and any(t.startswith("theorem minimum 0.25") for t in texts)
    with pytest.raises(ValueError, match="no train/loss"):
        plots.loss_figure([{"step": 1, "eval/test/z/ncm_acc": 0.5}])


def test_accuracy_figure_ncm_knn_probe_against_epochs():
    fig = plots.accuracy_figure(_history(), title=TITLE)
    assert _suptitle(fig) == TITLE
    assert [ax.get_title() for ax in fig.axes] == ["h (backbone)", "z (embedding)"]
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch"
        assert _legend_texts(ax) == [
            "NCM (test)",
            "NCM (train)",
            "kNN k=5 (test)",
            "kNN k=200 (test)",
            "linear probe top1 (test)",
            "linear probe top5 (test)",
        ]
        ncm = ax.lines[0]
        np.testing.assert_array_equal(ncm.get_xdata(), [2, 4, 6])
        np.testing.assert_allclose(ncm.get_ydata(), [0.75, 0.875, 1 - 0.5 / 6])
        assert list(ax.lines[4].get_xdata()) == [6]  # the probe runs at the end only
        _assert_distinguishable(ax.lines)
    assert fig.axes[0].get_ylabel() == "accuracy"
    with pytest.raises(ValueError, match="no eval/"):
        plots.accuracy_figure([{"step": 1, "train/loss": 1.0}])


def test_nc_metrics_figure_coinciding_splits_stay_visible():
    fig = plots.nc_metrics_figure(_history(same_splits=True), title=TITLE)
    assert _suptitle(fig) == TITLE
    assert [ax.get_title() for ax in fig.axes] == [m.replace("_", " ") for m in plots.NC_PANELS]
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and ax.get_yscale() == "log"
        assert _legend_texts(ax) == ["train z", "test z"]
        train_line, test_line = ax.lines
        np.testing.assert_array_equal(train_line.get_ydata(), test_line.get_ydata())
        _assert_distinguishable(ax.lines)


def test_dc_spectrum_figure_one_curve_per_evaluation():
    fig = plots.dc_spectrum_figure(_spectra_records(), title=TITLE)
    assert _suptitle(fig) == TITLE
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"{n} DC spectrum" for n in ("train/h", "train/z", "test/h", "test/z")]
    for ax in fig.axes:
        assert len(ax.lines) == 3
        assert _legend_texts(ax) == ["epoch 2", "epoch 4", "epoch 6"]
        assert ax.get_xlabel().startswith("index") and ax.get_ylabel() == "singular value / largest"
        assert len({line.get_color() for line in ax.lines}) == 3
    # Many evaluations: a colour bar of the epoch instead of a long legend.
    fig = plots.dc_spectrum_figure(_spectra_records(range(1, 13)))
    colorbars = [ax for ax in fig.axes if ax.get_ylabel() == "epoch"]
    assert len(colorbars) == 1 and all(len(ax.lines) == 12 for ax in fig.axes[:4])
    # One evaluation's dict still works (as evaluate_representations returns it).
    fig = plots.dc_spectrum_figure({"train/z": np.array([1.0, 0.1])})
    assert _legend_texts(fig.axes[0]) == ["final"]
    with pytest.raises(ValueError, match="no spectra"):
        plots.dc_spectrum_figure([])


@pytest.mark.parametrize("dim", [2, 3])
def test_embeddings_figure_has_a_class_legend(dim):
    labels = np.repeat(np.arange(4), 25)
    z = np.random.default_rng(0).standard_normal((100, dim))
    fig = plots.embeddings_figure(z, labels, title=TITLE)
    ax = fig.axes[0]
    assert _suptitle(fig) == TITLE
    assert ax.get_legend().get_title().get_text() == "class"
    assert _legend_texts(ax) == ["0", "1", "2", "3"]
    named = plots.embeddings_figure(z, labels, class_names=["a", "b", "c", "d"])
    assert _legend_texts(named.axes[0]) == ["a", "b", "c", "d"]


# ----------------------------------------------------------------------------- comparisons
def test_curves_figure_draws_curves_limits_and_points():
    x = np.arange(2, 50)
    curves = {"mean form": 1 / x, "sum form": 1 / x, "k = 16": 2 / x}  # two coincide
    fig = plots.curves_figure(
        x,
        curves,
        xlabel="C (classes)",
        ylabel="minimum loss",
        panel_title="Theorem 2",
        title=TITLE,
        logx=True,
        limits={"k = 16": 0.0},
        points={"bisection": ([3, 10], [0.3, 0.1])},
    )
    (ax,) = fig.axes
    assert _suptitle(fig) == TITLE and ax.get_title() == "Theorem 2"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("C (classes)", "minimum loss")
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "linear")
    assert _legend_texts(ax) == [*curves, "k = 16: limit 0", "bisection"]
    assert len(ax.lines) == 5
    for line, values in zip(ax.lines, curves.values(), strict=False):
        np.testing.assert_array_equal(line.get_xdata(), x)
        np.testing.assert_allclose(line.get_ydata(), values)
    _assert_distinguishable(ax.lines[:3])
    limit, points = ax.lines[3], ax.lines[4]
    assert limit.get_color() == ax.lines[2].get_color() and limit.get_linestyle() == ":"
    assert list(points.get_xdata()) == [3, 10] and points.get_linestyle() == "None"
    with pytest.raises(ValueError, match="3 values for 48"):
        plots.curves_figure(x, {"a": [1, 2, 3]}, xlabel="C", ylabel="y")
    with pytest.raises(ValueError, match="name no curve"):
        plots.curves_figure(x, curves, xlabel="C", ylabel="y", limits={"other": 1.0})


def test_spectra_figure_one_panel_per_group_one_curve_per_run():
    spectra = {
        "supervised": {"SCL": [1.0, 0.5, 0.0], "HSCL β=10": [1.0, 0.5, 0.0]},
        "unsupervised": {"UCL": [1.0, 0.1, 0.01]},
    }
    fig = plots.spectra_figure(spectra, title=TITLE)
    assert _suptitle(fig) == TITLE
    assert [ax.get_title() for ax in fig.axes] == ["supervised", "unsupervised"]
    assert [len(ax.lines) for ax in fig.axes] == [2, 1]
    sup, unsup = fig.axes
    assert _legend_texts(sup) == ["SCL", "HSCL β=10"] and _legend_texts(unsup) == ["UCL"]
    assert sup.get_yscale() == "log" and sup.get_ylabel() == "singular value / largest"
    np.testing.assert_array_equal(sup.lines[0].get_xdata(), [1, 2, 3])
    assert sup.lines[0].get_ydata()[-1] == 1e-12  # a zero is drawn at the floor
    _assert_distinguishable(sup.lines)  # the two coinciding spectra stay visible
    # Along an optimisation: one colour per step, dark to light.
    steps = {f"step {s}": [1.0, 0.1**s] for s in range(4)}
    fig = plots.spectra_figure({"η = 2.1": steps}, gradient=True, floor=1e-16)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert _legend_texts(ax) == list(steps)
    assert len({line.get_color() for line in ax.lines}) == 4
    assert {line.get_linestyle() for line in ax.lines} == {"-"}
    with pytest.raises(ValueError, match="no panels"):
        plots.spectra_figure({})


def test_cosine_spread_figure_marks_the_reference():
    cosines = np.random.default_rng(0).normal(-0.03, 0.05, 870)
    fig = plots.cosine_spread_figure(
        np.geomspace(1, 1e-3, 30), cosines, reference=-1 / 29, reference_label="ETF", bins=20
    )
    left, right = fig.axes
    assert (left.get_title(), right.get_title()) == (
        "singular values",
        "pairwise cosine similarities",
    )
    assert left.get_yscale() == "log" and len(left.lines[0].get_xdata()) == 30
    assert len(right.patches) == 20 and right.get_xlabel() == "cosine similarity"
    assert _legend_texts(right) == ["870 pairs", "ETF = -0.03448"]
    np.testing.assert_allclose(right.lines[0].get_xdata(), [-1 / 29, -1 / 29])


@pytest.mark.parametrize("dim", [2, 3])
def test_embeddings_grid_figure_rows_of_runs_and_one_class_legend(dim):
    labels = np.repeat(np.arange(3), 10)
    z = np.random.default_rng(0).standard_normal((30, dim))
    panels = [[("initial", z), ("SCL", z), ("HSCL β=10", z)], [("initial", z), ("UCL", z)]]
    fig = plots.embeddings_grid_figure(
        panels, labels, row_labels=["labels", "noise_views"], title=TITLE
    )
    assert _suptitle(fig) == TITLE
    assert len(fig.axes) == 6  # 2 rows × 3 columns, the last one of row 2 hidden
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["initial", "SCL", "HSCL β=10", "initial", "UCL"]
    assert all(len(ax.collections) >= 3 for ax in shown)  # one scatter per class
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["0", "1", "2"]
    assert fig.legends[0].get_title().get_text() == "class"
    rows = [t.get_text() for ax in (shown[0], shown[3]) for t in ax.texts]
    assert rows == ["labels", "noise_views"]
    assert (shown[0].name == "3d") == (dim == 3)
    with pytest.raises(ValueError, match="every z"):
        plots.embeddings_grid_figure([[("a", z), ("b", np.zeros((30, 4)))]], labels)
    with pytest.raises(ValueError, match="29 points for 30 labels"):
        plots.embeddings_grid_figure([[("a", z[:29])]], labels)


def test_epoch_curves_figure_against_epochs_with_minima():
    epochs = np.arange(1, 11)
    runs = {"SCL": 1 / epochs, "HSCL β=10": 1 / epochs}  # coinciding curves
    panels = {"training loss (labels)": runs, "training loss (noise_views)": runs}
    fig = plots.epoch_curves_figure(
        panels,
        epochs,
        ylabel="loss",
        logy=True,
        hlines={"training loss (labels)": [0.2, 0.3]},
        title=TITLE,
    )
    assert _suptitle(fig) == TITLE
    first, second = fig.axes
    assert [first.get_title(), second.get_title()] == list(panels)
    assert first.get_xlabel() == "epoch" and first.get_yscale() == "log"
    np.testing.assert_array_equal(first.lines[0].get_xdata(), epochs)
    assert len(first.lines) == 4 and len(second.lines) == 2  # runs, then the two minima
    assert [line.get_ydata()[0] for line in first.lines[2:]] == [0.2, 0.3]
    _assert_distinguishable(first.lines[:2])
    # The panels show different curves (the minima): a legend in each panel.
    assert _legend_texts(first) == ["SCL", "HSCL β=10", "minimum"]
    assert _legend_texts(second) == ["SCL", "HSCL β=10"]
    # The same runs in every panel: one legend, in the first.
    fig = plots.epoch_curves_figure(
        {m: runs for m in plots.NC_PANELS}, epochs, ylabel="value", ncols=4
    )
    assert len(fig.axes) == 4 and fig.axes[0].get_legend() is not None
    assert all(ax.get_legend() is None for ax in fig.axes[1:])
    with pytest.raises(ValueError, match="3 values for 10 epochs"):
        plots.epoch_curves_figure({"p": {"a": [1, 2, 3]}}, epochs, ylabel="loss")


def test_runs_figure_one_row_per_key_one_column_per_group():
    evaluations = [r for r in _history() if reporting.is_evaluation_row(r)]
    runs = {
        "supervised": {"SCL": evaluations, "HSCL β=10": evaluations},
        "unsupervised": {"UCL": evaluations},
    }
    keys = ["eval/test/z/ncm_acc", "nc/train/z/zero_sum"]
    fig = plots.runs_figure(runs, keys, title=TITLE)
    assert _suptitle(fig) == TITLE and len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == [
        "supervised: eval/test/z/ncm_acc",
        "unsupervised: eval/test/z/ncm_acc",
        "supervised: nc/train/z/zero_sum",
        "unsupervised: nc/train/z/zero_sum",
    ]
    acc_sup, acc_unsup, nc_sup, nc_unsup = fig.axes
    assert [len(ax.lines) for ax in fig.axes] == [2, 1, 2, 1]
    assert acc_sup.get_yscale() == "linear" and nc_sup.get_yscale() == "log"
    np.testing.assert_array_equal(acc_sup.lines[0].get_xdata(), [2, 4, 6])  # epochs
    np.testing.assert_allclose(acc_sup.lines[0].get_ydata(), [0.75, 0.875, 1 - 0.5 / 6])
    assert nc_sup.get_xlabel() == "epoch"
    assert _legend_texts(acc_sup) == ["SCL", "HSCL β=10"] and _legend_texts(acc_unsup) == ["UCL"]
    _assert_distinguishable(acc_sup.lines)
    with pytest.raises(ValueError, match="keys"):
        plots.runs_figure(runs, [])


def test_sweep_figure_one_line_per_group_with_error_bars():
    from hncl_jax import sweep

    rows = sweep.aggregate(
        [
            {"batch_size": b, "clop.weight": w, "seed": s, "eval/top1": 0.5 + w / 10 + s / 100}
            for b in (128, 32, 64)
            for w in (0.0, 1.0)
            for s in (0, 1)
        ]
    )
    fig = plots.sweep_figure(
        rows, "batch_size", ["eval/top1"], group_by="clop.weight", logx=True, title=TITLE
    )
    (ax,) = fig.axes
    assert _suptitle(fig) == TITLE and ax.get_xscale() == "log"
    assert ax.get_title() == "eval/top1 against batch_size (mean ± std, n = 2)"
    assert _legend_texts(ax) == ["clop.weight=0", "clop.weight=1"]
    assert len(ax.containers) == 2
    line = ax.containers[0].lines[0]
    np.testing.assert_array_equal(np.asarray(line.get_xdata(), float), [32, 64, 128])  # by x
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float), [0.505] * 3)
    # A function of the row labels the lines; one panel per metric.
    fig = plots.sweep_figure(
        rows,
        "batch_size",
        ["eval/top1", "eval/top1_std"],
        group_by=lambda r: f"λ = {r['clop.weight']:g}",
    )
    assert len(fig.axes) == 2 and _legend_texts(fig.axes[1]) == ["λ = 0", "λ = 1"]
    with pytest.raises(ValueError, match="no row has both"):
        plots.sweep_figure(rows, "batch_size", ["missing"])


def test_spectra_round_trip_and_resume_truncation(tmp_path):
    records = _spectra_records()
    reporting.write_spectra(tmp_path, records)
    back = reporting.read_spectra(tmp_path)
    assert [r["step"] for r in back] == [20, 40, 60] and [r["epoch"] for r in back] == [2, 4, 6]
    for a, b in zip(records, back, strict=True):
        assert sorted(a["spectra"]) == sorted(b["spectra"])
        for name in a["spectra"]:
            np.testing.assert_array_equal(a["spectra"][name], b["spectra"][name])
    assert [r["step"] for r in reporting.read_spectra(tmp_path, max_step=40)] == [20, 40]
    assert reporting.read_spectra(tmp_path / "none") == []


def test_plot_all_reads_the_workdir(tmp_path):
    workdir = str(tmp_path)
    workdir_lib.save_config(CONFIG, workdir)
    with reporting.MetricWriter(workdir) as writer:
        for row in _history():
            writer.write_scalars(row["step"], {k: v for k, v in row.items() if k != "step"})
    reporting.write_spectra(workdir, _spectra_records())
    paths = reporting.plot_all(workdir)
    names = [os.path.basename(p) for p in paths]
    assert names == ["loss.png", "accuracy.png", "nc_metrics.png", "dc_spectrum.png"]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_loss_description_names_the_parameters_the_loss_reads():
    assert reporting.loss_description(CONFIG) == (
        "hscl (ψ=infonce, exponential β=2, k=16, sampled estimator)"
    )
    scl = {**CONFIG, "loss": {**CONFIG["loss"], "name": "scl", "psi": "triplet", "alpha": 0.5}}
    assert reporting.loss_description(scl) == "scl (ψ=triplet α=0.5, k=16, sampled estimator)"
    poly = {**CONFIG, "loss": {**CONFIG["loss"], "name": "hucl", "hardening": "polynomial"}}
    assert "polynomial ε=3" in reporting.loss_description(poly)
    clop = {
        **CONFIG,
        "loss": {**CONFIG["loss"], "name": "nt_xent"},
        "clop": {"weight": 0.5, "prototypes": "simplex"},
    }
    assert reporting.loss_description(clop) == "nt_xent (τ=0.5) + CLOP λ=0.5 (simplex prototypes)"
    vicreg = {**CONFIG, "loss": {**CONFIG["loss"], "name": "vicreg"}}
    assert reporting.loss_description(vicreg) == "vicreg"
    # A ConfigDict reads the same as its JSON dict.
    config = default.get_config()
    assert reporting.loss_description(config) == reporting.loss_description(config.to_dict())


def test_run_name_falls_back_to_the_workdir(tmp_path):
    assert reporting.run_name(CONFIG) == "digits:smoke"
    assert reporting.run_name({**CONFIG, "name": ""}, tmp_path / "runs" / "digits_smoke") == (
        "digits_smoke"
    )


def test_summary_names_the_run(tmp_path):
    final = {"eval/test/z/ncm_acc": 0.987654, "epoch": 6}
    text = reporting.summary_text(
        final,
        tmp_path,
        config=CONFIG,
        step=60,
        total_steps=60,
        steps_trained=20,
        wall_time_s=12.345,
        steps_per_sec=4.5678,
    )
    lines = text.splitlines()
    assert lines[0] == f"hncl_jax run: {os.path.abspath(tmp_path)}"
    facts = {line.split(":")[0].strip(): line.split(":", 1)[1].strip() for line in lines[1:9]}
    assert facts == {
        "config": "digits:smoke",
        "loss": "hscl (ψ=infonce, exponential β=2, k=16, sampled estimator)",
        "dataset": "digits",
        "model": "tiny_cnn (embedding d = C - 1, unit_ball)",
        "seed": "3",
        "optimizer": "adam, learning rate 0.001, batch 64",
        "steps": "60 of 60 (20 trained by this invocation)",
        "wall time": "12.3 s",
    }
    assert lines[9] == "  steps/s:    4.57"
    assert "0.98765" in text


def _tb_events(workdir):
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            events.append(event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length]))
            offset += 12 + length + 4
    return events


def test_tensorboard_config_text_hparams_and_images(tmp_path):
    from tensorboardX.proto import plugin_hparams_pb2

    workdir = str(tmp_path)
    with reporting.MetricWriter(workdir) as writer:
        writer.write_scalars(60, {"eval/test/z/ncm_acc": 0.9})
        reporting.log_config_tensorboard(workdir, CONFIG, 0)
        paths = [plots.plot_loss(_history(), tmp_path / "plots" / "loss.png")]
        final = {"eval/test/z/ncm_acc": 0.9, "nc/test/z/zero_sum": 0.01, "epoch": 6}
        reporting.log_results_tensorboard(workdir, CONFIG, final, paths, 60, summary="done")
    values = [(e.step, v) for e in _tb_events(workdir) for v in e.summary.value]
    texts = {  # tensorboardX files text under "<tag>/text_summary"
        v.tag.removesuffix("/text_summary"): v.tensor.string_val[0].decode()
        for _, v in values
        if v.metadata.plugin_data.plugin_name == "text"
    }
    assert texts["run"] == TITLE
    assert '"beta": 2.0' in texts["config"] and texts["summary"].strip() == "done"
    images = {v.tag: (step, v.image) for step, v in values if v.HasField("image")}
    step, image = images["plots/loss"]
    assert step == 60 and image.width > 100 and image.encoded_image_string[:4] == b"\x89PNG"
    hparams = [v for _, v in values if v.metadata.plugin_data.plugin_name == "hparams"]
    assert hparams
    infos = [
        plugin_hparams_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content)
        for v in hparams
    ]
    start = next(i.session_start_info for i in infos if i.HasField("session_start_info"))
    assert start.hparams["loss.beta"].number_value == 2.0
    assert start.hparams["loss.name"].string_value == "hscl"
    experiment = next(i.experiment for i in infos if i.HasField("experiment"))
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert metric_tags == {"eval/test/z/ncm_acc", "nc/test/z/zero_sum"}


def test_flat_hparams_are_scalars():
    flat = reporting.flat_hparams(default.get_config())
    assert flat["loss.beta"] == 10.0 and flat["knn_k"] == "[5, 200]"
    assert all(isinstance(v, bool | int | float | str) for v in flat.values())


# ----------------------------------------------------------------------------- W&B


def _wandb_records(workdir):
    """The records of the offline W&B run under workdir (W&B's leveldb-style log)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = glob.glob(os.path.join(workdir, "wandb", "offline-run-*", "run-*.wandb"))
    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    pos, block, records, buf = 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer: zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last fragment of one
            records.append(wandb_internal_pb2.Record.FromString(buf))
            buf = b""
    return records


def _wandb_history(records):
    return [
        # wandb 0.19+ files every key under nested_key (an image's fields one level deeper).
        {item.key or ".".join(item.nested_key): item.value_json for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]


needs_wandb = pytest.mark.skipif(
    importlib.util.find_spec("wandb") is None, reason="pip install wandb"
)


@needs_wandb
def test_wandb_logger_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    workdir = str(tmp_path)
    logger = reporting.WandbLogger(workdir, CONFIG)
    logger.log(1, {"train/loss": np.float32(0.5)})
    logger.log(2, {"train/loss": 0.25, "eval/test/z/ncm_acc": 0.9})
    png = plots.plot_loss(_history(), tmp_path / "plots" / "loss.png")
    logger.log_images(2, [png])
    logger.finish(summary={"eval/test/z/ncm_acc": 0.9})
    logger.finish()  # idempotent
    import wandb

    wandb.teardown()  # the wandb service writes the run file asynchronously: stop it first
    records = _wandb_records(workdir)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == "digits:smoke" and run.notes == TITLE
    assert run.run_id == open(tmp_path / workdir_lib.WANDB_ID_FILE).read().strip()
    config_keys = {item.key for item in run.config.update}
    assert {"loss", "dataset", "seed"} <= config_keys
    history = _wandb_history(records)
    assert [(h["_step"], h.get("train/loss")) for h in history[:2]] == [("1", "0.5"), ("2", "0.25")]
    assert history[1]["eval/test/z/ncm_acc"] == "0.9"
    assert history[1]["plots/loss._type"] == '"image-file"'
    image = json.loads(history[1]["plots/loss.path"])
    (run_dir,) = glob.glob(os.path.join(workdir, "wandb", "offline-run-*"))
    assert os.path.getsize(os.path.join(run_dir, "files", image)) > 1000
    disabled = reporting.WandbLogger(tmp_path / "off", CONFIG, enabled=False)
    disabled.log(1, {"x": 1.0})
    disabled.finish()
    assert not disabled.enabled and not os.path.exists(tmp_path / "off")


def test_validation_of_the_wandb_field(monkeypatch):
    config = synthetic.get_config("smoke")
    validation.validate_config(config)  # wandb=False by default
    config.wandb = True
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "wandb" else real_find_spec(name, *a),
    )
    with pytest.raises(validation.ConfigError, match=r"`pip install wandb`"):
        validation.validate_config(config)
    config = synthetic.get_config("smoke")
    with config.ignore_type():
        config.wandb = "yes"
    with pytest.raises(validation.ConfigError, match="config.wandb='yes' must be True or False"):
        validation.validate_config(config)


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
@needs_wandb
def test_trainer_writes_every_output(tmp_path, monkeypatch, capsys):
    """A tiny run with plots, W&B offline and a resume: every output names the run."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    c = synthetic.get_config("smoke")
    c.model_kwargs.hidden_sizes = (32,)
    c.dataset_kwargs.dim = 48
    c.batch_size = 60
    c.num_epochs = 2
    c.linear_probe = "off"
    c.name = "tiny"
    c.wandb = True
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(c, workdir)
    c.num_epochs = 3
    train.train_and_evaluate(c, workdir)  # resumes: the spectra of epochs 1-2 are kept
    out = capsys.readouterr().out
    summary = open(os.path.join(workdir, "summary.txt")).read()
    # The console shows the summary's header and the headline figures; summary.txt all.
    header = summary.split("\n  [", 1)[0]
    timing = ("wall time:", "steps/s:")  # one "time:" line on the console
    assert all(line in out for line in header.splitlines() if not line.strip().startswith(timing))
    assert "final metrics and the outputs: " + os.path.join(workdir, "summary.txt") in out
    for field in ("config:     tiny", "loss:       scl (", "dataset:    hn_synthetic", "seed:"):
        assert field in summary
    assert "wall time:" in summary and "steps/s:" in summary and "trained by this" in summary
    assert [r["epoch"] for r in reporting.read_spectra(workdir)] == [1, 2, 3]
    pngs = sorted(os.listdir(os.path.join(workdir, "plots")))
    names = ["accuracy", "dc_spectrum", "embeddings", "loss", "nc_metrics"]  # d = C - 1 = 2
    assert pngs == [f"{n}.png" for n in names]
    tags = {v.tag for e in _tb_events(workdir) for v in e.summary.value if v.HasField("image")}
    assert tags == {f"plots/{n}" for n in names}
    # One W&B run continued across the resume (offline: one folder per invocation).
    runs = glob.glob(os.path.join(workdir, "wandb", "offline-run-*"))
    assert len(runs) == 2 and len({r.rsplit("-", 1)[1] for r in runs}) == 1
