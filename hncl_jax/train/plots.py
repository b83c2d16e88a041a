"""Figures of a run: loss, accuracies, collapse metrics, DC spectra and embeddings.

Every figure has epochs on its x axis, a title naming the run (`title=`, e.g.
`reporting.run_title(config)`), axis labels and a legend. Curves that coincide (train
and test at Neural-Collapse, h and z accuracies) stay visible: each series gets its own
marker and line style, drawn semi-transparent.

Each `*_figure` function returns a `matplotlib.figure.Figure` (displayed inline in a
notebook; inspect or save it as you like); each `plot_*` function draws the same figure
into a PNG file and returns its path. Figures use matplotlib's object API (no pyplot
state, no global backend switch), so they are safe in notebooks and headless jobs.
`hncl_jax.train.reporting.plot_all` draws every figure a workdir's outputs allow.

The figures of the notebooks compare runs or closed forms, with the same conventions:
`runs_figure` (several workdirs' metrics against epochs), `epoch_curves_figure` (arrays
of per-epoch values, e.g. `synthetic_grid.train_grid`'s), `spectra_figure` (DC spectra
of several runs, singular values along an optimisation), `embeddings_grid_figure`
(several runs' 2-D or 3-D embeddings), `sweep_figure` (final metrics against a grid
field, as `sweep.plot_sweep` saves), `curves_figure` (closed forms against C or k) and
`cosine_spread_figure` (singular values and pairwise cosines of a set of vectors).

References:
  Jiang et al., "Hard-Negative Sampling for Contrastive Learning: Optimal
  Representation Geometry and Neural- vs Dimensional-Collapse" (earlier version: arXiv:2209.00078)
  (NC metrics against epochs, Figs. 2-3; the normalized DC spectrum, Fig. 4).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

NC_PANELS = ("zero_sum", "unit_norm", "equal_inner_product", "within_class_variance")
# (marker, linestyle) per series, in order; with alpha < 1 a series lying exactly on
# another one still shows its own markers.
STYLES = (
    ("o", "-"),
    ("s", "--"),
    ("^", ":"),
    ("D", "-."),
    ("v", (0, (5, 1))),
    ("x", (0, (1, 1))),
    ("P", (0, (3, 1, 1, 1))),
    ("*", (0, (8, 2))),
)
ALPHA = 0.75

__all__ = [
    "ALPHA",
    "NC_PANELS",
    "STYLES",
    "accuracy_figure",
    "cosine_spread_figure",
    "curves_figure",
    "dc_spectrum_figure",
    "embeddings_figure",
    "embeddings_grid_figure",
    "epoch_axis",
    "epoch_curves_figure",
    "loss_figure",
    "nc_metrics_figure",
    "plot_accuracy",
    "plot_dc_spectrum",
    "plot_embeddings",
    "plot_loss",
    "plot_nc_metrics",
    "runs_figure",
    "save_figure",
    "spectra_figure",
    "sweep_figure",
]


def _figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (5.0, 4.0)):
    from matplotlib.figure import Figure

    return Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")


def save_figure(fig: Any, path: str | os.PathLike[str]) -> str:
    """Writes `fig` as a PNG (creating the folder); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _style(i: int) -> dict[str, Any]:
    marker, linestyle = STYLES[i % len(STYLES)]
    # Each later series draws smaller markers on top: where two series coincide, the
    # earlier one's marker still rings the later one's.
    size = 9.5 - (i % len(STYLES))
    return {"marker": marker, "linestyle": linestyle, "alpha": ALPHA, "markersize": size}


def _title(fig: Any, title: str | None) -> None:
    """The run's title over the figure, wrapped at its " · " separators to fit."""
    if not title:
        return
    width = max(int(fig.get_figwidth() * 13), 30)  # characters of a 10 pt line
    lines: list[str] = []
    for part in title.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    fig.suptitle("\n".join(lines), fontsize="medium")


def epoch_axis(
    rows: Sequence[Mapping[str, Any]], steps_per_epoch: int | None = None
) -> tuple[dict[int, float], str]:
    """Maps each row's step to its epoch, for one x axis across figures.

    A row's own "epoch" wins; other rows use step / steps_per_epoch, where
    steps_per_epoch defaults to step / epoch of the rows that carry both. Without
    either, the x axis stays in steps.

    Args:
      rows: metric rows with "step" (as from `reporting.read_metrics`).
      steps_per_epoch: optimizer steps per epoch, if known.

    Returns:
      `(step -> x, label)`, label "epoch" or "step".
    """
    if not steps_per_epoch:
        ratios = [r["step"] / r["epoch"] for r in rows if r.get("epoch") and r["step"] > 0]
        steps_per_epoch = float(np.median(ratios)) if ratios else None
    xs: dict[int, float] = {}
    for row in rows:
        step = int(row["step"])
        if row.get("epoch") is not None:
            xs[step] = float(row["epoch"])
        elif steps_per_epoch:
            xs[step] = step / steps_per_epoch
        else:
            xs[step] = float(step)
    in_epochs = bool(steps_per_epoch) or all(r.get("epoch") is not None for r in rows)
    return xs, "epoch" if in_epochs else "step"


def _series(rows: Iterable[Mapping[str, Any]], key: str, xs: Mapping[int, float]):
    x, y = [], []
    for row in rows:
        if row.get(key) is not None:
            x.append(xs[int(row["step"])])
            y.append(float(row[key]))
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


# ----------------------------------------------------------------------------- loss
def loss_figure(
    history: Sequence[Mapping[str, Any]],
    *,
    steps_per_epoch: int | None = None,
    title: str | None = None,
):
    """Training loss at every logged step, epoch means and the theorem's minimum.

    Args:
      history: metric rows: "train/loss" at each logged step, "train/epoch_loss" and
        "train/theorem_bound" (the Theorem 2/3 minimum, where it applies) at each
        evaluation; "train/contrastive_loss" and "train/clop_loss" are drawn too when
        a CLOP term is on.
      steps_per_epoch: optimizer steps per epoch (see `epoch_axis`).
      title: figure title (the run).

    Returns:
      The `Figure`.

    Raises:
      ValueError: if no row holds "train/loss" or "train/epoch_loss".
    """
    if not any("train/loss" in r or "train/epoch_loss" in r for r in history):
        raise ValueError("loss_figure: no train/loss or train/epoch_loss in the history rows.")
    xs, xlabel = epoch_axis(history, steps_per_epoch)
    fig = _figure(size=(6.0, 4.0))
    ax = fig.subplots()
    series = [("train/loss", "loss (every logged step)")]
    if any("train/clop_loss" in r for r in history):
        series += [
            ("train/contrastive_loss", "contrastive term"),
            ("train/clop_loss", "CLOP term"),
        ]
    for i, (key, label) in enumerate(series):
        x, y = _series(history, key, xs)
        if x.size:
            style = _style(i) | {"markersize": 2 if x.size > 50 else 4, "lw": 1}
            ax.plot(x, y, label=label, **style)
    x, y = _series(history, "train/epoch_loss", xs)
    if x.size:
        ax.plot(x, y, color="k", ls="none", marker="o", mfc="none", ms=7, label="epoch mean")
    _, bound = _series(history, "train/theorem_bound", xs)
    if bound.size:
        ax.axhline(bound[-1], color="0.3", ls="--", lw=1, label=f"theorem minimum {bound[-1]:.5g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.set_title("training loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    _title(fig, title)
    return fig


def plot_loss(
    history: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    steps_per_epoch: int | None = None,
    title: str | None = None,
) -> str:
    """`loss_figure` saved as a PNG; returns the path."""
    return save_figure(loss_figure(history, steps_per_epoch=steps_per_epoch, title=title), path)


# ----------------------------------------------------------------------------- accuracy
_ACC = re.compile(r"^eval/(train|test)/([^/]+)/(ncm_acc|knn\d+_acc|probe_top1|probe_top5)$")


def _acc_label(split: str, name: str) -> str:
    if name == "ncm_acc":
        return f"NCM ({split})"
    if name.startswith("knn"):
        return f"kNN k={name[3:-4]} ({split})"
    return f"linear probe {name.split('_')[1]} ({split})"


def _acc_order(key: str) -> tuple:
    split, _, name = _ACC.match(key).groups()
    kind = 0 if name == "ncm_acc" else 1 if name.startswith("knn") else 2
    k = int(name[3:-4]) if name.startswith("knn") else 0
    return kind, k, name, split != "test"


def accuracy_figure(
    history: Sequence[Mapping[str, Any]],
    *,
    steps_per_epoch: int | None = None,
    title: str | None = None,
):
    """NCM, kNN and linear-probe accuracy against epochs, one panel per representation.

    The y axis spans the values drawn (curves at 0.92-1.0 stay apart); a top-5 probe
    accuracy that is 1 at every evaluation (5 classes or fewer) is not drawn.

    Args:
      history: metric rows with `eval/{split}/{rep}/{ncm_acc,knn<k>_acc,probe_top1,...}`
        (`hncl_jax.evaluation`); rep h is the backbone output, z the embedding.
      steps_per_epoch: see `epoch_axis`.
      title: figure title (the run).

    Returns:
      The `Figure`.

    Raises:
      ValueError: if no row holds an accuracy key.
    """
    keys = sorted({k for r in history for k in r if _ACC.match(k)}, key=_acc_order)
    trivial = [
        k for k in keys if k.endswith("top5") and all(r.get(k) in (None, 1) for r in history)
    ]
    keys = [k for k in keys if k not in trivial]  # top-5 of C <= 5 is 1: a line saying nothing
    if not keys:
        raise ValueError(
            "accuracy_figure: no eval/<split>/<rep>/<ncm_acc|knn<k>_acc|probe_top1> keys in the "
            "history rows; evaluate with evaluation.evaluate_representations first."
        )
    reps = sorted({_ACC.match(k).group(2) for k in keys}, key=lambda r: (r != "h", r))
    xs, xlabel = epoch_axis(history, steps_per_epoch)
    fig = _figure(ncols=len(reps), size=(5.0, 4.0))
    axes = np.atleast_1d(fig.subplots(1, len(reps), sharey=True))
    names = {"h": "h (backbone)", "z": "z (embedding)"}
    values = []
    for ax, rep in zip(axes, reps, strict=True):
        for i, key in enumerate(k for k in keys if _ACC.match(k).group(2) == rep):
            split, _, name = _ACC.match(key).groups()
            x, y = _series(history, key, xs)
            values += [v for v in y if np.isfinite(v)]
            ax.plot(x, y, label=_acc_label(split, name), **_style(i))
        ax.set_title(names.get(rep, rep))
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    if values:  # the range the curves span (shared y), so close curves stay apart
        pad = max(0.05 * (max(values) - min(values)), 0.005)
        axes[0].set_ylim(max(min(values) - pad, -0.02), min(max(values) + pad, 1.02))
    axes[0].set_ylabel("accuracy")
    _title(fig, title)
    return fig


def plot_accuracy(
    history: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    steps_per_epoch: int | None = None,
    title: str | None = None,
) -> str:
    """`accuracy_figure` saved as a PNG; returns the path."""
    fig = accuracy_figure(history, steps_per_epoch=steps_per_epoch, title=title)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- NC metrics
_NC = re.compile(r"^nc/([^/]+)/([^/]+)/(" + "|".join(NC_PANELS) + r")$")


def nc_metrics_figure(
    history: Sequence[Mapping[str, Any]],
    *,
    steps_per_epoch: int | None = None,
    title: str | None = None,
):
    """Four panels (zero-sum, unit-norm, equal inner product, within-class variance).

    Every series `nc/{split}/{rep}/{metric}` of the rows is drawn against epochs on a
    log y axis (all four are 0 at Neural-Collapse), e.g. the train and test curves of z.

    Args:
      history: metric rows; rows without NC keys are skipped.
      steps_per_epoch: see `epoch_axis`.
      title: figure title (the run).

    Returns:
      The `Figure`.

    Raises:
      ValueError: if no row holds an NC key.
    """
    keys = sorted({k for row in history for k in row if _NC.match(k)})
    if not keys:
        raise ValueError(
            f"nc_metrics_figure: no nc/<split>/<rep>/<metric> keys ({', '.join(NC_PANELS)}) in "
            "the history rows; evaluate with evaluation.evaluate_representations first."
        )
    xs, xlabel = epoch_axis(history, steps_per_epoch)
    fig = _figure(ncols=2, nrows=2, size=(4.5, 3.5))
    axes = fig.subplots(2, 2).ravel()
    series = sorted({_NC.match(k).groups()[:2] for k in keys}, key=lambda s: (s[0] != "train", s))
    for ax, metric in zip(axes, NC_PANELS, strict=True):
        for i, (split, rep) in enumerate(series):
            key = f"nc/{split}/{rep}/{metric}"
            x, y = _series(history, key, xs)
            if x.size:
                ax.plot(x, np.maximum(y, 1e-12), label=f"{split} {rep}", **_style(i))
        ax.set_yscale("log")
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("value (0 at NC)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    _title(fig, title)
    return fig


def plot_nc_metrics(
    history: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    steps_per_epoch: int | None = None,
    title: str | None = None,
) -> str:
    """`nc_metrics_figure` saved as a PNG; returns the path."""
    fig = nc_metrics_figure(history, steps_per_epoch=steps_per_epoch, title=title)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- DC spectrum
def _as_evaluations(spectra: Any) -> list[tuple[float | None, dict[str, np.ndarray]]]:
    """Accepts one {name: spectrum} dict or a list of `reporting.read_spectra` records."""
    if isinstance(spectra, Mapping):
        return [(None, {k: np.asarray(v, np.float64).ravel() for k, v in spectra.items()})]
    out = []
    for record in spectra:
        values = {k: np.asarray(v, np.float64).ravel() for k, v in record["spectra"].items()}
        out.append((record.get("epoch"), values))
    return out


# The smallest normalized DC value drawn: below float32's resolution relative to the
# largest (1) a value is rounding noise, not a direction, and would stretch the log axis.
DC_FLOOR = 1e-7


def dc_spectrum_figure(spectra: Any, *, title: str | None = None, max_legend: int = 8):
    """Normalized DC spectra, one panel per split/representation, one curve per evaluation.

    Args:
      spectra: either one evaluation's `{"train/z": spectrum, ...}` (sorted descending,
        max 1, as `evaluation.evaluate_representations` returns), or the list of every
        evaluation's `{"step", "epoch", "spectra"}` records (`reporting.read_spectra`):
        the curves then go from dark (first evaluation) to light (last).
      title: figure title (the run).
      max_legend: with more evaluations than this, a colour bar of the epoch replaces
        the legend. Values below `DC_FLOOR` are not drawn.

    Returns:
      The `Figure`.

    Raises:
      ValueError: if there is no spectrum.
    """
    evaluations = [(e, s) for e, s in _as_evaluations(spectra) if s]
    if not evaluations:
        raise ValueError(
            "dc_spectrum_figure: no spectra; pass {'train/z': spectrum, ...} or the records "
            "of reporting.read_spectra(workdir)."
        )
    names = sorted(
        {n for _, s in evaluations for n in s},
        key=lambda n: (n.split("/")[0] != "train", n.split("/")[-1] != "h", n),
    )
    ncols = min(len(names), 2)
    nrows = -(-len(names) // ncols)
    fig = _figure(ncols=ncols, nrows=nrows, size=(4.5, 3.5))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    epochs = [e for e, _ in evaluations]
    many = len(evaluations) > max_legend and all(e is not None for e in epochs)
    norm = Normalize(min(epochs), max(epochs)) if many else None
    cmap = colormaps["viridis"]
    for ax, name in zip(axes, names, strict=False):
        for i, (epoch, values) in enumerate(evaluations):
            if name not in values:
                continue
            v = values[name]
            frac = i / max(len(evaluations) - 1, 1)
            color = cmap(norm(epoch) if many else 0.85 * frac) if len(evaluations) > 1 else "C0"
            label = "final" if epoch is None else f"epoch {epoch:g}"
            ax.plot(
                np.arange(1, v.size + 1),
                np.where(v >= DC_FLOOR, v, np.nan),
                color=color,
                label=None if many else label,
                **_style(i) | {"linestyle": "-", "markersize": 3},
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yscale("log")
        ax.set_xlabel("index (descending)")
        ax.set_ylabel("singular value / largest")
        ax.set_title(f"{name} DC spectrum")
        ax.grid(True, which="both", alpha=0.3)
        if not many:
            ax.legend(fontsize="small")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    if many:
        from matplotlib.cm import ScalarMappable

        fig.colorbar(
            ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[: len(names)]), label="epoch"
        )
    _title(fig, title)
    return fig


def plot_dc_spectrum(
    spectra: Any, path: str | os.PathLike[str], *, title: str | None = None
) -> str:
    """`dc_spectrum_figure` saved as a PNG; returns the path."""
    return save_figure(dc_spectrum_figure(spectra, title=title), path)


# ----------------------------------------------------------------------------- embeddings
def embeddings_figure(
    z: Any,
    labels: Any,
    *,
    max_points: int = 3000,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
):
    """Scatter of 2-D or 3-D embeddings coloured by class, with the unit circle/sphere.

    Args:
      z: (N, d) embeddings, d in {2, 3}.
      labels: (N,) int labels.
      max_points: a fixed random subset of at most this many points is drawn.
      title: figure title (the run).
      class_names: legend entry of each class (default: the label).

    Returns:
      The `Figure`, with one legend entry per class.

    Raises:
      ValueError: for other shapes.
    """
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels)
    if z.ndim != 2 or z.shape[1] not in (2, 3):
        raise ValueError(
            f"embeddings_figure: z must be (N, 2) or (N, 3); got shape {z.shape}. Project "
            "higher-dimensional embeddings first, or skip this plot."
        )
    if labels.shape != (z.shape[0],):
        raise ValueError(f"embeddings_figure: labels must be ({z.shape[0]},); got {labels.shape}.")
    if z.shape[0] > max_points:
        keep = np.random.default_rng(0).choice(z.shape[0], max_points, replace=False)
        z, labels = z[keep], labels[keep]
    classes = np.unique(labels)
    from matplotlib import colormaps

    cmap = colormaps["tab10" if classes.size <= 10 else "tab20"]
    fig = _figure(size=(5.5, 5.0))
    t = np.linspace(0, 2 * np.pi, 100)
    if z.shape[1] == 2:
        ax = fig.subplots()
        ax.plot(np.cos(t), np.sin(t), color="0.7", lw=0.8)
        ax.set_aspect("equal")
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
    else:
        ax = fig.add_subplot(projection="3d")
        u, v = np.meshgrid(t, np.linspace(0, np.pi, 50))
        ax.plot_wireframe(
            np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", lw=0.3
        )
        ax.set_box_aspect((1, 1, 1))
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
        ax.set_zlabel("z[2]")
    for i, c in enumerate(classes):
        pts = z[labels == c].T
        name = class_names[int(c)] if class_names is not None else str(c)
        ax.scatter(*pts, color=cmap(i % cmap.N), s=6 if z.shape[1] == 2 else 4, label=name)
    ax.legend(
        title="class",
        fontsize="small",
        markerscale=2.5,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        ncols=1 if classes.size <= 20 else 2,
    )
    ax.set_title(f"embeddings (d = {z.shape[1]}, {z.shape[0]} points)")
    _title(fig, title)
    return fig


def plot_embeddings(
    z: Any,
    labels: Any,
    path: str | os.PathLike[str],
    *,
    max_points: int = 3000,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> str:
    """`embeddings_figure` saved as a PNG; returns the path."""
    fig = embeddings_figure(z, labels, max_points=max_points, title=title, class_names=class_names)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- comparisons
# The figures of the notebooks: several runs (or closed forms) side by side.
def _line_style(i: int, n: int) -> dict[str, Any]:
    """`_style(i)` for a curve of `n` points: on a dense curve, markers about a tenth of the
    axes apart (evenly spaced on the drawn line, log axes included)."""
    return _style(i) | {"markevery": 0.1 if n > 24 else None, "lw": 1.2}


def _legend_once(axes: Sequence[Any]) -> None:
    """One legend in the first panel when every panel shows the same curves, else one each."""
    drawn = [ax for ax in axes if ax.get_legend_handles_labels()[1]]
    labels = [tuple(ax.get_legend_handles_labels()[1]) for ax in drawn]
    for ax in drawn[:1] if len(set(labels)) == 1 else drawn:
        ax.legend(fontsize="small")


def _grid(n: int, ncols: int | None, size: tuple[float, float], **kw):
    """A figure with `n` panels in rows of `ncols` (default up to 2); the spares hidden."""
    ncols = max(min(ncols or 2, n), 1)
    nrows = -(-n // ncols)
    fig = _figure(ncols=ncols, nrows=nrows, size=size)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, **kw)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def curves_figure(
    x: Any,
    curves: Mapping[str, Any],
    *,
    xlabel: str,
    ylabel: str,
    panel_title: str | None = None,
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    limits: Mapping[str, float] | None = None,
    points: Mapping[str, tuple[Any, Any]] | None = None,
):
    """Curves of one quantity against a parameter (closed-form minima and bounds over C or k).

    Args:
      x: (n,) the parameter values every curve shares.
      curves: curve label -> (n,) values; each curve has its own marker and line style.
      xlabel: the parameter's name.
      ylabel: the quantity's name.
      panel_title: the panel's title.
      title: figure title.
      logx: log x axis.
      logy: log y axis.
      limits: curve label -> a constant the curve tends to (e.g. its k → ∞ limit), drawn
        as a dotted horizontal line in the curve's colour.
      points: label -> (xs, ys) of measured points, drawn as black markers without a line
        (e.g. values found by bisection).

    Returns:
      The `Figure` (one panel; one line per curve, then one per limit, then the points).

    Raises:
      ValueError: no curves, a curve whose length is not x's, or a limit of no curve.
    """
    x = np.asarray(x, np.float64).ravel()
    if not curves:
        raise ValueError("curves_figure: no curves; pass {label: values}.")
    limits = dict(limits or {})
    unknown = sorted(set(limits) - set(curves))
    if unknown:
        raise ValueError(f"curves_figure: limits {unknown} name no curve (curves: {list(curves)}).")
    fig = _figure(size=(6.0, 4.0))
    ax = fig.subplots()
    colors = {}
    for i, (label, values) in enumerate(curves.items()):
        y = np.asarray(values, np.float64).ravel()
        if y.shape != x.shape:
            raise ValueError(
                f"curves_figure: curve {label!r} has {y.size} values for {x.size} x values."
            )
        (line,) = ax.plot(x, y, label=label, **_line_style(i, x.size))
        colors[label] = line.get_color()
    for label, value in limits.items():
        ax.axhline(value, color=colors[label], ls=":", lw=1, label=f"{label}: limit {value:.5g}")
    for label, (px, py) in (points or {}).items():
        ax.plot(px, py, color="k", ls="none", marker="o", mfc="none", ms=7, label=label)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if panel_title:
        ax.set_title(panel_title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    _title(fig, title)
    return fig


def spectra_figure(
    panels: Mapping[str, Mapping[str, Any]],
    *,
    ylabel: str = "singular value / largest",
    xlabel: str = "index (descending)",
    gradient: bool = False,
    floor: float = 1e-12,
    ncols: int | None = None,
    title: str | None = None,
):
    """Sorted spectra side by side: one panel per group, one curve per run (or step).

    The DC spectra of a sweep's runs (`geometry.dc_spectrum` of each restored model), or
    the singular values of one matrix along an optimisation.

    Args:
      panels: panel title -> {curve label -> (n,) values, sorted descending}; the y axis
        is logarithmic and values below `floor` are drawn at `floor`.
      ylabel: the y axis label.
      xlabel: the x axis label.
      gradient: colour the curves of a panel dark to light in their order (a spectrum
        over training steps) instead of giving each its own marker and line style.
      floor: the smallest value drawn.
      ncols: panels per row (default up to 2).
      title: figure title.

    Returns:
      The `Figure`: one panel per entry of `panels` (same y axis), each with a legend of
      its curves.

    Raises:
      ValueError: if `panels` is empty.
    """
    if not panels:
        raise ValueError("spectra_figure: no panels; pass {panel title: {label: spectrum}}.")
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    fig, axes = _grid(len(panels), ncols, (5.0, 3.8), sharey=True)
    cmap = colormaps["viridis"]
    for ax, (name, curves) in zip(axes, panels.items(), strict=True):
        for i, (label, values) in enumerate(curves.items()):
            v = np.asarray(values, np.float64).ravel()
            style = _line_style(i, v.size)
            if gradient:
                style |= {"color": cmap(0.85 * i / max(len(curves) - 1, 1)), "linestyle": "-"}
            ax.plot(np.arange(1, v.size + 1), np.maximum(v, floor), label=label, **style)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    _title(fig, title)
    return fig


def cosine_spread_figure(
    singular_values: Any,
    cosines: Any,
    *,
    reference: float | None = None,
    reference_label: str = "simplex ETF",
    bins: int = 40,
    floor: float = 1e-16,
    title: str | None = None,
):
    """A set of vectors' singular values and the spread of their pairwise cosines.

    Args:
      singular_values: (k,) singular values of the (m, k) matrix of the vectors,
        descending.
      cosines: the pairwise cosine similarities (any shape; flattened).
      reference: a cosine to mark, e.g. the simplex ETF's −1/(k−1).
      reference_label: the legend entry of `reference`.
      bins: histogram bins.
      floor: the smallest singular value drawn (log axis).
      title: figure title.

    Returns:
      The `Figure`: left the singular values (log y), right the histogram of the cosines
      with the reference line.
    """
    from matplotlib.ticker import MaxNLocator

    sv = np.asarray(singular_values, np.float64).ravel()
    cos = np.asarray(cosines, np.float64).ravel()
    fig = _figure(ncols=2, size=(5.0, 3.6))
    left, right = fig.subplots(1, 2)
    left.plot(np.arange(1, sv.size + 1), np.maximum(sv, floor), label="singular value", **_style(0))
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_yscale("log")
    left.set_xlabel("index (descending)")
    left.set_ylabel("singular value")
    left.set_title("singular values")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize="small")
    right.hist(cos, bins=bins, alpha=ALPHA, label=f"{cos.size} pairs")
    if reference is not None:
        right.axvline(
            reference, color="k", ls="--", lw=1, label=f"{reference_label} = {reference:.4g}"
        )
    right.set_xlabel("cosine similarity")
    right.set_ylabel("pairs")
    right.set_title("pairwise cosine similarities")
    right.grid(True, alpha=0.3)
    right.legend(fontsize="small")
    _title(fig, title)
    return fig


def embeddings_grid_figure(
    panels: Sequence[Sequence[tuple[str, Any]]],
    labels: Any,
    *,
    row_labels: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    max_points: int = 3000,
    title: str | None = None,
):
    """2-D or 3-D embeddings of several runs in a grid, coloured by class, one class legend.

    Args:
      panels: rows of `(panel title, z)` with z of shape (N, 2) or (N, 3) (one d for
        all); a shorter row leaves its last panels empty.
      labels: (N,) int labels, shared by every panel.
      row_labels: a label written left of each row.
      class_names: legend entry of each class (default: the label).
      max_points: a fixed random subset of at most this many points is drawn.
      title: figure title.

    Returns:
      The `Figure`: one panel per embedding (the unit circle drawn in 2-D), with the
      class legend at the right.

    Raises:
      ValueError: no panels, mixed or unsupported d, labels of another length, or
        row_labels of another length than panels.
    """
    rows = [list(r) for r in panels]
    if not rows or not any(rows):
        raise ValueError("embeddings_grid_figure: no panels; pass rows of (title, z).")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(
            f"embeddings_grid_figure: {len(row_labels)} row_labels for {len(rows)} rows."
        )
    labels = np.asarray(labels)
    dims = {np.shape(z)[1] if np.ndim(z) == 2 else None for r in rows for _, z in r}
    if len(dims) != 1 or dims - {2, 3}:
        raise ValueError(
            f"embeddings_grid_figure: every z must be (N, 2), or every z (N, 3); got d in {dims}."
        )
    (dim,) = dims
    for r in rows:
        for name, z in r:
            if np.shape(z)[0] != labels.shape[0]:
                raise ValueError(
                    f"embeddings_grid_figure: panel {name!r} has {np.shape(z)[0]} points for "
                    f"{labels.shape[0]} labels."
                )
    keep = np.arange(labels.shape[0])
    if keep.size > max_points:
        keep = np.sort(np.random.default_rng(0).choice(keep.size, max_points, replace=False))
    classes = np.unique(labels)
    from matplotlib import colormaps

    cmap = colormaps["tab10" if classes.size <= 10 else "tab20"]
    nrows, ncols = len(rows), max(len(r) for r in rows)
    # At least 5.5 inches wide: the title and the class legend fit beside one column.
    fig = _figure(size=(max(2.6 * ncols, 5.5), 2.6 * nrows))
    t = np.linspace(0, 2 * np.pi, 100)
    handles = None
    for i, r in enumerate(rows):
        for j in range(ncols):
            kw = {"projection": "3d"} if dim == 3 else {}
            ax = fig.add_subplot(nrows, ncols, i * ncols + j + 1, **kw)
            if j >= len(r):
                ax.set_visible(False)
                continue
            name, z = r[j]
            z = np.asarray(z, np.float64)[keep]
            y = labels[keep]
            if dim == 2:
                ax.plot(np.cos(t), np.sin(t), color="0.8", lw=0.8)
                ax.set_aspect("equal")
            else:
                ax.set_box_aspect((1, 1, 1))
                ax.set_zticks([])
            ax.set_xticks([])
            ax.set_yticks([])
            for c_i, c in enumerate(classes):
                name_c = class_names[int(c)] if class_names is not None else str(c)
                ax.scatter(*z[y == c].T, color=cmap(c_i % cmap.N), s=4, label=name_c)
            ax.set_title(name, fontsize="small")
            if j == 0 and row_labels is not None:
                ax.annotate(
                    row_labels[i],
                    xy=(0, 0.5),
                    xycoords="axes fraction",
                    xytext=(-6, 0),
                    textcoords="offset points",
                    ha="right",
                    va="center",
                    rotation=90,
                )
            if handles is None:
                handles = ax.get_legend_handles_labels()
    fig.legend(*handles, title="class", loc="outside right center", markerscale=2.5)
    _title(fig, title)
    return fig


def epoch_curves_figure(
    panels: Mapping[str, Mapping[str, Any]],
    epochs: Any,
    *,
    ylabel: str,
    logy: bool = False,
    hlines: Mapping[str, Sequence[float]] | None = None,
    hline_label: str = "minimum",
    ncols: int | None = None,
    title: str | None = None,
):
    """Per-run curves against epochs, one panel per quantity or group of runs.

    For arrays of values at known epochs (e.g. `synthetic_grid.train_grid`'s loss and NC
    curves); metric rows of workdirs go to `runs_figure`.

    Args:
      panels: panel title -> {run label -> (n,) values at `epochs`}.
      epochs: (n,) the epoch of each value.
      ylabel: the y axis label.
      logy: log y axis (values below 1e-12 drawn at 1e-12).
      hlines: panel title -> constants drawn as dashed black lines (e.g. the minima of
        the panel's losses).
      hline_label: the legend entry of the dashed lines.
      ncols: panels per row (default up to 2).
      title: figure title.

    Returns:
      The `Figure`. The legend is drawn once, in the first panel, when every panel shows
      the same runs; otherwise every panel has its own.

    Raises:
      ValueError: no panels, or a curve whose length is not `epochs`'.
    """
    if not panels:
        raise ValueError("epoch_curves_figure: no panels; pass {panel title: {label: values}}.")
    x = np.asarray(epochs, np.float64).ravel()
    fig, axes = _grid(len(panels), ncols, (5.0, 3.6))
    for ax, (name, curves) in zip(axes, panels.items(), strict=True):
        for i, (label, values) in enumerate(curves.items()):
            y = np.asarray(values, np.float64).ravel()
            if y.shape != x.shape:
                raise ValueError(
                    f"epoch_curves_figure: {name!r}/{label!r} has {y.size} values for "
                    f"{x.size} epochs."
                )
            ax.plot(x, np.maximum(y, 1e-12) if logy else y, label=label, **_line_style(i, x.size))
        for k, value in enumerate((hlines or {}).get(name, ())):
            ax.axhline(value, color="k", ls="--", lw=0.8, label=hline_label if k == 0 else None)
        ax.set_yscale("log" if logy else "linear")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    _legend_once(axes)
    _title(fig, title)
    return fig


def runs_figure(
    runs: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    keys: Sequence[str],
    *,
    log_keys: Sequence[str] | None = None,
    title: str | None = None,
):
    """Metrics of several runs against epochs: one row of panels per key, one column per group.

    Args:
      runs: column title (e.g. "supervised") -> {run label -> the run's metric rows
        (`reporting.read_metrics`)}; rows without a key are skipped.
      keys: the metrics drawn, one row of panels each (e.g. "eval/test/z/ncm_acc",
        "nc/train/z/zero_sum").
      log_keys: the keys drawn on a log y axis (default: those starting with "nc/").
      title: figure title.

    Returns:
      The `Figure`: len(keys) × len(runs) panels titled "<column>: <key>", each run a
      line in every panel of its column, a legend in the top panel of each column.

    Raises:
      ValueError: no runs or no keys.
    """
    if not runs or not keys:
        raise ValueError("runs_figure: pass {column: {run label: metric rows}} and the keys.")
    log_keys = [k for k in keys if k.startswith("nc/")] if log_keys is None else list(log_keys)
    fig = _figure(ncols=len(runs), nrows=len(keys), size=(5.0, 2.8))
    axes = fig.subplots(len(keys), len(runs), squeeze=False, sharex="col")
    for col, (column, members) in enumerate(runs.items()):
        for i, (label, rows) in enumerate(members.items()):
            xs, xlabel = epoch_axis(rows) if rows else ({}, "epoch")
            for ax, key in zip(axes[:, col], keys, strict=True):
                x, y = _series(rows, key, xs)
                if key in log_keys:
                    y = np.maximum(y, 1e-12)
                ax.plot(x, y, label=label, **_line_style(i, x.size))
        for ax, key in zip(axes[:, col], keys, strict=True):
            ax.set_title(f"{column}: {key}", fontsize="small")
            ax.set_yscale("log" if key in log_keys else "linear")
            ax.set_ylabel(key.rsplit("/", 1)[-1])
            ax.grid(True, which="both", alpha=0.3)
        axes[-1, col].set_xlabel("epoch")
        if members:
            axes[0, col].legend(fontsize="small")
    _title(fig, title)
    return fig


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep_figure(
    rows: Sequence[Mapping[str, Any]],
    field: str,
    metrics: Sequence[str],
    *,
    group_by: str | Any | None = None,
    logx: bool = False,
    title: str | None = None,
):
    """Final metrics of a sweep against a grid field, one panel per metric, one line per group.

    Args:
      rows: `sweep.run_grid` rows, or `sweep.aggregate` rows (a `<metric>_std` entry
        draws ± std error bars).
      field: the swept field, on the x axis (e.g. "batch_size").
      metrics: the metrics drawn, one panel each.
      group_by: a field name (lines labelled "<field>=<value>") or a function of a row
        returning its line's label; None: one line.
      logx: log x axis.
      title: figure title.

    Returns:
      The `Figure`; lines in the order their groups first appear, points sorted by x.

    Raises:
      ValueError: if no row has `field` and any of `metrics`.
    """

    def label_of(r):
        if group_by is None:
            return None
        if callable(group_by):
            return group_by(r)
        return f"{group_by}={_value_text(r.get(group_by))}"

    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r.get(field) is not None and any(r.get(m) is not None for m in metrics):
            groups.setdefault(label_of(r), []).append(r)
    if not groups:
        raise ValueError(f"sweep_figure: no row has both {field!r} and any of {list(metrics)}.")
    n = max((int(r.get("n", 1)) for m in groups.values() for r in m), default=1)
    fig = _figure(ncols=len(metrics), size=(5.0, 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(metrics))).ravel()
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (label, members) in enumerate(groups.items()):
            members = sorted(
                (r for r in members if r.get(metric) is not None), key=lambda r: r[field]
            )
            ax.errorbar(
                [r[field] for r in members],
                [r[metric] for r in members],
                yerr=[r.get(f"{metric}_std", 0.0) for r in members],
                capsize=3,
                label=label,
                **_style(i),
            )
        ax.set_xscale("log" if logx else "linear")
        ax.set_xlabel(field)
        ax.set_ylabel(metric)
        stds = any(f"{metric}_std" in r for m in groups.values() for r in m)
        panel = f"{metric} against {field}" + (f" (mean ± std, n = {n})" if stds else "")
        ax.set_title(panel, fontsize="medium", wrap=True)  # long names wrap, not cut off
        ax.grid(True, which="both", alpha=0.3)
        if group_by is not None:
            ax.legend(fontsize="small")
    _title(fig, title)
    return fig
