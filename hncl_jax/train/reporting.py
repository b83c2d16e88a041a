"""Run outputs: one metric writer, a progress bar, plots, W&B and a summary.

What a run writes outside its checkpoints and its config record goes through this
module, into the workdir (the names are `workdir`'s table):

    <workdir>/metrics.jsonl     one JSON object per `write_scalars` call: {"step": s, ...}
    <workdir>/tensorboard/      the same scalars as TensorBoard events (tensorboardX)
    <workdir>/spectra.npz       every evaluation's DC spectra
    <workdir>/plots/*.png       NC metrics over training, DC spectra, embeddings (d <= 3)
    <workdir>/summary.txt       the run's plain-text summary

(`<workdir>/config.json`, the run's config sorted and JSON-safe, is the run record
written by `workdir.save_config_record`.)

Every metric goes through the one writer, and its key says its kind by a prefix:
`train/...` (the step's loss, gradient norm, steps per second, learning rate),
`eval/...` (classifiers on frozen features) and `nc/...` (the collapse metrics); see
`hncl_jax.evaluation` for the evaluation keys. Only process 0 writes (`enabled`).

A resumed run passes the restored step as `MetricWriter(resume_step=...)`: rows (and
TensorBoard events) after that step, written before the interruption, are dropped, so
the resumed run never duplicates them.

Plots use matplotlib's object API (`matplotlib.figure.Figure`, Agg canvas), imported
inside the functions: no global backend switch, safe in notebooks and headless jobs.

References:
  big_vision JSON-lines metric writer; flax `examples/gemma/train.py` (clu metric
  writers).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import string
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from hncl_jax.train import plots
from hncl_jax.train import workdir as workdir_lib
from hncl_jax.train.plots import (
    NC_PANELS,
    accuracy_figure,
    dc_spectrum_figure,
    embeddings_figure,
    loss_figure,
    nc_metrics_figure,
    plot_accuracy,
    plot_dc_spectrum,
    plot_embeddings,
    plot_loss,
    plot_nc_metrics,
)

# The key every evaluation row of metrics.jsonl has and no train/* row has.
EVALUATION_KEY = "epoch"

__all__ = [
    "MetricWriter",
    "NC_PANELS",
    "ProgressBar",
    "WandbLogger",
    "accuracy_figure",
    "dc_spectrum_figure",
    "embeddings_figure",
    "flat_hparams",
    "is_evaluation_row",
    "last_evaluation",
    "log_config_tensorboard",
    "log_results_tensorboard",
    "loss_description",
    "loss_figure",
    "nc_metrics_figure",
    "parse_metrics_file",
    "plot_accuracy",
    "plot_all",
    "plot_dc_spectrum",
    "plot_embeddings",
    "plot_loss",
    "plot_nc_metrics",
    "read_metrics",
    "read_spectra",
    "run_name",
    "run_title",
    "summary_text",
    "headline_text",
    "write_spectra",
    "write_summary",
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
    path = os.path.join(os.fspath(workdir), workdir_lib.METRICS_FILE)
    if not os.path.exists(path):
        return []
    return _parse_lines(path)


def is_evaluation_row(row: Mapping[str, Any]) -> bool:
    """Whether a metrics row is an evaluation (every `eval_every_epochs` and at the end).

    Evaluation rows carry `epoch` with the `eval/*` and `nc/*` keys; the rows logged
    every `log_every_steps` carry `train/*` keys only.
    """
    return EVALUATION_KEY in row


def last_evaluation(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The last evaluation row of `rows` (as `read_metrics` returns them); {} if none."""
    evaluations = [r for r in rows if is_evaluation_row(r)]
    return dict(evaluations[-1]) if evaluations else {}


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
        self.path = os.path.join(self.workdir, workdir_lib.METRICS_FILE)
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
            logdir=os.path.join(self.workdir, workdir_lib.TENSORBOARD_DIR),
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
        line = json.dumps(row) + "\n"
        where = self.path
        try:
            self._file.write(line)
            self._file.flush()
            where = os.path.join(self.workdir, workdir_lib.TENSORBOARD_DIR)
            for key, value in row.items():
                if key != "step":
                    self._tb.add_scalar(key, value, global_step=int(step))
            self._tb.flush()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            raise workdir_lib.OutputDiskFullError(
                errno.ENOSPC,
                f"no space left on device writing {where} (about {len(line)} bytes needed for "
                f"the row of step {step})",
            ) from None

    def flush(self) -> None:
        if self.enabled and self._file is not None:
            self._file.flush()
            self._tb.flush()

    def close(self) -> None:
        """Flushes and closes both outputs (idempotent); on a full disk the unwritten tail
        is dropped quietly (the write that hit it raised `workdir.OutputDiskFullError`)."""
        for name in ("_file", "_tb"):
            out = getattr(self, name)
            setattr(self, name, None)
            try:
                if out is not None:
                    out.close()
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        with warnings.catch_warnings():
            # In Jupyter without ipywidgets tqdm.auto warns "IProgress not found", then
            # draws the text bar, which is the bar wanted there anyway.
            warnings.filterwarnings("ignore", message="IProgress not found")
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


# ----------------------------------------------------------------------------- spectra


def write_spectra(workdir: str | os.PathLike[str], records: Sequence[Mapping[str, Any]]) -> str:
    """Writes every evaluation's DC spectra to `<workdir>/spectra.npz` (atomically).

    The plots of a resumed run need the spectra of the evaluations before the
    interruption; metrics.jsonl holds scalars only, so the spectra live beside it.

    Args:
      workdir: the run directory (created if missing).
      records: one `{"step": int, "epoch": int, "spectra": {"train/z": (m,) array, ...}}`
        per evaluation, in order.

    Returns:
      The path written.
    """
    arrays: dict[str, np.ndarray] = {
        "steps": np.asarray([int(r["step"]) for r in records], np.int64),
        "epochs": np.asarray([float(r["epoch"]) for r in records], np.float64),
    }
    for i, record in enumerate(records):
        for name, values in record["spectra"].items():
            arrays[f"eval{i}/{name}"] = np.asarray(values, np.float64).ravel()
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(os.fspath(workdir), workdir_lib.SPECTRA_FILE)
    with open(path + ".tmp", "wb") as f:  # a file object: np.savez adds no suffix
        np.savez(f, **arrays)
    os.replace(path + ".tmp", path)
    return path


def read_spectra(
    workdir: str | os.PathLike[str], max_step: int | None = None
) -> list[dict[str, Any]]:
    """The records written by `write_spectra` ([] if there is none).

    Args:
      workdir: the run directory.
      max_step: keep only evaluations at steps <= max_step (a resumed run drops the
        evaluations after its checkpoint, as `MetricWriter` drops their rows).

    Returns:
      list of `{"step": int, "epoch": int | float, "spectra": {name: array}}`.
    """
    path = os.path.join(os.fspath(workdir), workdir_lib.SPECTRA_FILE)
    if not os.path.exists(path):
        return []
    try:
        with np.load(path) as data:
            files = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError) as e:  # a torn file: the plots lose history only
        logging.warning("%s cannot be read (%s); earlier evaluations' spectra dropped.", path, e)
        return []
    records = []
    for i, (step, epoch) in enumerate(zip(files["steps"], files["epochs"], strict=True)):
        if max_step is not None and step > max_step:
            continue
        prefix = f"eval{i}/"
        spectra = {k[len(prefix) :]: v for k, v in files.items() if k.startswith(prefix)}
        epoch = float(epoch)
        records.append(
            {
                "step": int(step),
                "epoch": int(epoch) if epoch.is_integer() else epoch,
                "spectra": spectra,
            }
        )
    return records


def plot_all(
    workdir: str | os.PathLike[str],
    *,
    history: Sequence[Mapping[str, Any]] | None = None,
    spectra: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    embeddings: Any | None = None,
    labels: Any | None = None,
    title: str | None = None,
    steps_per_epoch: int | None = None,
) -> list[str]:
    """Every plot the inputs allow, into `<workdir>/plots/`.

    Args:
      workdir: run directory.
      history: metric rows; default: `read_metrics(workdir)`.
      spectra: one evaluation's `{name: DC spectrum}`, or every evaluation's records;
        default: `read_spectra(workdir)`.
      embeddings: (N, d) embeddings with d in {2, 3} (others are skipped), with labels.
      labels: (N,) int labels of the embeddings.
      title: the title of every figure; default: `run_title` of `<workdir>/config.json`
        when there is one.
      steps_per_epoch: optimizer steps per epoch, for the epoch axis of rows that log no
        epoch (default: inferred from the evaluation rows).

    Returns:
      The paths written, as available: loss.png, accuracy.png, nc_metrics.png,
      dc_spectrum.png, embeddings.png.
    """
    history = read_metrics(workdir) if history is None else list(history)
    spectra = read_spectra(workdir) if spectra is None else spectra
    if title is None and os.path.exists(os.path.join(os.fspath(workdir), workdir_lib.CONFIG_FILE)):
        title = run_title(workdir_lib.load_config_json(workdir), workdir)
    out = os.path.join(os.fspath(workdir), workdir_lib.PLOTS_DIR)
    kw = {"steps_per_epoch": steps_per_epoch, "title": title}
    paths = []
    if any("train/epoch_loss" in r or "train/loss" in r for r in history):
        paths.append(plots.plot_loss(history, os.path.join(out, "loss.png"), **kw))
    if any(plots._ACC.match(k) for r in history for k in r):
        paths.append(plots.plot_accuracy(history, os.path.join(out, "accuracy.png"), **kw))
    if any(plots._NC.match(k) for r in history for k in r):
        paths.append(plots.plot_nc_metrics(history, os.path.join(out, "nc_metrics.png"), **kw))
    if spectra:
        path = os.path.join(out, "dc_spectrum.png")
        paths.append(plots.plot_dc_spectrum(spectra, path, title=title))
    if embeddings is not None and labels is not None:
        z = np.asarray(embeddings)
        if z.ndim == 2 and z.shape[1] in (2, 3):
            path = os.path.join(out, "embeddings.png")
            paths.append(plots.plot_embeddings(z, labels, path, title=title))
    return paths


# ----------------------------------------------------------------------------- run identity


def _field(config: Any, dotted: str, default: Any = None) -> Any:
    """`config.a.b` of a ConfigDict or of the dict `workdir.load_config_json` returns."""
    value = config
    for part in dotted.split("."):
        try:
            value = value[part]
        except (KeyError, TypeError, AttributeError):
            return default
    return value


def _num(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


def run_name(config: Any, workdir: str | os.PathLike[str] | None = None) -> str:
    """The run's name: `config.name` if set, else the workdir's folder name.

    `python -m hncl_jax.main` sets `config.name` from `--config` (e.g. "digits:smoke").
    """
    name = _field(config, "name")
    if name:
        return str(name)
    if workdir is not None:
        return os.path.basename(os.path.abspath(os.fspath(workdir)))
    return f"{_field(config, 'dataset', '?')}-{_field(config, 'loss.name', '?')}"


def loss_description(config: Any) -> str:
    """The loss and the parameters it reads, e.g. "hscl (ψ=infonce, exponential β=2, k=16)".

    Args:
      config: a ConfigDict or the dict of `workdir.load_config_json`.

    Returns:
      One line; fields the loss ignores (β of a baseline, k of SimCLR-form) are left out.
    """
    get = lambda f: _field(config, f"loss.{f}")  # noqa: E731
    name = get("name")
    parts: list[str] = []

    def hardening_part():
        h = get("hardening")
        if h == "exponential":
            parts.append(f"exponential β={_num(get('beta'))}")
        elif h == "polynomial":
            parts.append(f"polynomial ε={_num(get('epsilon'))}")
        elif h is not None:
            parts.append(f"hardening {h}")

    if name in ("scl", "hscl", "ucl", "hucl"):
        psi = get("psi")
        parts.append(f"ψ={psi}" + (f" α={_num(get('alpha'))}" if psi != "infonce" else ""))
        if name in ("hscl", "hucl"):
            hardening_part()
        parts.append(f"k={_num(get('k'))}")
        parts.append(f"{get('estimator')} estimator")
        if get("draw") not in (None, "anchor"):
            parts.append(f"draw={get('draw')}")
    elif name == "simclr_form":
        hardening_part()
    elif name not in ("vicreg", "barlow_twins"):
        parts.append(f"τ={_num(get('temperature'))}")
    text = f"{name} ({', '.join(parts)})" if parts else str(name)
    weight = _field(config, "clop.weight", 0) or 0
    if weight > 0:
        text += f" + CLOP λ={_num(weight)} ({_field(config, 'clop.prototypes')} prototypes)"
    return text


def run_title(config: Any, workdir: str | os.PathLike[str] | None = None) -> str:
    """One line naming the run, the title of every figure.

    E.g. "digits_smoke · hscl (ψ=infonce, exponential β=2, k=16, sampled estimator) ·
    digits · tiny_cnn · seed 0".
    """
    return " · ".join(
        (
            run_name(config, workdir),
            loss_description(config),
            str(_field(config, "dataset")),
            str(_field(config, "model")),
            f"seed {_field(config, 'seed')}",
        )
    )


def summary_text(
    final_metrics: Mapping[str, Any],
    workdir: str | os.PathLike[str],
    *,
    config: Any | None = None,
    step: int | None = None,
    total_steps: int | None = None,
    steps_trained: int | None = None,
    wall_time_s: float | None = None,
    steps_per_sec: float | None = None,
    batch_size: int | None = None,
) -> str:
    """A plain-text summary of a run: what ran, how long, final metrics, outputs.

    Args:
      final_metrics: flat dict of the last evaluation (keys as in `evaluation`).
      workdir: run directory (its outputs are listed).
      config: the run's config (a ConfigDict or the dict of `workdir.load_config_json`); names
        the run, its loss and parameters, dataset, model and seed.
      step: the run's last step; total_steps: the steps of the whole run.
      steps_trained: steps this invocation trained (fewer than `step` after a resume).
      wall_time_s: this invocation's wall time, data loading and compilation included.
      steps_per_sec: this invocation's training steps per second.
      batch_size: the global batch the run used, when the trainer changed the config's
        (clamped to the training set, or to a multiple of the devices).

    Returns:
      Multi-line string (no trailing newline).
    """
    workdir = os.fspath(workdir)
    lines = [f"hncl_jax run: {os.path.abspath(workdir)}"]
    facts = _run_facts(workdir, config, step, total_steps, steps_trained, batch_size)
    if wall_time_s is not None:
        facts.append(("wall time", f"{wall_time_s:.1f} s"))
    if steps_per_sec is not None:
        facts.append(("steps/s", f"{steps_per_sec:.3g}"))
    for label, text in facts:
        lines.append(f"  {label + ':':<11} {text}")
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
        for name in (
            workdir_lib.METRICS_FILE,
            workdir_lib.SPECTRA_FILE,
            workdir_lib.CONFIG_FILE,
            workdir_lib.TENSORBOARD_DIR,
            workdir_lib.CHECKPOINTS_DIR,
        )
        if os.path.exists(os.path.join(workdir, name))
    ]
    plots_dir = os.path.join(workdir, workdir_lib.PLOTS_DIR)
    if os.path.isdir(plots_dir):
        outputs += [os.path.join(workdir_lib.PLOTS_DIR, p) for p in sorted(os.listdir(plots_dir))]
    if outputs:
        lines.append("  outputs: " + ", ".join(outputs))
    return "\n".join(lines)


def _run_facts(
    workdir: str,
    config: Any | None = None,
    step: int | None = None,
    total_steps: int | None = None,
    steps_trained: int | None = None,
    batch_size: int | None = None,
) -> list[tuple[str, str]]:
    """(label, text) lines naming the run: config, loss, data, model, optimizer, steps."""
    facts: list[tuple[str, str]] = []
    if config is not None:
        model = str(_field(config, "model"))
        embed = _field(config, "embed_dim")
        embed_text = "C - 1" if embed in (-1, None) else _num(embed)
        model += f" (embedding d = {embed_text}, {_field(config, 'normalization')})"
        asked = _field(config, "batch_size")
        batch = _num(asked)
        if batch_size is not None and batch_size != asked:
            batch = f"{batch_size} (config {_num(asked)}, clamped to the data and devices)"
        facts += [
            ("config", run_name(config, workdir)),
            ("loss", loss_description(config)),
            ("dataset", str(_field(config, "dataset"))),
            ("model", model),
            ("seed", str(_field(config, "seed"))),
            (
                "optimizer",
                f"{_field(config, 'optimizer.name')}, learning rate "
                f"{_num(_field(config, 'optimizer.learning_rate'))}, batch {batch}",
            ),
        ]
        init_from = _field(config, "init_from")
        if init_from:
            facts.append(("warm start", f"from {os.path.abspath(os.fspath(init_from))}"))
    if step is not None:
        text = f"{step}" + (f" of {total_steps}" if total_steps is not None else "")
        if steps_trained is not None and steps_trained != step:
            text += f" ({steps_trained} trained by this invocation)"
        facts.append(("steps", text))
    return facts


# The headline's lines after the accuracies: (label, ((name, key), ...)).
_HEADLINE = (
    ("loss", (("epoch loss", "train/epoch_loss"), ("Theorem bound", "train/theorem_bound"),
              ("gap", "train/loss_gap"))),
    ("NC test z", (("within-class var.", "nc/test/z/within_class_variance"),
                   ("zero sum", "nc/test/z/zero_sum"), ("unit norm", "nc/test/z/unit_norm"),
                   ("equal inner product", "nc/test/z/equal_inner_product"),
                   ("NC1", "nc/test/z/nc1"))),
    ("DC test", (("dc_rank z", "nc/test/z/dc_rank"), ("dc_rank h", "nc/test/h/dc_rank"),
                 ("dc_sv_min z", "nc/test/z/dc_sv_min"), ("RankMe z", "nc/test/z/rankme"))),
)  # fmt: skip


def _fmt(x: Any) -> str:
    return f"{float(x):.4g}" if isinstance(x, int | float | np.number) else str(x)


def headline_text(
    final_metrics: Mapping[str, Any],
    workdir: str | os.PathLike[str],
    *,
    wall_time_s: float | None = None,
    steps_per_sec: float | None = None,
    **facts: Any,
) -> str:
    """The run's console summary in a few lines, however many classes (`summary_text`'s
    header, then the test accuracies of `h` and `z`, the loss and its Theorem 2/3 gap,
    the test NC and DC figures, and where `summary.txt` lists everything).

    Args: as `summary_text`. Returns: multi-line string (no trailing newline).
    """
    workdir, m = os.fspath(workdir), final_metrics
    rows = _run_facts(workdir, **facts)
    timing = [f"{wall_time_s:.1f} s"] if wall_time_s is not None else []
    timing += [f"{steps_per_sec:.3g} steps/s"] if steps_per_sec is not None else []
    rows += [("time", ", ".join(timing))] if timing else []
    for rep in ("z", "h"):
        knn = [k for k in m if re.fullmatch(rf"eval/test/{rep}/knn\d+_acc", k)]
        keys = [f"eval/test/{rep}/ncm_acc", *sorted(knn, key=lambda k: int(k[15:-4]))]
        keys.append(f"eval/test/{rep}/probe_top1")
        parts = [f"{k.rsplit('/', 1)[1].removesuffix('_acc')} {_fmt(m[k])}" for k in keys if k in m]
        text = ", ".join(parts).replace("ncm", "NCM", 1).replace("probe_top1", "probe", 1)
        rows += [(f"test acc {rep}", text)] if parts else []
    for label, pairs in _HEADLINE:
        parts = [f"{name} {_fmt(m[key])}" for name, key in pairs if key in m]
        rows += [(label, ", ".join(parts))] if parts else []
    lines = [f"hncl_jax run: {os.path.abspath(workdir)}"]
    lines += [f"  {label + ':':<11} {text}" for label, text in rows]
    where = os.path.join(workdir, workdir_lib.SUMMARY_FILE)
    lines.append(
        f"  all {len(m)} final metrics and the outputs: {where}" if m else "  (no final metrics)"
    )
    return "\n".join(lines)


def write_summary(
    workdir: str | os.PathLike[str], final_metrics: Mapping[str, Any], **kwargs: Any
) -> str:
    """Writes `<workdir>/summary.txt` from `summary_text(final_metrics, workdir, **kwargs)`.

    Returns:
      The text written (without the final newline), which the trainer also prints.
    """
    text = summary_text(final_metrics, workdir, **kwargs)
    path = os.path.join(os.fspath(workdir), workdir_lib.SUMMARY_FILE)
    with open(path + ".tmp", "w") as fh:
        fh.write(text + "\n")
    os.replace(path + ".tmp", path)
    return text


# ----------------------------------------------------------------------------- TensorBoard


def flat_hparams(config: Any) -> dict[str, bool | int | float | str]:
    """The config's fields as TensorBoard hparams: `{"loss.beta": 2.0, ...}`.

    Numbers, strings and bools stay as they are; None, tuples and lists become their
    string form (TensorBoard's hparams take scalars only).
    """
    out: dict[str, bool | int | float | str] = {}

    def walk(tree: Any, prefix: str) -> None:
        for key, value in tree.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping):
                walk(value, name + ".")
            elif isinstance(value, bool | int | float | str):
                out[name] = value
            else:
                out[name] = str(value)

    walk(workdir_lib.json_safe(config), "")
    return out


def _tb_writer(workdir: str | os.PathLike[str], suffix: str):
    from tensorboardX import SummaryWriter

    # Another writer (MetricWriter's) may open a file in the same second: the suffix
    # keeps the event file names apart.
    return SummaryWriter(
        logdir=os.path.join(os.fspath(workdir), workdir_lib.TENSORBOARD_DIR), filename_suffix=suffix
    )


def _markdown_code(text: str) -> str:
    # Four-space indentation is a code block in TensorBoard's markdown: kept verbatim.
    return "\n".join("    " + line for line in text.splitlines())


def log_config_tensorboard(workdir: str | os.PathLike[str], config: Any, step: int) -> None:
    """Writes the config (as JSON text) and the run's title to `<workdir>/tensorboard/`.

    Args:
      workdir: run directory.
      config: a ConfigDict or dict.
      step: the step the run starts (or resumes) at.
    """
    with _tb_writer(workdir, ".config") as w:
        w.add_text("run", run_title(config, workdir), global_step=int(step))
        text = json.dumps(workdir_lib.json_safe(config), sort_keys=True, indent=2)
        w.add_text("config", _markdown_code(text), global_step=int(step))


def log_results_tensorboard(
    workdir: str | os.PathLike[str],
    config: Any,
    final_metrics: Mapping[str, Any],
    image_paths: Sequence[str | os.PathLike[str]],
    step: int,
    summary: str | None = None,
) -> None:
    """Writes hparams, the plots as images and the summary to `<workdir>/tensorboard/`.

    The hparams session lists the config's fields (`flat_hparams`) and, as its metrics,
    the final evaluation's keys, whose values the HParams dashboard reads from the
    run's scalars.

    Args:
      workdir: run directory.
      config: a ConfigDict or dict.
      final_metrics: the last evaluation's scalars.
      image_paths: PNG files, logged as images `plots/<file name>`.
      step: the run's last step.
      summary: text logged as "summary" (e.g. `summary_text`'s).
    """
    from PIL import Image
    from tensorboardX.summary import hparams

    metrics = {
        k: float(v)
        for k, v in final_metrics.items()
        if k.startswith(("eval/", "nc/", "train/")) and isinstance(v, int | float)
    }
    with _tb_writer(workdir, ".results") as w:
        for summ in hparams(flat_hparams(config), metrics):
            w.file_writer.add_summary(summ, global_step=int(step))
        for path in image_paths:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            tag = f"plots/{os.path.splitext(os.path.basename(os.fspath(path)))[0]}"
            w.add_image(tag, pixels, global_step=int(step), dataformats="HWC")
        if summary:
            w.add_text("summary", _markdown_code(summary), global_step=int(step))


# ----------------------------------------------------------------------------- Weights & Biases


class WandbLogger:
    """Mirrors the run's scalars and plots to Weights & Biases (`config.wandb=True`).

    `wandb` is imported only here, when enabled: it is an optional dependency
    (`pip install wandb`, or in a checkout `pip install -e ".[wandb]"`). The W&B run id is
    kept in `<workdir>/wandb_id.txt` so that a resumed run continues the same W&B run. The
    project is `$WANDB_PROJECT` (default "hncl_jax"); `WANDB_MODE=offline` writes the run
    under `<workdir>/wandb/` without a network connection (`wandb sync` uploads it later).

    Args:
      workdir: run directory (the W&B files go to `<workdir>/wandb/`).
      config: the run's config, logged as the W&B config.
      enabled: False on processes other than 0 and when `config.wandb` is off.
      name: the W&B run name (default: `run_name`).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        config: Any,
        *,
        enabled: bool = True,
        name: str | None = None,
    ):
        self._run = None
        if not enabled:
            return
        import wandb

        workdir = os.path.abspath(os.fspath(workdir))
        id_path = os.path.join(workdir, workdir_lib.WANDB_ID_FILE)
        if os.path.exists(id_path):
            with open(id_path) as f:
                run_id = f.read().strip()
        else:
            # W&B run ids: lowercase letters and digits (wandb's own generator moves
            # between releases).
            run_id = "".join(
                secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)
            )
            os.makedirs(workdir, exist_ok=True)
            with open(id_path, "w") as f:
                f.write(run_id + "\n")
        self._wandb = wandb
        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "hncl_jax"),
            name=name or run_name(config, workdir),
            id=run_id,
            resume="allow",
            dir=workdir,
            config=workdir_lib.json_safe(config),
            notes=run_title(config, workdir),
        )

    @property
    def enabled(self) -> bool:
        return self._run is not None

    def log(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Logs `scalars` at `step` (keys as in metrics.jsonl)."""
        if self._run is not None:
            self._run.log({k: _scalar(k, v) for k, v in scalars.items()}, step=int(step))

    def log_images(self, step: int, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Logs PNG files as images `plots/<file name>`."""
        if self._run is not None and paths:
            images = {
                f"plots/{os.path.splitext(os.path.basename(os.fspath(p)))[0]}": self._wandb.Image(
                    os.fspath(p)
                )
                for p in paths
            }
            self._run.log(images, step=int(step))

    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        """Records the final metrics as the run's summary and closes it (idempotent)."""
        if self._run is None:
            return
        if summary:
            self._run.summary.update({k: _scalar(k, v) for k, v in summary.items()})
        self._run.finish()
        self._run = None
