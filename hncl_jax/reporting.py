"""Run outputs: one metric writer, the saved config, a progress bar, plots and a summary.

Everything a run writes outside its checkpoints goes through this module, into the
workdir:

    <workdir>/metrics.jsonl     one JSON object per `write_scalars` call: {"step": s, ...}
    <workdir>/tensorboard/      the same scalars as TensorBoard events (tensorboardX)
    <workdir>/config.json       the run's config, sorted and JSON-safe
    <workdir>/plots/*.png       NC metrics over training, DC spectra, embeddings (d <= 3)

Metric keys follow STYLE point 9: `train/...`, `eval/...`, `nc/...` (see
`hncl_jax.evaluation` for the evaluation keys). Only process 0 writes (`enabled`).

A resumed run passes the restored step as `MetricWriter(resume_step=...)`: rows (and
TensorBoard events) after that step, written before the interruption, are dropped, so
the resumed run never duplicates them.

Plots use matplotlib's object API (`matplotlib.figure.Figure`, Agg canvas), imported
inside the functions: no global backend switch, safe in notebooks and headless jobs.

References:
  big_vision JSON-lines metric writer; flax `examples/gemma/train.py` (clu metric
  writers); STYLE points 9 and 13.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
TENSORBOARD_DIR = "tensorboard"
PLOTS_DIR = "plots"
NC_PANELS = ("zero_sum", "unit_norm", "equal_inner_product", "within_class_variance")

__all__ = [
    "MetricWriter",
    "ProgressBar",
    "load_config_json",
    "plot_all",
    "plot_dc_spectrum",
    "plot_embeddings",
    "plot_loss",
    "plot_nc_metrics",
    "read_metrics",
    "save_config",
    "summary_text",
]


def _scalar(key: str, value: Any) -> int | float:
    """A JSON/TensorBoard scalar from a Python, numpy or jax number."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    array = np.asarray(value)
    if array.size != 1 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"MetricWriter.write_scalars: value of {key!r} must be a number; got "
            f"{type(value).__name__} with shape {array.shape}. Log arrays elsewhere "
            "(e.g. spectra to a plot)."
        )
    if np.issubdtype(array.dtype, np.integer):
        return int(array.reshape(()))
    return float(array.reshape(()))


_DECODER = json.JSONDecoder()
_MAX_STEP = 2**62
_MAX_TRIES = 64  # object starts tried per line (rows hold no nested objects)


def _valid_step(value: Any) -> int | None:
    """The row's step as an int, or None if it is not a non-negative whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < _MAX_STEP else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value) if 0 <= value < _MAX_STEP else None
    return None


def _scan_line(text: str) -> tuple[list[Any], bool]:
    """The JSON objects of one line, and whether anything else (garbage) was in it.

    Two rows glued together by a torn write (`{...}{...}`) give both objects; bytes
    around them are skipped up to the next `{` that starts a valid object.
    """
    objects, garbage, pos, tries = [], False, 0, 0
    while pos < len(text):
        start = text.find("{", pos)
        if start < 0:
            garbage = garbage or bool(text[pos:].strip())
            break
        garbage = garbage or bool(text[pos:start].strip())
        tries += 1
        try:
            if tries > _MAX_TRIES:  # a line of braces: each try would rescan the rest
                raise RecursionError
            obj, end = _DECODER.raw_decode(text, start)
        except RecursionError:
            garbage = True
            break
        except ValueError:
            garbage, pos = True, start + 1
            continue
        objects.append(obj)
        pos = end
    return objects, garbage


def parse_metrics_file(path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Reads every readable row of a metrics.jsonl, whatever damage it holds.

    A row is a JSON object with a "step" that is a non-negative whole number (an int,
    or a float such as 5.0, returned as int). Skipped, each with its line number: bytes
    that are not UTF-8, text that is not JSON (a torn write), objects without a valid
    step (`"x"`, null, 1e999, negative), and exact repeats of an earlier row's step and
    keys (a row written twice). Two rows merged on one line are both kept.

    Args:
      path: the file.

    Returns:
      `(rows, skipped)`: the rows in file order, and one description per skipped piece.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    seen: set[tuple[int, tuple[str, ...]]] = set()
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("utf-8", errors="replace")
        objects, garbage = _scan_line(text)
        if garbage:
            skipped.append(f"line {number}: text that is not a JSON row")
        for obj in objects:
            if "\ufffd" in json.dumps(obj, ensure_ascii=False):
                skipped.append(f"line {number}: a row with bytes that are not UTF-8")
                continue
            if not isinstance(obj, dict) or "step" not in obj:
                skipped.append(f"line {number}: a JSON value without a 'step'")
                continue
            step = _valid_step(obj["step"])
            if step is None:
                skipped.append(f"line {number}: 'step' is {obj['step']!r}, not a step number")
                continue
            key = (step, tuple(sorted(obj)))
            if key in seen:
                skipped.append(f"line {number}: a repeat of an earlier row of step {step}")
                continue
            seen.add(key)
            rows.append({**obj, "step": step})
    return rows, skipped


def _parse_lines(path: str) -> list[dict[str, Any]]:
    rows, skipped = parse_metrics_file(path)
    if skipped:
        logging.warning(
            "%s: skipped %d damaged or repeated piece(s): %s%s",
            path,
            len(skipped),
            "; ".join(skipped[:10]),
            f"; and {len(skipped) - 10} more" if len(skipped) > 10 else "",
        )
    return rows


def read_metrics(workdir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All rows of `<workdir>/metrics.jsonl`, in file order ([] if there is none).

    Args:
      workdir: the run directory.

    Returns:
      list of dicts, each with an int "step" and float/int metrics (NaN and ±inf are
      read back as floats).
    """
    path = os.path.join(os.fspath(workdir), METRICS_FILE)
    if not os.path.exists(path):
        return []
    return _parse_lines(path)


class MetricWriter:
    """Writes scalars to metrics.jsonl and TensorBoard; a no-op when not enabled.

    Args:
      workdir: run directory (created if missing).
      enabled: False on processes other than 0: nothing is written or truncated.
      resume_step: the step a resumed run restarts from: rows with a larger step are
        removed from metrics.jsonl and TensorBoard events from step resume_step + 1 on
        are purged. Pass 0 for a fresh run in a reused workdir; None appends as is.

    Example:
      >>> writer = MetricWriter(workdir, enabled=jax.process_index() == 0, resume_step=step)
      >>> writer.write_scalars(step, {"train/loss": loss, "train/learning_rate": lr})
      >>> writer.close()
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        enabled: bool = True,
        resume_step: int | None = None,
    ):
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.path = os.path.join(self.workdir, METRICS_FILE)
        self.enabled = bool(enabled)
        self._file = None
        self._tb = None
        if not self.enabled:
            return
        if resume_step is not None and resume_step < 0:
            raise ValueError(f"MetricWriter: resume_step must be >= 0 or None; got {resume_step}.")
        os.makedirs(self.workdir, exist_ok=True)
        if resume_step is not None and os.path.exists(self.path):
            self._truncate(int(resume_step))
        self._file = open(self.path, "a")  # kept open for the whole run
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(
            logdir=os.path.join(self.workdir, TENSORBOARD_DIR),
            purge_step=None if resume_step is None else int(resume_step) + 1,
            flush_secs=30,
        )

    def _truncate(self, resume_step: int) -> None:
        rows, skipped = parse_metrics_file(self.path)
        kept = [r for r in rows if r["step"] <= resume_step]
        with open(self.path, "rb") as f:
            raw = f.read()
        clean = raw.endswith(b"\n") or not raw
        # Rewrite whenever a row goes or the file holds anything but one row per line
        # (a torn line, merged rows, damaged bytes, repeats): appending after a torn line
        # would glue the next row onto it and lose both.
        if not skipped and len(kept) == len(rows) and clean and raw.count(b"\n") == len(rows):
            return
        if skipped:
            # What could not be read is kept next to the file, never deleted.
            backup = self.path + ".damaged"
            n = 1
            while os.path.exists(backup):
                backup, n = f"{self.path}.damaged-{n}", n + 1
            with open(backup, "wb") as f:
                f.write(raw)
            logging.warning(
                "MetricWriter: %s held %d damaged or repeated piece(s), skipped: %s%s. Kept "
                "the %d readable rows; the original file is saved as %s.",
                self.path,
                len(skipped),
                "; ".join(skipped[:10]),
                f"; and {len(skipped) - 10} more" if len(skipped) > 10 else "",
                len(rows),
                backup,
            )
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            for row in kept:
                f.write(json.dumps(row) + "\n")
        os.replace(tmp, self.path)  # atomic: a crash here leaves the old or the new file
        logging.info(
            "MetricWriter: dropped %d rows after step %d from %s.",
            len(rows) - len(kept),
            resume_step,
            self.path,
        )

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Appends `{"step": step, **scalars}` to metrics.jsonl and TensorBoard.

        Args:
          step: training step (int).
          scalars: key -> number (Python, numpy or 0-d/size-1 jax/numpy array).
        """
        if not self.enabled:
            return
        row: dict[str, Any] = {"step": int(step)}
        for key, value in scalars.items():
            if key == "step":
                raise ValueError("MetricWriter.write_scalars: 'step' is reserved; pass it as step.")
            row[str(key)] = _scalar(key, value)
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for key, value in row.items():
            if key != "step":
                self._tb.add_scalar(key, value, global_step=int(step))
        self._tb.flush()

    def flush(self) -> None:
        if self.enabled and self._file is not None:
            self._file.flush()
            self._tb.flush()

    def close(self) -> None:
        """Flushes and closes both outputs (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_safe(value: Any) -> Any:
    if hasattr(value, "to_dict") and callable(value.to_dict):  # ml_collections.ConfigDict
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_json_safe(v) for v in items]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic | np.ndarray) or hasattr(value, "__array__"):
        return _json_safe(np.asarray(value).tolist())
    return str(value)


def save_config(config: Any, workdir: str | os.PathLike[str]) -> str:
    """Writes `<workdir>/config.json` (keys sorted, values made JSON-safe).

    Tuples become lists, numpy values Python numbers, non-finite floats and unknown
    objects their string form. The file is replaced atomically.

    Args:
      config: a dict or an `ml_collections.ConfigDict` (anything with `to_dict()`).
      workdir: run directory (created if missing).

    Returns:
      The path written.
    """
    safe = _json_safe(config)
    if not isinstance(safe, dict):
        raise ValueError(
            f"save_config: config must be a dict or ConfigDict; got {type(config).__name__}."
        )
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(os.fspath(workdir), CONFIG_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(safe, f, sort_keys=True, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return path


def load_config_json(workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads the dict written by `save_config`.

    Raises:
      FileNotFoundError: if `<workdir>/config.json` does not exist.
    """
    path = os.path.join(os.fspath(workdir), CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"load_config_json: {path} does not exist; is {os.fspath(workdir)!r} a run "
            "directory written by train_and_evaluate?"
        )
    with open(path) as f:
        return json.load(f)


class ProgressBar:
    """A tqdm bar over training steps, on stderr, with loss and steps/s.

    Args:
      total: number of steps of the run.
      initial: step the bar starts at (a resumed run).
      enabled: False on processes other than 0 (and to silence it).
      desc: label.
      mininterval: seconds between redraws; default 1 on a terminal, 30 otherwise (a
        log file gets a line every 30 s instead of a carriage-return stream).
    """

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        enabled: bool = True,
        desc: str = "train",
        mininterval: float | None = None,
    ):
        from tqdm.auto import tqdm

        if mininterval is None:
            mininterval = 1.0 if sys.stderr.isatty() else 30.0
        self._bar = tqdm(
            total=int(total),
            initial=int(initial),
            desc=desc,
            unit="step",
            file=sys.stderr,
            mininterval=mininterval,
            dynamic_ncols=True,
            disable=not enabled,
            # One rate only: the measured steps/s of the postfix, not also tqdm's own
            # average (which counts evaluation time and so disagrees with it).
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
            "[{elapsed}<{remaining}{postfix}]",
        )

    def update(
        self, step: int, loss: float | None = None, steps_per_sec: float | None = None
    ) -> None:
        """Moves the bar to `step` and shows the latest loss and throughput."""
        postfix = {}
        if loss is not None:
            postfix["loss"] = f"{float(loss):.4g}"
        if steps_per_sec is not None:
            postfix["steps/s"] = f"{float(steps_per_sec):.3g}"
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(int(step) - self._bar.n)

    @property
    def n(self) -> int:
        return int(self._bar.n)

    def close(self) -> None:
        self._bar.close()


# ----------------------------------------------------------------------------- plots


def _figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (5.0, 4.0)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    return fig


def _save(fig: Any, path: str | os.PathLike[str]) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _series(rows: Iterable[Mapping[str, Any]], key: str, x_key: str):
    xs, ys = [], []
    for row in rows:
        if key in row and row[key] is not None:
            xs.append(row.get(x_key, row["step"]))
            ys.append(float(row[key]))
    return np.asarray(xs), np.asarray(ys)


def plot_nc_metrics(
    history: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    x_key: str = "epoch",
) -> str:
    """Four panels (zero-sum, unit-norm, equal inner product, within-class variance).

    Every series `nc/{split}/{rep}/{metric}` found in the rows is drawn (log y), e.g.
    train and test curves of z, as in [HN Fig. 2-3].

    Args:
      history: metric rows (as from `read_metrics`), each with "step" and optionally
        `x_key`; rows without NC keys are skipped.
      path: PNG path.
      x_key: x axis ("epoch"); rows without it use their "step".

    Returns:
      The path written.
    """
    pattern = re.compile(r"^nc/([^/]+)/([^/]+)/(" + "|".join(NC_PANELS) + r")$")
    keys = sorted({k for row in history for k in row if pattern.match(k)})
    if not keys:
        raise ValueError(
            f"plot_nc_metrics: no nc/<split>/<rep>/<metric> keys ({', '.join(NC_PANELS)}) in "
            "the history rows; evaluate with evaluation.evaluate_representations first."
        )
    fig = _figure(ncols=2, nrows=2, size=(4.5, 3.5))
    axes = fig.subplots(2, 2).ravel()
    uses_x_key = any(x_key in row for row in history)
    for ax, metric in zip(axes, NC_PANELS, strict=True):
        for key in keys:
            split, rep, name = pattern.match(key).groups()
            if name != metric:
                continue
            xs, ys = _series(history, key, x_key)
            ax.plot(xs, np.maximum(ys, 1e-12), marker=".", label=f"{split}/{rep}")
        ax.set_yscale("log")
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel(x_key if uses_x_key else "step")
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    return _save(fig, path)


def plot_dc_spectrum(spectra: Mapping[str, Any], path: str | os.PathLike[str]) -> str:
    """Normalized DC spectra (one curve per name), log y, as in [HN Fig. 4].

    Args:
      spectra: name -> 1-D array (sorted descending, max 1), e.g. "train/z".
      path: PNG path.

    Returns:
      The path written.
    """
    if not spectra:
        raise ValueError("plot_dc_spectrum: spectra is empty; pass {'train/z': spectrum, ...}.")
    fig = _figure()
    ax = fig.subplots()
    for name, values in spectra.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        ax.plot(np.arange(1, values.size + 1), np.maximum(values, 1e-12), marker=".", label=name)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yscale("log")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value / largest")
    ax.set_title("DC spectrum of the class-mean covariance")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_embeddings(
    z: Any,
    labels: Any,
    path: str | os.PathLike[str],
    *,
    max_points: int = 3000,
    title: str | None = None,
) -> str:
    """Scatter of 2-D or 3-D embeddings coloured by class, with the unit circle/sphere.

    Args:
      z: (N, d) embeddings, d in {2, 3}.
      labels: (N,) int labels.
      path: PNG path.
      max_points: a fixed random subset of at most this many points is drawn.
      title: optional title.

    Returns:
      The path written.
    """
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels)
    if z.ndim != 2 or z.shape[1] not in (2, 3):
        raise ValueError(
            f"plot_embeddings: z must be (N, 2) or (N, 3); got shape {z.shape}. Project "
            "higher-dimensional embeddings first, or skip this plot."
        )
    if labels.shape != (z.shape[0],):
        raise ValueError(f"plot_embeddings: labels must be ({z.shape[0]},); got {labels.shape}.")
    if z.shape[0] > max_points:
        keep = np.random.default_rng(0).choice(z.shape[0], max_points, replace=False)
        z, labels = z[keep], labels[keep]
    fig = _figure(size=(5.0, 5.0))
    t = np.linspace(0, 2 * np.pi, 100)
    if z.shape[1] == 2:
        ax = fig.subplots()
        ax.plot(np.cos(t), np.sin(t), color="0.7", lw=0.8)
        ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=6)
        ax.set_aspect("equal")
    else:
        ax = fig.add_subplot(projection="3d")
        u, v = np.meshgrid(t, np.linspace(0, np.pi, 50))
        ax.plot_wireframe(
            np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", lw=0.3
        )
        ax.scatter(z[:, 0], z[:, 1], z[:, 2], c=labels, cmap="tab10", s=4)
        ax.set_box_aspect((1, 1, 1))
    ax.set_title(title or f"embeddings (d = {z.shape[1]})")
    return _save(fig, path)


def plot_loss(history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> str:
    """Training loss per epoch with the theorem's lower bound, when logged.

    Uses "train/epoch_loss" (or "train/loss") and "train/theorem_bound" (MATH §11).

    Returns:
      The path written.
    """
    key = "train/epoch_loss" if any("train/epoch_loss" in r for r in history) else "train/loss"
    xs, ys = _series(history, key, "step")
    if xs.size == 0:
        raise ValueError("plot_loss: no train/epoch_loss or train/loss in the history rows.")
    fig = _figure()
    ax = fig.subplots()
    ax.plot(xs, ys, label=key)
    _, bound = _series(history, "train/theorem_bound", "step")
    if bound.size:
        ax.axhline(bound[-1], color="k", ls="--", lw=1, label=f"bound {bound[-1]:.5f}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_all(
    workdir: str | os.PathLike[str],
    *,
    history: Sequence[Mapping[str, Any]] | None = None,
    spectra: Mapping[str, Any] | None = None,
    embeddings: Any | None = None,
    labels: Any | None = None,
) -> list[str]:
    """Every plot the inputs allow, into `<workdir>/plots/`.

    Args:
      workdir: run directory.
      history: metric rows; default: `read_metrics(workdir)`.
      spectra: name -> DC spectrum (from `evaluate_representations`).
      embeddings: (N, d) embeddings with d in {2, 3} (others are skipped), with labels.
      labels: (N,) int labels of the embeddings.

    Returns:
      The paths written: nc_metrics.png, loss.png, dc_spectrum.png, embeddings.png as
      available.
    """
    history = read_metrics(workdir) if history is None else list(history)
    out = os.path.join(os.fspath(workdir), PLOTS_DIR)
    paths = []
    if any(k.startswith("nc/") and k.rsplit("/", 1)[-1] in NC_PANELS for r in history for k in r):
        paths.append(plot_nc_metrics(history, os.path.join(out, "nc_metrics.png")))
    if any("train/epoch_loss" in r or "train/loss" in r for r in history):
        paths.append(plot_loss(history, os.path.join(out, "loss.png")))
    if spectra:
        paths.append(plot_dc_spectrum(spectra, os.path.join(out, "dc_spectrum.png")))
    if embeddings is not None and labels is not None:
        z = np.asarray(embeddings)
        if z.ndim == 2 and z.shape[1] in (2, 3):
            paths.append(plot_embeddings(z, labels, os.path.join(out, "embeddings.png")))
    return paths


def summary_text(final_metrics: Mapping[str, Any], workdir: str | os.PathLike[str]) -> str:
    """A plain-text summary of a finished run: final metrics grouped by prefix, outputs.

    Args:
      final_metrics: flat dict of the last evaluation (keys as in `evaluation`).
      workdir: run directory (its outputs are listed).

    Returns:
      Multi-line string (no trailing newline).
    """
    workdir = os.fspath(workdir)
    lines = [f"hncl_jax run: {os.path.abspath(workdir)}"]
    groups: dict[str, list[tuple[str, Any]]] = {}
    for key in sorted(final_metrics):
        parts = key.split("/")
        group = "/".join(parts[:2]) if len(parts) > 2 else parts[0] if len(parts) > 1 else ""
        groups.setdefault(group, []).append((key, final_metrics[key]))
    width = max((len(k) for k in final_metrics), default=0)
    for group, items in groups.items():
        lines.append(f"  [{group or 'other'}]")
        for key, value in items:
            try:
                text = f"{float(value):.5g}"
            except (TypeError, ValueError):
                text = str(value)
            lines.append(f"    {key:<{width}}  {text}")
    if not final_metrics:
        lines.append("  (no final metrics)")
    outputs = [
        name
        for name in (METRICS_FILE, CONFIG_FILE, TENSORBOARD_DIR, "checkpoints")
        if os.path.exists(os.path.join(workdir, name))
    ]
    plots_dir = os.path.join(workdir, PLOTS_DIR)
    if os.path.isdir(plots_dir):
        outputs += [os.path.join(PLOTS_DIR, p) for p in sorted(os.listdir(plots_dir))]
    if outputs:
        lines.append("  outputs: " + ", ".join(outputs))
    return "\n".join(lines)
