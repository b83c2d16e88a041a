"""The host loop: `train_and_evaluate(config, workdir)`, the library's one entry point.

`train_and_evaluate` is lock → validate → load → build → restore-or-init → loop →
report, with every resource of the run (checkpointer, metric writer, W&B, progress bar,
signal handlers) held by one `contextlib.ExitStack`, so every way out closes them all.
This module holds the host side: the data loading (`load_data`), the evaluation runs
(`make_features_fn`, `run_evaluation`), the loop that dispatches the jitted steps
(`step`) and logs, evaluates and checkpoints on time (`itstime`), the preemption path
(`signals`) and the report at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hncl_jax import data, evaluation, geometry
from hncl_jax.data import augment
from hncl_jax.train import checkpointing, memory, reporting, validation
from hncl_jax.train import workdir as workdir_lib
from hncl_jax.train.objectives import theorem_bound
from hncl_jax.train.signals import Preempted, catch_signals
from hncl_jax.train.state import TrainState
from hncl_jax.train.step import Built, build, epoch_permutation, put_replicated


def itstime(step: int, every: int | None, total: int | None = None, *, window: int = 1) -> bool:
    """Whether a period of `every` ends within the last `window` steps, or `step` is `total`.

    The one test of "is it time to log / evaluate / checkpoint": `every` None or 0 is
    never (except at `total`); `window` is the number of steps the last dispatch ran,
    so a period that ends inside a multi-step dispatch is not missed. Works on any
    counter (steps or epochs).
    """
    periodic = bool(every) and step % every < window
    return periodic or (total is not None and step == total)


def _subset(ds: data.Dataset, max_examples: int | None, seed: int) -> data.Dataset:
    if not max_examples or max_examples >= len(ds.labels):
        return ds
    idx = np.sort(np.random.default_rng(seed).permutation(len(ds.labels))[:max_examples])
    return data.Dataset(
        images=ds.images[idx], labels=ds.labels[idx], num_classes=ds.num_classes, name=ds.name
    )


def load_data(config: ml_collections.ConfigDict):
    """Loads the train and test splits named by the config (host numpy arrays)."""
    # None-valued options are the config's unset placeholders.
    kw = {k: v for k, v in dict(config.dataset_kwargs or {}).items() if v is not None}
    kw = {k: v for k, v in kw.items() if k not in validation.TRAINER_DATASET_KWARGS}
    data_dir = validation.optional_path(config.data_dir)
    common = dict(data_dir=data_dir, seed=config.seed, image_size=config.image_size)
    if validation.optional_path(config.get("manual_dir")):
        kw["manual_dir"] = config.manual_dir
    train_ds = data.load_dataset(config.dataset, "train", **common, **kw)
    test_ds = data.load_dataset(config.dataset, "test", **common, **kw)
    max_ex = config.dataset_kwargs.get("max_examples") if config.dataset_kwargs else None
    return _subset(train_ds, max_ex, config.seed), _subset(test_ds, max_ex, config.seed + 1)


def make_features_fn(model, normalization: str):
    """Jitted `(variables, x) -> (h, z)` in inference mode (BN uses running stats)."""

    @jax.jit
    def features(variables, x):
        h, f = model.apply(variables, augment.preprocess(x), train=False)
        return h, geometry.normalize(f, normalization)

    return features


def run_evaluation(
    config,
    state: TrainState,
    features_fn,
    train_ds,
    test_ds,
    num_classes: int,
    *,
    probe: bool,
    labelled: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray]:
    """Features of both splits, collapse metrics, NCM / kNN / optional probe.

    With `labelled` (a bool mask of the training set, semi-supervised runs) the
    train-split metrics and the classifiers' fits use the labelled examples only: the
    evaluation sees the labels the training saw (CLOP's kNN "fit on the labelled 10 %").
    """
    variables = {"params": state.params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
    fn = functools.partial(features_fn, variables)
    tr_h, tr_z = evaluation.extract_features(fn, train_ds.images, config.eval_batch_size)
    te_h, te_z = evaluation.extract_features(fn, test_ds.images, config.eval_batch_size)
    tr_y, all_z = train_ds.labels, tr_z
    if labelled is not None:
        tr_h, tr_z, tr_y = tr_h[labelled], tr_z[labelled], tr_y[labelled]
    scalars, spectra = evaluation.evaluate_representations(
        tr_h,
        tr_z,
        tr_y,
        te_h,
        te_z,
        test_ds.labels,
        num_classes,
        knn_k=tuple(config.knn_k),
        # k = 5 is a plain majority vote (CLOP); larger k the cosine-weighted vote of the
        # hard-negative literature (k = 200, τ = 0.07).
        knn_weighted=tuple(k > 5 for k in config.knn_k),
        linear_probe=probe,
        probe_kwargs={"epochs": config.probe_epochs, "seed": config.seed},
        # Papyan's NC1-NC4, RankMe, per-class values (evaluation.collapse_extras).
        extended=True,
    )
    return scalars, spectra, all_z


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, verbose: bool = True
) -> TrainState:
    """Trains and evaluates the model named by `config`; the library's one entry point.

    The run holds the workdir's exclusive lock (`hncl_jax.train.workdir.lock_workdir`) from
    start to end: a second run on the same workdir fails at once.

    Args:
      config: an `ml_collections.ConfigDict` such as `configs/default.py` returns.
      workdir: the run's folder: `checkpoints/`, `metrics.jsonl`, `tensorboard/`,
        `config.json`, `plots/*.png` and `summary.txt`. Rerunning on the same workdir
        resumes from its latest checkpoint with the same data order.
      verbose: the console output: the progress bar, the "already finished" note and
        the printed summary. False (as `sweep.run_grid` runs it) prints none of them;
        the files written to `workdir` are the same either way, and an interruption
        still prints where its checkpoint is.

    Returns:
      The final `TrainState`.

    Raises:
      ValueError: for a bad config or data (`validation.ConfigError`,
        `data.DatasetNotPreparedError`, a corrupt Tiny-ImageNet file, a warm-start
        checkpoint of other shapes), raised before anything is written to the workdir
        or compiled.
      FloatingPointError: when the loss or gradients become non-finite; the step is
        skipped and nothing already written is overwritten.
      workdir.WorkdirLockedError: another process is running on `workdir`.
      workdir.WorkdirError: (a ValueError) the workdir's outputs are damaged (a file
        where `checkpoints/` should be, metrics without the checkpoints they belong to).
      checkpointing.CheckpointDiskFullError: (an OSError) a checkpoint did not fit on
        the disk; the message names the last good checkpoint.
      SystemExit: on SIGTERM, SIGUSR2 (SLURM's time-limit warning) or Ctrl-C, once a
        checkpoint is saved (code 128 + signal).
    """
    with workdir_lib.lock_workdir(workdir) as locked:
        return _train_and_evaluate(config, locked, verbose=verbose)


@dataclasses.dataclass
class _Setup:
    """A validated run and its data: what `_prepare` found before anything was written."""

    workdir: str
    ckpt_dir: str
    num_devices: int
    is_primary: bool
    has_checkpoint: bool
    fingerprint: dict
    train_ds: data.Dataset
    test_ds: data.Dataset
    num_classes: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    visible_labels: np.ndarray
    labelled_mask: np.ndarray | None


def _prepare(config: ml_collections.ConfigDict, workdir: str) -> _Setup:
    """Every check that can fail without the model, then the data; writes nothing.

    The order: the workdir's layout, the config, the workdir's previous run, the data
    (not prepared, corrupt files), the config against the data, a fresh start over
    metrics whose checkpoints are gone.
    """
    num_devices = jax.device_count()
    ckpt_dir = os.path.join(workdir, workdir_lib.CHECKPOINTS_DIR)
    # An odd workdir (a file named checkpoints, unreadable metrics) is an error before
    # any of it is read as "absent" and the run restarts over its outputs.
    workdir_lib.check_layout(workdir)
    has_checkpoint = _has_checkpoint(ckpt_dir)
    validation.validate_config(config, num_devices=num_devices, resuming=has_checkpoint)
    memory.check_data_size(config)  # before the data is drawn or read
    fingerprint = validation.config_fingerprint(config)
    workdir_lib.check_workdir(
        workdir,
        fingerprint,
        config.allow_config_change,
        has_checkpoint=has_checkpoint,
        checkpoint_fingerprint=_checkpoint_fingerprint(ckpt_dir) if has_checkpoint else None,
    )
    train_ds, test_ds = load_data(config)
    n_train = len(train_ds.labels)
    validation.validate_against_data(
        config, train_ds.num_classes, num_examples=n_train, num_devices=num_devices
    )
    batch_size = min(config.batch_size, n_train)
    batch_size -= batch_size % num_devices
    if batch_size != config.batch_size:
        logging.info(
            "batch size %d clamped to %d (training set of %d)",
            config.batch_size,
            batch_size,
            n_train,
        )
    steps_per_epoch = n_train // batch_size
    total_steps = config.num_epochs * steps_per_epoch
    if not has_checkpoint:
        _check_fresh_start(workdir, config, steps_per_epoch, total_steps)
    visible_labels, labelled_mask = train_ds.labels.copy(), None
    if config.label_fraction < 1.0:
        labelled_mask = data.labelled_mask(n_train, config.label_fraction, config.seed)
        visible_labels = np.where(labelled_mask, visible_labels, -1).astype(np.int32)
    return _Setup(
        workdir=workdir,
        ckpt_dir=ckpt_dir,
        num_devices=num_devices,
        is_primary=jax.process_index() == 0,
        has_checkpoint=has_checkpoint,
        fingerprint=fingerprint,
        train_ds=train_ds,
        test_ds=test_ds,
        num_classes=train_ds.num_classes,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        visible_labels=visible_labels,
        labelled_mask=labelled_mask,
    )


def _check_model(config, setup: _Setup, built: Built):
    """The checks that need the model's shapes (traced only: nothing compiled).

    Returns the abstract state and the warm-start variables (None without `init_from`,
    or when the run resumes and so ignores it).
    """
    sample_x = augment.preprocess(jnp.asarray(setup.train_ds.images[:2]))
    abstract_state = jax.eval_shape(built.init_state, sample_x)
    memory.check_memory(
        config,
        batch_size=setup.batch_size,
        input_shape=setup.train_ds.images.shape[1:],
        num_params=sum(int(np.prod(p.shape)) for p in jax.tree.leaves(abstract_state.params)),
        num_devices=setup.num_devices,
    )
    warm = None
    if config.init_from and not _has_checkpoint(setup.ckpt_dir):
        # Compares every leaf's shape with the checkpoint (naming the mismatched ones)
        # before anything is written.
        try:
            warm = checkpointing.load_for_warm_start(
                config.init_from,
                {"params": abstract_state.params, "batch_stats": abstract_state.batch_stats},
            )
        except checkpointing.WarmStartMismatchError as e:  # one line; --verbose: the leaves
            raise validation.WarmStartMismatch(
                warm_start_mismatch_message(config, len(e.problems)), str(e)
            ) from e
    return sample_x, abstract_state, warm


# The config fields that decide a model's parameter shapes (C from the data set).
MODEL_FIELDS = ("model", "model_kwargs", "embed_dim", "dataset")


def warm_start_mismatch_message(config: ml_collections.ConfigDict, num_leaves: int) -> str:
    """One line: `config.init_from`'s run has another model than this run; names both.

    The source run's model fields are read from its workdir's config.json (the folder
    above its checkpoints), where there is one.
    """

    def fields(record: Any) -> str:
        return ", ".join(f"{f}={_plain(record.get(f))!r}" for f in MODEL_FIELDS)

    init_from = config.init_from
    try:
        ckpt_dir, _ = checkpointing.resolve_checkpoint_path(init_from)
        source = fields(workdir_lib.load_config_json(os.path.dirname(ckpt_dir)))
    except (OSError, ValueError):
        source = f"a model whose config is not recorded (no readable {workdir_lib.CONFIG_FILE})"
    return (
        f"config.init_from={init_from!r} holds another model ({source}) than this run "
        f"({fields(config)}): {num_leaves} parameter array(s) differ in shape or name "
        "(--verbose lists them). Warm-start from a run of the same model fields, or set "
        "them to the source run's."
    )


def _plain(value: Any) -> Any:
    """A ConfigDict field as plain data (dicts, lists), for messages."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclasses.dataclass
class _Loop:
    """What the loop carries from step to step (and a checkpoint or the report reads)."""

    state: TrainState
    step: int
    start_step: int
    # Losses of the dispatches of the current epoch so far; a checkpoint written in the
    # middle of an epoch (preemption) keeps them, so the resumed epoch mean is exact.
    epoch_loss: list
    history: list = dataclasses.field(default_factory=list)
    spectra: list = dataclasses.field(default_factory=list)
    final_scalars: dict = dataclasses.field(default_factory=dict)
    train_z: np.ndarray | None = None
    t_last: float = 0.0
    step_last: int = 0
    # A resumed run's config, recorded in config.json with its first checkpoint (`_save`):
    # an attempt that fails before it (a non-finite step) leaves the record as it was.
    config_to_record: ml_collections.ConfigDict | None = None


def _restore_or_init(config, setup: _Setup, built: Built, ckpt, sample_x, abstract, warm):
    """The latest checkpoint's state, else a fresh one (warm-started if asked).

    A checkpoint is restored straight into the replicated sharding (the target's leaves
    carry it); only a fresh state is placed afterwards.
    """

    def on_mesh(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=built.replicated)
        return leaf

    try:
        restored = ckpt.restore_latest(jax.tree.map(on_mesh, abstract))
    except checkpointing.CheckpointRestoreError as e:
        raise workdir_lib.WorkdirError(_unrestorable_message(e, setup.workdir)) from e
    epoch_loss: list = []
    if restored is not None:
        state, meta, _ = restored
        logging.info("resuming from %s at step %d", setup.ckpt_dir, int(state.step))
        epoch_loss = [jnp.asarray(v, jnp.float32) for v in meta.get("epoch_losses", [])]
    else:
        state = built.init_state(sample_x)
        if warm is not None:
            state = state.replace(params=warm["params"], batch_stats=warm["batch_stats"])
            logging.info("warm start from %s (fresh optimizer, step 0)", config.init_from)
        state = jax.device_put(state, built.replicated)
    start = int(state.step)
    return _Loop(state=state, step=start, start_step=start, epoch_loss=epoch_loss)


def _warn_lost_metrics(workdir: str, start_step: int, rows: list) -> None:
    """Warns when a resumed run's metrics.jsonl lacks the rows up to its checkpoint.

    The last step before a checkpoint is always logged, so a file that ends earlier (or
    is gone or empty) lost rows that no checkpoint holds: the curves and the evaluation
    history start over there.
    """
    last = max((r["step"] for r in rows), default=0)
    if start_step <= 0 or last >= start_step:
        return
    path = os.path.join(workdir, workdir_lib.METRICS_FILE)
    state = f"holds {len(rows)} rows up to step {last}" if rows else "is missing or empty"
    logging.warning(
        "%s %s, but the run resumes from its checkpoint at step %d: the rows of steps %d..%d "
        "(training losses, evaluations) are lost and cannot be recovered from the "
        "checkpoints; the curves and the evaluation history continue from step %d. Put the "
        "file back (and rerun) to keep them.",
        path,
        state,
        start_step,
        last + 1,
        start_step,
        start_step,
    )


def _unrestorable_message(e, workdir: str) -> str:
    """One line for a workdir none of whose checkpoints restores, with the options."""
    reasons = []
    for step, error in e.failures:
        if isinstance(error, checkpointing.CheckpointCorruptError):
            why = f"its files differ from its {checkpointing.MANIFEST_FILE}"
        else:
            first = (str(error).strip().splitlines() or [""])[0]
            why = f"{type(error).__name__}: {first[:160]}"
        reasons.append(f"step {step}: {why}")
    metrics = os.path.join(workdir, workdir_lib.METRICS_FILE)
    return (
        f"none of the {len(e.failures)} checkpoints in {e.directory} could be restored "
        f"({'; '.join(reasons)}). Nothing was changed. Put intact copies back to resume; or "
        f"start afresh with another --workdir, or here after moving {e.directory} and "
        f"{metrics} aside."
    )


def _save(loop: _Loop, ckpt, setup: _Setup, force: bool = False) -> None:
    meta = {
        "epoch": loop.step // setup.steps_per_epoch,
        "step": loop.step,
        "config_fingerprint": setup.fingerprint,
    }
    if loop.epoch_loss:  # mid-epoch (preemption): the epoch's losses so far, exact floats
        meta["epoch_losses"] = [float(v) for v in jax.device_get(loop.epoch_loss)]
    ckpt.save(loop.step, loop.state, meta, force=force)
    if loop.config_to_record is not None and ckpt.latest_step() == loop.step:
        workdir_lib.save_config_record(setup.workdir, loop.config_to_record)
        loop.config_to_record = None


def _train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, verbose: bool = True
) -> TrainState:
    """`train_and_evaluate`'s body, run while holding the workdir's lock."""
    t_start = time.perf_counter()  # the summary's wall time: data, compilation, training
    setup = _prepare(config, workdir)
    built = build(
        config,
        setup.num_classes,
        batch_size=setup.batch_size,
        steps_per_epoch=setup.steps_per_epoch,
    )
    sample_x, abstract, warm = _check_model(config, setup, built)
    data_arrays = tuple(
        put_replicated(a, built.replicated)
        for a in (setup.train_ds.images, setup.train_ds.labels, setup.visible_labels)
    )
    primary = setup.is_primary
    os.makedirs(workdir, exist_ok=True)
    with contextlib.ExitStack() as stack:
        ckpt = stack.enter_context(
            checkpointing.Checkpointer(setup.ckpt_dir, max_to_keep=config.max_checkpoints)
        )
        loop = _restore_or_init(config, setup, built, ckpt, sample_x, abstract, warm)
        writer = stack.enter_context(
            reporting.MetricWriter(workdir, enabled=primary, resume_step=loop.start_step)
        )
        finished = loop.start_step >= setup.total_steps
        if primary:
            if setup.has_checkpoint and not finished:
                loop.config_to_record = config
            else:
                workdir_lib.save_config_record(workdir, config)
            reporting.log_config_tensorboard(workdir, config, loop.start_step)
        # W&B mirrors every write_scalars call (validation checked it is importable).
        wandb_log = reporting.WandbLogger(
            workdir, config, enabled=primary and bool(config.get("wandb", False))
        )
        stack.callback(wandb_log.finish)
        rows = reporting.read_metrics(workdir)
        _warn_lost_metrics(workdir, loop.start_step, rows)
        loop.history = [r for r in rows if reporting.is_evaluation_row(r)]
        # Every evaluation's DC spectra (plotted together); those after the resumed step go.
        loop.spectra = reporting.read_spectra(workdir, max_step=loop.start_step) if primary else []
        # A finished run rerun on its workdir reports its last evaluation again.
        loop.final_scalars = dict(loop.history[-1]) if loop.history else {}
        if finished and primary and verbose:
            print(
                f"{workdir}: already finished at step {loop.start_step}/{setup.total_steps}; "
                "its last evaluation follows (another workdir or a larger num_epochs trains "
                "again).",
                flush=True,
            )
        bar = reporting.ProgressBar(
            setup.total_steps, initial=loop.start_step, enabled=primary and verbose and not finished
        )
        stack.callback(bar.close)
        caught = stack.enter_context(catch_signals(enabled=primary))
        io = _LoopIO(ckpt=ckpt, writer=writer, wandb=wandb_log, bar=bar)
        t_loop = time.perf_counter()
        try:
            _run_loop(config, setup, built, data_arrays, loop, io, caught)
        except (Preempted, KeyboardInterrupt):
            # Never checkpoint a state that went past a skipped non-finite step.
            _check_finite(loop.state, ckpt, setup.ckpt_dir)
            if ckpt.latest_step() != loop.step:
                _save(loop, ckpt, setup, force=True)
            ckpt.wait_until_finished()
            where = ckpt.step_path(loop.step)
            stack.close()  # every resource closed before the message, as on any exit
            print(
                f"interrupted at step {loop.step}/{setup.total_steps}: checkpoint saved in "
                f"{where}. Resume with the same command (same --workdir={workdir}).",
                flush=True,  # once: stdout (a logging copy printed it twice)
            )
            # The shell's convention for "killed by signal N": 130 for Ctrl-C, 143 for SIGTERM.
            raise SystemExit(128 + (caught.signal or signal.SIGINT)) from None
        ckpt.wait_until_finished()
        bar.close()
        _report(config, setup, loop, wandb_log, t_start=t_start, t_loop=t_loop, verbose=verbose)
    return loop.state


@dataclasses.dataclass(frozen=True)
class _LoopIO:
    ckpt: Any
    writer: reporting.MetricWriter
    wandb: reporting.WandbLogger
    bar: reporting.ProgressBar


def _run_loop(config, setup: _Setup, built: Built, data_arrays, loop: _Loop, io, caught):
    """Dispatches steps to the end of the run; logs, evaluates and checkpoints on time.

    Raises `Preempted` when a signal arrived (at the step reached), FloatingPointError
    at the first non-finite log, `workdir.OutputDiskFullError` (naming the last good
    checkpoint) when the metrics no longer fit on the disk.
    """
    try:
        _dispatch_to_the_end(config, setup, built, data_arrays, loop, io, caught)
    except workdir_lib.OutputDiskFullError as e:
        raise workdir_lib.OutputDiskFullError(
            errno.ENOSPC,
            f"{e}; the last good checkpoint is {io.ckpt.describe_last_good()}. Free space or "
            "move the workdir, then rerun the same command to resume from it.",
        ) from None


def _dispatch_to_the_end(config, setup: _Setup, built: Built, data_arrays, loop: _Loop, io, caught):
    """`_run_loop`'s steps: dispatch, log, evaluate and checkpoint on time, stop on a signal."""
    spe, total, dispatch = setup.steps_per_epoch, setup.total_steps, built.steps_per_dispatch
    permute = jax.jit(
        functools.partial(epoch_permutation, config.seed, n=len(setup.train_ds.labels)),
        out_shardings=built.replicated,
    )
    features_fn = make_features_fn(built.model, config.normalization)
    perm, perm_epoch = None, None
    loop.t_last, loop.step_last = time.perf_counter(), loop.step
    while loop.step < total:
        if perm_epoch != loop.step // spe:
            perm_epoch = loop.step // spe
            perm = permute(perm_epoch)
        loop.state, metrics = built.step_fn(loop.state, *data_arrays, perm)
        loop.step += dispatch
        caught.deferring = True
        loop.epoch_loss.append(metrics["loss"])
        end_of_epoch = itstime(loop.step, spe)
        if end_of_epoch or itstime(loop.step, config.log_every_steps, total, window=dispatch):
            _log_train(loop, metrics, io, setup, built)
        if end_of_epoch:
            _end_epoch(config, setup, loop, io, features_fn)
        if caught.signal is not None and loop.step < total:
            raise Preempted()


def _log_train(loop: _Loop, metrics, io: _LoopIO, setup: _Setup, built: Built) -> None:
    """The train/* row of the last dispatch (stops the run first if it went non-finite)."""
    _check_finite(loop.state, io.ckpt, setup.ckpt_dir)
    now = time.perf_counter()
    sps = (loop.step - loop.step_last) / max(now - loop.t_last, 1e-9)
    loop.t_last, loop.step_last = now, loop.step
    scalars = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
    scalars["train/steps_per_sec"] = sps
    scalars["train/learning_rate"] = float(built.learning_rate_fn(loop.step - 1))
    io.writer.write_scalars(loop.step, scalars)
    io.wandb.log(loop.step, scalars)
    io.bar.update(loop.step, scalars["train/loss"], sps)


def _end_epoch(config, setup: _Setup, loop: _Loop, io: _LoopIO, features_fn) -> None:
    """The epoch's mean loss; an evaluation and a checkpoint when their period ends."""
    epoch = loop.step // setup.steps_per_epoch
    last = loop.step == setup.total_steps
    mean_loss = float(jnp.mean(jnp.stack(loop.epoch_loss)))
    loop.epoch_loss = []
    if itstime(epoch, config.eval_every_epochs, config.num_epochs):
        probe = config.linear_probe == "periodic" or (last and config.linear_probe == "end")
        scalars, eval_spectra, loop.train_z = run_evaluation(
            config,
            loop.state,
            features_fn,
            setup.train_ds,
            setup.test_ds,
            setup.num_classes,
            probe=probe,
            labelled=setup.labelled_mask,
        )
        scalars["train/epoch_loss"] = mean_loss
        scalars["epoch"] = epoch
        bound = theorem_bound(config, setup.num_classes)
        if bound is not None:
            scalars["train/theorem_bound"] = bound
            scalars["train/loss_gap"] = mean_loss - bound
        io.writer.write_scalars(loop.step, scalars)
        io.wandb.log(loop.step, scalars)
        if setup.is_primary:
            loop.spectra.append({"step": loop.step, "epoch": epoch, "spectra": eval_spectra})
            reporting.write_spectra(setup.workdir, loop.spectra)
        loop.history.append({"step": loop.step, **scalars})
        loop.final_scalars = scalars
    if itstime(epoch, config.checkpoint_every_epochs, config.num_epochs):
        _save(loop, io.ckpt, setup, force=True)


def _report(
    config,
    setup: _Setup,
    loop: _Loop,
    wandb_log,
    *,
    t_start: float,
    t_loop: float,
    verbose: bool = True,
):
    """Plots, `summary.txt` (printed when `verbose`), TensorBoard's results and W&B's summary."""
    if not setup.is_primary:
        return
    workdir = setup.workdir
    t_end = time.perf_counter()
    embed_dim = validation.embed_dim(config, setup.num_classes)
    plot_paths: list[str] = []
    if config.plots and loop.history:
        small = embed_dim <= 3
        plot_paths = reporting.plot_all(
            workdir,
            history=reporting.read_metrics(workdir),  # every logged step, not only evaluations
            spectra=loop.spectra,
            embeddings=loop.train_z if small else None,
            labels=setup.train_ds.labels if small else None,
            title=reporting.run_title(config, workdir),
            steps_per_epoch=setup.steps_per_epoch,
        )
    trained = loop.step - loop.start_step
    facts = dict(
        config=config,
        step=loop.step,
        total_steps=setup.total_steps,
        steps_trained=trained,
        wall_time_s=t_end - t_start,
        steps_per_sec=trained / max(t_end - t_loop, 1e-9) if trained else None,
        batch_size=setup.batch_size,
    )
    text = reporting.write_summary(workdir, loop.final_scalars, **facts)
    if verbose:  # a few lines; summary.txt holds every final metric
        print(reporting.headline_text(loop.final_scalars, workdir, **facts), flush=True)
    reporting.log_results_tensorboard(
        workdir, config, loop.final_scalars, plot_paths, loop.step, summary=text
    )
    wandb_log.log_images(loop.step, plot_paths)
    wandb_log.finish(summary=loop.final_scalars)


def _has_checkpoint(ckpt_dir: str) -> bool:
    """Whether `ckpt_dir` holds a finalized checkpoint (read only; creates nothing)."""
    try:
        checkpointing.resolve_checkpoint_path(ckpt_dir)
    except FileNotFoundError:
        return False
    return True


def _checkpoint_fingerprint(ckpt_dir: str) -> dict | None:
    """The config fingerprint saved with the checkpoint a resume restores (None: none).

    Read only where the metadata file matches its checksums: a damaged record would
    be reported as a different config.
    """
    directory, _ = checkpointing.resolve_checkpoint_path(ckpt_dir)
    record = (checkpointing.latest_intact_metadata(directory) or {}).get("config_fingerprint")
    return record if isinstance(record, dict) else None


def _check_fresh_start(workdir: str, config, steps_per_epoch: int, total_steps: int) -> None:
    """Refuses a fresh start over metrics that only a lost checkpoint could have produced.

    A run killed before its first checkpoint restarts from step 0 and rewrites the
    same rows; rows beyond that first checkpoint mean the checkpoints were deleted or
    moved, and a fresh start would drop them.
    """
    every = config.checkpoint_every_epochs or config.num_epochs
    first_save = min(every * steps_per_epoch, total_steps)
    rows = reporting.read_metrics(workdir)
    last = max((r["step"] for r in rows), default=0)
    if last > first_save:
        raise workdir_lib.WorkdirError(
            f"{os.path.join(workdir, workdir_lib.METRICS_FILE)} holds {len(rows)} rows up to "
            f"step {last}, but {os.path.join(workdir, workdir_lib.CHECKPOINTS_DIR)} has no "
            f"checkpoint: its checkpoints (the first is written at step {first_save}) were "
            "lost or moved. "
            "Nothing was changed. Put them back to resume, or pass another --workdir (or move "
            f"{workdir_lib.METRICS_FILE} away) to start afresh."
        )


def _check_finite(state: TrainState, ckpt, ckpt_dir: str) -> None:
    """Stops the run if a step produced a non-finite loss or gradient.

    Names the last checkpoint as good only if its checksums were verified (written by
    this run or checked on restore): a silently damaged checkpoint is one of the causes
    of non-finite values.
    """
    bad = int(jax.device_get(state.nonfinite_step))
    if bad >= 0:
        last = ckpt.latest_step()
        if last is None:
            where = "Last good checkpoint: none (no checkpoint was written)"
        elif ckpt.is_verified(last):
            where = f"Last good checkpoint: {ckpt.step_path(last)} (checksums verified)"
        else:
            where = (
                f"Last checkpoint: {ckpt.step_path(last)}, not verified against checksums, so "
                "it may itself hold the bad values"
            )
        raise FloatingPointError(
            f"non-finite loss or gradients at step {bad}; the update was skipped and nothing "
            f"already written was overwritten. {where}. Likely causes: a learning rate too "
            "high, β too large or a temperature too small for this data, or non-finite or "
            "extreme values in the data itself. Lower the learning rate or β, raise the "
            "temperature, check the data, or use normalization='unit_ball', in a new --workdir "
            "(with --config.init_from=<that checkpoint> to start from it), or pass "
            "--config.allow_config_change=True to resume this one."
        )
