"""A grid of runs: naming, planning, validating, training one after another, tables.

The functions `hncl_jax.sweep` re-exports (see its docstring for the whole story):
`run_grid`, `plan_grid`, `check_plan`, `train_point` (one run, as every launcher trains
it), the tables (`load_table`, `write_table`, `markdown_table`, `aggregate`) and
`restore_representations`.
"""

from __future__ import annotations

import ast
import copy
import csv
import functools
import hashlib
import itertools
import json
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hncl_jax import evaluation, train
from hncl_jax.data import augment
from hncl_jax.train import checkpointing, plots, reporting, validation

RESULT_FILE = "sweep_result.json"
TABLE_FILE = "results.csv"
MEAN_STD_FILE = "results_mean_std.csv"  # the table's mean ± std over seeds (--seeds)
_SAFE = re.compile(r"[^A-Za-z0-9._=,+-]")
_MAX_NAME = 180


# --------------------------------------------------------------------------- grid naming
def safe_name(text: str) -> str:
    """`text` with characters other than letters, digits and `._=,+-` replaced by `_`."""
    return _SAFE.sub("_", text)


def format_value(value: Any) -> str:
    """A short, stable text for a grid value: 10.0 -> "10", 0.5 -> "0.5", True -> "True"."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    if isinstance(value, tuple | list):
        return "+".join(format_value(v) for v in value)
    return str(value)


def run_name(assignments: Mapping[str, Any]) -> str:
    """The workdir name of one grid point: `path=value` pairs joined by commas, in order.

    Characters other than letters, digits and `._=,+-` become `_`; a name longer than 180
    characters is cut and suffixed with a hash of the full name, so it stays unique.

    Args:
      assignments: field path -> value, e.g. {"loss.name": "hscl", "loss.beta": 10.0}.

    Returns:
      e.g. "loss.name=hscl,loss.beta=10".
    """
    if not assignments:
        return "base"
    name = ",".join(f"{path}={format_value(v)}" for path, v in assignments.items())
    name = _SAFE.sub("_", name)
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[: _MAX_NAME - 11]}~{digest}"
    return name


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last field varying fastest.

    Args:
      grid: field path -> non-empty list of values.

    Returns:
      list of {path: value} dicts, one per run.

    Raises:
      ValueError: a field with no values or given as a bare string.
    """
    for path, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(
                f"expand_grid: grid[{path!r}]={values!r} must be a non-empty list of values, "
                f"e.g. grid={{{path!r}: [0.0, 10.0]}}."
            )
    paths = list(grid)
    return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _node_and_key(config: ml_collections.ConfigDict, path: str):
    *parents, key = path.split(".")
    node = config
    for i, part in enumerate(parents):
        if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
            raise ValueError(
                f"grid field {path!r}: config has no section {'.'.join(parents[: i + 1])!r}; "
                "use a dotted path of an existing field, e.g. 'loss.beta'."
            )
        node = node[part]
    if key not in node:
        raise ValueError(
            f"grid field {path!r}: the config has no field {key!r} there (known: "
            f"{sorted(node.keys())})."
        )
    return node, key


def parse_value(config: ml_collections.ConfigDict, path: str, text: str) -> Any:
    """Converts command-line text to the type of the config field at `path`.

    bool fields take true/false/1/0, int and float fields numbers, str fields the text;
    other fields (None, tuples) a Python literal, falling back to the text.
    """
    node, key = _node_and_key(config, path)
    current = node[key]
    text = text.strip()
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"grid field {path!r} is a bool; got {text!r} (use true or false).")
        return text.lower() in ("true", "1")
    try:
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
    except ValueError as e:
        kind = type(current).__name__
        raise ValueError(f"grid field {path!r} is a {kind}; cannot parse {text!r}.") from e
    if isinstance(current, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grid_flag(config: ml_collections.ConfigDict, flag: str) -> tuple[str, list[Any]]:
    """`"loss.beta=0,10,30"` -> ("loss.beta", [0.0, 10.0, 30.0]) typed as the field.

    Values are comma separated; use `|` instead when a value itself holds commas
    (e.g. `knn_k=(5,200)|(5,)`).
    """
    if "=" not in flag:
        raise ValueError(
            f"--grid={flag!r} must look like 'field.path=v1,v2,...', e.g. 'loss.beta=0,10,30'."
        )
    path, values = flag.split("=", 1)
    sep = "|" if "|" in values else ","
    items = [v for v in values.split(sep) if v.strip()]
    if not items:
        raise ValueError(f"--grid={flag!r} lists no values after '='.")
    return path.strip(), [parse_value(config, path.strip(), v) for v in items]


def apply_assignments(
    config: ml_collections.ConfigDict, assignments: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A copy of `config` with every `path: value` set (the original is untouched)."""
    c = copy.deepcopy(config)
    for path, value in assignments.items():
        node, key = _node_and_key(c, path)
        current = node[key]
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        node[key] = value
    return c


# --------------------------------------------------------------------------- run_grid
def _config_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def final_metrics(workdir: str) -> dict[str, Any]:
    """The last evaluation row of a workdir's metrics.jsonl ({} if none)."""
    return reporting.last_evaluation(reporting.read_metrics(workdir))


def load_record(workdir: str) -> dict | None:
    """The `sweep_result.json` of `workdir` (None: absent or unreadable)."""
    try:
        with open(os.path.join(workdir, RESULT_FILE)) as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None


def _finished(workdir: str, config_json: dict) -> dict | None:
    record = load_record(workdir)
    return record if record is not None and record.get("config") == config_json else None


def finished_record(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
    """The record `train_point` wrote in `workdir` for this very config, or None (not run,
    unfinished, or finished with another config)."""
    return _finished(workdir, _config_json(config))


def train_point(
    assignments: Mapping[str, Any],
    config: ml_collections.ConfigDict,
    workdir: str,
    train_fn: Callable[[ml_collections.ConfigDict, str], Any] | None = None,
) -> dict[str, Any]:
    """Trains one grid point (resuming from its workdir) and writes its `sweep_result.json`.

    What every launcher runs for one run, in this process, a child process or a SLURM job.

    Returns:
      The record: "config" (the config as JSON), "assignments", "final" (the last
      evaluation's metrics), "seconds" (this call's time) and "launch" (host, pid,
      CUDA_VISIBLE_DEVICES, SLURM job, start and end times).
    """
    if train_fn is None:
        train_fn = functools.partial(train.train_and_evaluate, verbose=False)
    start, started = time.perf_counter(), time.time()
    train_fn(config, workdir)
    record = {
        "config": _config_json(config),
        "assignments": {k: _json_value(v) for k, v in assignments.items()},
        "final": final_metrics(workdir),
        "seconds": time.perf_counter() - start,
        # Where and when this call trained (the launchers' runs are told apart by these).
        "launch": {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "started": started,
            "ended": time.time(),
        },
    }
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, RESULT_FILE)
    with open(path + ".tmp", "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)  # whole or absent: another process may be reading it
    return record


def row(record: Mapping[str, Any], workdir: str) -> dict[str, Any]:
    """The table row of a finished run: "run", "workdir", its grid values, its metrics."""
    name = os.path.basename(workdir)
    return {"run": name, "workdir": workdir, **record["assignments"], **record["final"]}


def with_seeds(
    points: Sequence[Mapping[str, Any]], seeds: int | Sequence[int] | None, base_seed: int = 0
) -> list[dict[str, Any]]:
    """Crosses grid points with a seed axis: every point once per seed (seed varies fastest).

    Args:
      points: the grid's {path: value} dicts.
      seeds: None or 0 (no seed axis), a count n (seeds base_seed .. base_seed + n - 1) or
        an explicit list of seeds.
      base_seed: the first seed of a count.

    Returns:
      list of {**point, "seed": s} dicts (the points unchanged without a seed axis).
    """
    if seeds is None or (isinstance(seeds, int) and seeds == 0):
        return [dict(p) for p in points]
    if isinstance(seeds, int):
        if seeds < 0:
            raise ValueError(f"seeds={seeds} must be a count >= 1 or a list of seeds.")
        seeds = [base_seed + i for i in range(seeds)]
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"seeds={seeds} must be distinct and non-empty.")
    if any("seed" in p for p in points):
        raise ValueError("the grid already sets 'seed'; use either --grid=seed=... or --seeds.")
    return [{**p, "seed": s} for p in points for s in seeds]


def plan_grid(
    base_config: ml_collections.ConfigDict,
    grid: Mapping[str, Sequence[Any]],
    root_workdir: str,
    *,
    points: Sequence[Mapping[str, Any]] | None = None,
    seeds: int | Sequence[int] | None = None,
) -> list[tuple[dict[str, Any], ml_collections.ConfigDict, str]]:
    """The runs of a grid: (assignments, config, workdir) each, in grid order; trains nothing.

    Args:
      base_config: the config every run starts from (not modified).
      grid: field path -> list of values; an empty grid is the base config alone.
      root_workdir: parent folder of the runs' workdirs.
      points: an explicit list of {path: value} runs instead of the grid's product
        (e.g. [{"loss.name": "scl"}, {"loss.name": "hscl", "loss.beta": 10.0}]); each is
        crossed with the grid.
      seeds: a seed axis (see `with_seeds`): every run once per seed.

    Returns:
      list of (assignments {path: value}, the run's config, its absolute workdir).

    Raises:
      ValueError: a path that is not a field of the config, or values giving equal names.
    """
    root = os.path.abspath(os.path.expanduser(root_workdir))
    combos = expand_grid(grid) if grid else [{}]
    if points is not None:
        combos = [{**dict(p), **c} for p in points for c in combos]
    combos = with_seeds(combos, seeds, int(base_config.get("seed", 0) or 0))
    configs = [apply_assignments(base_config, a) for a in combos]  # checks every path first
    names = [run_name(a) for a in combos]
    if len(set(names)) != len(names):
        raise ValueError(
            f"run_grid: the grid gives duplicate run names {names}; remove repeated values."
        )
    return [
        (a, c, os.path.join(root, name)) for a, c, name in zip(combos, configs, names, strict=True)
    ]


def run_grid(
    base_config: ml_collections.ConfigDict,
    grid: Mapping[str, Sequence[Any]],
    root_workdir: str,
    *,
    train_fn: Callable[[ml_collections.ConfigDict, str], Any] | None = None,
    verbose: bool = True,
    points: Sequence[Mapping[str, Any]] | None = None,
    seeds: int | Sequence[int] | None = None,
    validate: bool = True,
    train_output: bool = False,
) -> list[dict[str, Any]]:
    """Trains every combination of `grid` into sibling workdirs; resumable.

    Run i trains `base_config` with the fields of combination i set, in
    `<root_workdir>/<run_name(combination)>`. A run whose workdir records a finished run
    of the same config (`sweep_result.json`) is skipped; any other run is handed to
    `train_fn`, which resumes from the workdir's latest checkpoint (so an interrupted
    sweep continues where it stopped, and raising `num_epochs` extends finished runs).
    `<root_workdir>/results.csv` is rewritten after every run.

    Args:
      base_config: the config every run starts from (not modified).
      grid: field path -> list of values, e.g. {"loss.name": ["scl", "hscl"],
        "loss.beta": [0.0, 10.0]}; an empty grid trains `base_config` once.
      root_workdir: parent folder of the runs' workdirs.
      train_fn: `(config, workdir) -> Any`; default `train.train_and_evaluate`.
      verbose: print "run i/N" before and one line after every run (its time and
        final loss and accuracy).
      points: explicit runs instead of (crossed with) the grid's product (`plan_grid`).
      seeds: a seed axis: every run once per seed (`with_seeds`); `aggregate` then gives
        mean ± std over seeds.
      validate: check every run's config (`validation.validate_config`) before the
        first run trains, so a bad grid value fails at once, not when its run starts.
      train_output: the trainer's own console output for every run (progress bar and
        printed summary); by default `train.train_and_evaluate` runs with
        `verbose=False`, so a sweep prints its own lines only. The files each run
        writes to its workdir are the same either way. A `train_fn` other than
        `train.train_and_evaluate` is called as `train_fn(config, workdir)`.

    Returns:
      One dict per run, in grid order: "run" (the name), "workdir", the grid fields and
      the final evaluation's metrics (keys as in `metrics.jsonl`: `eval/...`, `nc/...`,
      `train/epoch_loss`, `epoch`, ...).

    Raises:
      ValueError: a grid path that is not a field of the config, or a grid value the
        config check refuses (the message names the run and the field).

    Example:
      >>> rows = run_grid(synthetic.get_config(), {"loss.name": ["hscl", "hucl"],
      ...                 "loss.beta": [0.0, 10.0]}, "/tmp/sweep")
    """
    if train_fn is None or train_fn is train.train_and_evaluate:
        train_fn = functools.partial(train.train_and_evaluate, verbose=train_output)
    root = os.path.abspath(os.path.expanduser(root_workdir))
    plan = plan_grid(base_config, grid, root, points=points, seeds=seeds)
    if validate:
        check_plan(plan)
    return run_plan(plan, root, train_fn=train_fn, verbose=verbose)


def run_plan(
    plan: Sequence[tuple[dict[str, Any], ml_collections.ConfigDict, str]],
    root_workdir: str,
    *,
    train_fn: Callable[[ml_collections.ConfigDict, str], Any] | None = None,
    verbose: bool = True,
) -> list[dict[str, Any]]:
    """Trains a plan's runs one after another in this process (the `local` launcher).

    Finished runs are skipped, the others resume; `<root_workdir>/results.csv` is
    rewritten after every run. `run_grid` is `plan_grid`, `check_plan`, then this.

    Returns:
      One row per run (`row`), in plan order; its grid values as they were given.
    """
    root = os.path.abspath(os.path.expanduser(root_workdir))
    rows: list[dict[str, Any]] = []
    for i, (assignments, config, workdir) in enumerate(plan, 1):
        name = os.path.basename(workdir)
        record = finished_record(config, workdir)
        if record is None:
            if verbose:
                print(f"[sweep] run {i}/{len(plan)}: {name}", flush=True)
            record = train_point(assignments, config, workdir, train_fn)
            if verbose:
                print(
                    f"[sweep] run {i}/{len(plan)} done in {record['seconds']:.0f} s: {name}"
                    + result_text(record["final"]),
                    flush=True,
                )
        elif verbose:
            print(f"[sweep] run {i}/{len(plan)} finished already: {name}", flush=True)
        rows.append({"run": name, "workdir": workdir, **assignments, **record["final"]})
        write_table(rows, os.path.join(root, TABLE_FILE))
    return rows


# The final metrics a sweep's "done" line shows, where the run has them.
RESULT_KEYS = ("train/epoch_loss", "eval/test/z/ncm_acc")


def result_text(final: Mapping[str, Any]) -> str:
    """' (epoch 4, train/epoch_loss 0.5485, eval/test/z/ncm_acc 0.8672)' or ''."""
    parts = [f"epoch {final['epoch']}"] if final.get("epoch") is not None else []
    parts += [f"{k} {final[k]:.4g}" for k in RESULT_KEYS if _is_number(final.get(k))]
    return f" ({', '.join(parts)})" if parts else ""


def check_plan(
    plan: Sequence[tuple[dict[str, Any], ml_collections.ConfigDict, str]],
    *,
    num_devices: int | None = None,
) -> None:
    """Validates every planned run's config before anything trains.

    A run that warm-starts from another run of the plan (`init_from` = that run's
    workdir) is checked without the source, which does not exist before it trains.

    Args:
      plan: `plan_grid`'s runs.
      num_devices: the devices each run will have (default: this process's,
        `jax.device_count()`; a launcher whose runs get other devices passes theirs, so
        this process does not claim the GPUs its runs need).

    Raises:
      validation.ConfigError: naming the run (its `--grid` values) and the field.
    """
    from hncl_jax.train import validation

    if num_devices is None:
        num_devices = jax.device_count()
    workdirs = {os.path.abspath(w) for _, _, w in plan}
    for assignments, config, _ in plan:
        source = config.get("init_from") or ""
        if source and os.path.abspath(os.path.expanduser(source)) in workdirs:
            config = apply_assignments(config, {"init_from": ""})
        try:
            with warnings.catch_warnings():  # warned below, naming the grid point
                warnings.simplefilter("ignore", validation.IgnoredOptionWarning)
                validation.validate_config(config, num_devices=num_devices)
        except validation.ConfigError as e:
            raise validation.ConfigError(
                f"grid point {run_name(assignments)} (from --grid/--seeds): {e}"
            ) from None
        # A grid over a field the point's loss ignores (β for scl) repeats one run.
        explicit = [k.removeprefix("loss.") for k in assignments if k.startswith("loss.")]
        ignored = validation.ignored_loss_options(config, explicit)
        ignored += [f for f in validation.ignored_loss_options(config) if f not in ignored]
        if ignored:
            warnings.warn(
                f"grid point {run_name(assignments)}: "
                + validation.ignored_options_message(config, ignored),
                validation.IgnoredOptionWarning,
                stacklevel=2,
            )


def aggregate(
    rows: Sequence[Mapping[str, Any]], *, over: str = "seed", keys: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Mean and standard deviation over the `over` axis (seeds) of a sweep's rows.

    Rows that agree on every grid field except `over` form one group. Numeric metrics get
    `<key>` = the mean, `<key>_std` = the sample standard deviation (ddof = 1; 0 for a
    group of one) and the group size `n`; text fields shared by the group are kept.

    Args:
      rows: `run_grid`'s rows (or `load_table`'s).
      over: the field averaged over.
      keys: the grid fields that define a group (default: the non-metric fields, those
        without a "/" other than "run", "workdir" and `over`).

    Returns:
      One dict per group, in first-seen order, with `over` replaced by "n".
    """
    if keys is None:
        keys = []
        for r in rows:
            keys += [
                k
                for k in r
                if "/" not in k and k not in ("run", "workdir", "epoch", over) and k not in keys
            ]
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(json.dumps(_json_value(r.get(k))) for k in keys), []).append(r)
    out = []
    for members in groups.values():
        row: dict[str, Any] = {k: members[0].get(k) for k in keys}
        row["n"] = len(members)
        metrics = [k for k in members[0] if k not in keys and k not in ("run", "workdir", over)]
        for k in metrics:
            vals = [m.get(k) for m in members]
            if all(_is_number(v) for v in vals):
                arr = np.asarray(vals, np.float64)
                row[k] = float(np.mean(arr))
                row[f"{k}_std"] = float(np.std(arr, ddof=1)) if len(arr) > 1 else 0.0
        out.append(row)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)


def format_mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    """'0.912 ± 0.004' (or the mean alone when std is None); '' for a missing mean."""
    if mean is None:
        return ""
    if abs(mean) < 10 ** (-digits) and mean != 0:
        text = f"{mean:.2e}" if std is None else f"{mean:.2e} ± {std:.1e}"
        return text
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def plot_sweep(
    rows: Sequence[Mapping[str, Any]],
    field: str,
    metric: str,
    path: str,
    *,
    group_by: str | None = None,
    title: str | None = None,
) -> str:
    """`metric` against the grid `field`, with ± std error bars where rows carry
    `<metric>_std` (as `aggregate` writes); one line per value of `group_by`
    (`plots.sweep_figure`, saved as a PNG).

    Returns:
      The PNG's path.

    Raises:
      ValueError: if no row has both `field` and `metric`.
    """
    group = None
    if group_by:
        group = lambda r: f"{group_by}={format_value(r.get(group_by))}"
    fig = plots.sweep_figure(rows, field, [metric], group_by=group, title=title)
    return plots.save_figure(fig, path)


def restore_representations(
    config: ml_collections.ConfigDict, workdir: str, split: str = "train"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backbone features, embeddings and labels of a finished run's final model.

    Reads the parameters (and BatchNorm statistics) of the run's latest checkpoint,
    restored against the structure `train.create_train_state` gives the config, and
    extracts the features of one split in inference mode. Nothing is trained and nothing
    in the workdir is written (no summary, plots, metrics or checkpoint renames).

    Args:
      config: the run's config (as `plan_grid` gives it).
      workdir: the run's workdir.
      split: "train" or "test".

    Returns:
      (h (N, dh), z (N, d) normalized embeddings, labels (N,)).

    Raises:
      ValueError: a bad split; a checkpoint before the run's last step (the run is not
        finished: rerun it first); a checkpoint of another config or model.
      FileNotFoundError: the workdir holds no finalized checkpoint.
      checkpointing.CheckpointCorruptError: the latest checkpoint differs from its
        checksums.
    """
    if split not in ("train", "test"):
        raise ValueError(f"restore_representations: split={split!r} must be 'train' or 'test'.")
    directory, step = checkpointing.resolve_checkpoint_path(workdir)
    train_ds, test_ds = train.load_data(config)
    num_classes, n = train_ds.num_classes, len(train_ds.labels)
    # The trainer's batch size and epoch length (the batch is clamped to the set).
    batch_size = min(config.batch_size, n)
    batch_size -= batch_size % jax.device_count()
    steps_per_epoch = n // batch_size
    total_steps = config.num_epochs * steps_per_epoch
    if step < total_steps:
        raise ValueError(
            f"restore_representations: the latest checkpoint of {workdir} is at step {step} "
            f"of {total_steps}: the run is not finished. Finish it first (rerun run_grid or "
            "train.train_and_evaluate on the same workdir)."
        )
    saved = checkpointing.read_step_metadata(directory, step).get("config_fingerprint")
    expected = validation.config_fingerprint(config)
    if isinstance(saved, dict) and saved != expected:
        changed = sorted(k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k))
        raise ValueError(
            f"restore_representations: the checkpoint in {directory} was trained with another "
            f"config (fields {changed[:8]} differ); pass the run's own config."
        )
    model = train.create_model(config, num_classes)
    sample_x = augment.preprocess(jnp.asarray(train_ds.images[:2]))
    abstract = jax.eval_shape(
        lambda: train.create_train_state(config, model, sample_x, num_classes, steps_per_epoch)
    )
    # An explicit step directory: restored as is (read only), never a fallback step.
    variables = checkpointing.load_for_warm_start(
        os.path.join(directory, str(step)),
        {"params": abstract.params, "batch_stats": abstract.batch_stats},
    )
    if not variables["batch_stats"]:
        del variables["batch_stats"]
    features = functools.partial(train.make_features_fn(model, config.normalization), variables)
    ds = train_ds if split == "train" else test_ds
    h, z = evaluation.extract_features(features, ds.images, config.eval_batch_size)
    return h, z, np.asarray(ds.labels)


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return list(v) if isinstance(v, tuple) else v


def load_table(root_workdir: str) -> list[dict[str, Any]]:
    """The finished runs under `root_workdir` (from their `sweep_result.json`), by name."""
    root = os.path.abspath(os.path.expanduser(root_workdir))
    rows = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name, RESULT_FILE)
        if os.path.exists(path):
            with open(path) as fh:
                record = json.load(fh)
            rows.append(row(record, os.path.join(root, name)))
    return rows


def write_table(rows: Sequence[Mapping[str, Any]], path: str) -> str:
    """Writes rows as CSV (the union of their keys, first-seen order); returns the path."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, digits: int = 4
) -> str:
    """A Markdown table of `columns` (missing entries blank, floats to `digits` places,
    whole numbers as such; a column with a `<column>_std` entry, as `aggregate` writes,
    shows mean ± std, but a field that is not a metric (no "/" in its name: an epoch, a
    grid value) and is the same whole number in every seed shows alone; a metric keeps its
    ± even when every seed agrees, e.g. an accuracy of 1)."""

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float | np.floating):
            if float(v).is_integer():  # an epoch, a β of the grid: "2", "10", not "2.0000"
                return f"{float(v):g}"
            return f"{float(v):.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
        return str(v)

    def entry(r: Mapping[str, Any], c: str) -> str:
        std, value = r.get(f"{c}_std"), r.get(c)
        whole = _is_number(value) and float(value).is_integer()
        alone = whole and float(std or 0.0) == 0.0 and "/" not in c
        if std is not None and value is not None and not alone:
            return format_mean_std(float(value), float(std), digits)
        return cell(value)  # a whole number equal over the seeds (an epoch): alone

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(entry(r, c) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
