"""Figures of a run: loss, accuracies, collapse metrics, DC spectra and embeddings.

Every figure has epochs on its x axis, a title naming the run (`title=`, e.g.
`reporting.run_title(config)`), axis labels and a legend. Curves that coincide (train
and test at Neural-Collapse, h and z accuracies) stay visible: each series gets its own
marker and line style, drawn semi-transparent.

Each `*_figure` function returns a `matplotlib.figure.Figure` (displayed inline in a
notebook; inspect or save it as you like); each `plot_*` function draws the same figure
into a PNG file and returns its path. Figures use matplotlib's object API (no pyplot
state, no global backend switch), so they are safe in notebooks and headless jobs.
`hncl_jax.reporting.plot_all` draws every figure a workdir's outputs allow.

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
    "dc_spectrum_figure",
    "embeddings_figure",
    "epoch_axis",
    "loss_figure",
    "nc_metrics_figure",
    "plot_accuracy",
    "plot_dc_spectrum",
    "plot_embeddings",
    "plot_loss",
    "plot_nc_metrics",
    "save_figure",
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
    for ax, rep in zip(axes, reps, strict=True):
        for i, key in enumerate(k for k in keys if _ACC.match(k).group(2) == rep):
            split, _, name = _ACC.match(key).groups()
            x, y = _series(history, key, xs)
            ax.plot(x, y, label=_acc_label(split, name), **_style(i))
        ax.set_title(names.get(rep, rep))
        ax.set_xlabel(xlabel)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
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


def dc_spectrum_figure(spectra: Any, *, title: str | None = None, max_legend: int = 8):
    """Normalized DC spectra, one panel per split/representation, one curve per evaluation.

    Args:
      spectra: either one evaluation's `{"train/z": spectrum, ...}` (sorted descending,
        max 1, as `evaluation.evaluate_representations` returns), or the list of every
        evaluation's `{"step", "epoch", "spectra"}` records (`reporting.read_spectra`):
        the curves then go from dark (first evaluation) to light (last).
      title: figure title (the run).
      max_legend: with more evaluations than this, a colour bar of the epoch replaces
        the legend.

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
                np.maximum(v, 1e-12),
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
