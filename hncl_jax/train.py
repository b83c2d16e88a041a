"""The trainer: `train_and_evaluate(config, workdir)` and its pure train step.

The whole dataset lives on the device (replicated over a one-axis `Mesh` named
"data"); every step is one jitted call that derives everything from (seed, step):

    step ─► epoch permutation (fold_in(seed, epoch)) ─► batch indices ─► views ─►
    model ─► normalize ─► loss (over the *global* batch) ─► grads ─► optax ─► state

so a resumed run replays exactly the same batches, and no host round-trip happens
inside an epoch (metrics are read back only every `log_every_steps`). The batch is
sharded on "data" with `with_sharding_constraint`; XLA inserts the collectives, and
the negatives of the loss come from every device. The state is one pytree, a flax
`TrainState` subclass (linen with `batch_stats`), because Orbax saves and restores it
as is and `jax.eval_shape` gives the abstract target for free.

Only this module (and `main`) reads a config; the floors below take arrays.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hncl_jax import (
    baselines,
    checkpointing,
    data,
    evaluation,
    geometry,
    hardening,
    losses,
    models,
    reporting,
    validation,
)
from hncl_jax import workdir as workdir_lib
from hncl_jax.data import augment

Array = jax.Array
PyTree = Any


class TrainState(train_state.TrainState):
    """Parameters, optimizer state and everything else a step updates.

    Attributes:
      batch_stats: BatchNorm running statistics (empty dict for models without BN).
      prototypes: CLOP's fixed prototypes (C, d); an unused (1, d) zero array when CLOP
        is off.
        Saved with the checkpoint so a resumed run pulls to the same targets.
      nonfinite_step: the first step whose loss or gradients were not finite (-1 if
        none). Such a step leaves the state unchanged; the host stops the run.
    """

    batch_stats: PyTree = None
    prototypes: Array | None = None
    nonfinite_step: Array | None = None


# --------------------------------------------------------------------------- optimizer
def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int):
    """Builds the optax optimizer and learning-rate schedule from `config.optimizer`."""
    oc = config.optimizer
    lr = oc.learning_rate
    if oc.scale_lr_by_batch:
        lr = lr * config.batch_size / 256.0
    total = max(config.num_epochs * steps_per_epoch, 1)
    warmup = int(oc.warmup_epochs * steps_per_epoch)
    if oc.schedule == "constant":
        schedule = optax.constant_schedule(lr)
    elif oc.schedule == "cosine":
        schedule = optax.cosine_decay_schedule(lr, total)
    else:  # warmup_cosine
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, lr, max(warmup, 1), max(total, warmup + 1)
        )
    if oc.name == "adam":
        tx = optax.adam(schedule)
    elif oc.name == "adamw":
        tx = optax.adamw(schedule, weight_decay=oc.weight_decay)
    elif oc.name == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(oc.weight_decay),
            optax.sgd(schedule, momentum=oc.momentum),
        )
    else:  # lars
        tx = optax.lars(schedule, weight_decay=oc.weight_decay, momentum=oc.momentum)
    return tx, schedule


# --------------------------------------------------------------------------- objective
def make_objective(config: ml_collections.ConfigDict, num_classes: int) -> Callable:
    """Returns `objective(z, f, labels, positive_ids, visible_labels, key, prototypes)`.

    `z` are the normalized embeddings, `f` the raw ones (VICReg and Barlow Twins work
    on raw embeddings), `labels` the class labels (latent in unsupervised settings),
    `positive_ids` decide positives, `visible_labels` are the labels with -1 where the
    label is hidden (semi-supervised CLOP). Returns (loss, aux dict of scalars).

    With a β schedule (`config.loss.beta_schedule` other than "constant") the objective
    also takes `step=` (the traced step: β changes without recompiling) and has the
    attribute `takes_step = True`, which `train_step` reads; aux then holds "beta".
    With `config.loss.diagnostics` the hard-negative losses add the "hn_*" diagnostics
    of `losses.contrastive_loss` (no gradient; the loss is unchanged).
    """
    lc = config.loss
    name = lc.name
    self_positive = config.positives == "labels"
    clop_weight = float(config.clop.weight)
    opt = functools.partial(validation.loss_option, config)
    schedule = opt("beta_schedule")
    diagnostics = opt("diagnostics")
    hn_kw = {
        "temperature": opt("hn_temperature"),
        "reduction": opt("reduction"),
        "grad_through_weights": opt("grad_through_weights"),
    }

    def beta_at(step):
        return hardening.beta_schedule(
            step,
            schedule,
            beta=lc.beta,
            beta_start=opt("beta_start"),
            num_steps=opt("beta_schedule_steps"),
        )

    def split_aux(extra):
        # Diagnostics are logged as train/hn_*, the counts as train/loss_*.
        return {
            (f"hn_{k[4:]}" if k.startswith("neg_") else f"loss_{k}"): v for k, v in extra.items()
        }

    def objective(z, f, labels, positive_ids, visible_labels, key, prototypes, step=None):
        aux = {}
        beta = lc.beta if schedule == "constant" else beta_at(step)
        if schedule != "constant":
            aux["beta"] = beta
        if name in losses.SETTINGS:
            eta_fn = None
            if opt("eta"):
                eta_fn = hardening.make_eta(
                    opt("eta"), beta=beta, epsilon=lc.epsilon, threshold=opt("eta_threshold")
                )
            loss, extra = losses.contrastive_loss(
                z,
                labels,
                key,
                setting=name,
                psi=lc.psi,
                alpha=lc.alpha,
                hardening=lc.hardening,
                beta=beta,
                epsilon=lc.epsilon,
                k=lc.k,
                estimator=lc.estimator,
                draw=lc.draw,
                positive_ids=positive_ids,
                self_positive=self_positive,
                exclude_anchor=lc.exclude_anchor,
                tau_plus=opt("tau_plus"),
                eta_fn=eta_fn,
                num_proposals=opt("num_proposals"),
                return_aux=True,
                return_diagnostics=diagnostics,
                **hn_kw,
            )
            aux.update(split_aux(extra))
        elif name == "simclr_form":
            out = losses.simclr_form_loss(
                z,
                positive_ids,
                key,
                beta=beta,
                hardening=lc.hardening,
                epsilon=lc.epsilon,
                labels=labels if opt("supervised_negatives") else None,
                q=opt("simclr_q"),
                return_diagnostics=diagnostics,
                **hn_kw,
            )
            loss = out[0] if diagnostics else out
            if diagnostics:
                aux.update({k: v for k, v in split_aux(out[1]).items() if k.startswith("hn_")})
        else:
            emb = f if name in ("vicreg", "barlow_twins") else z
            kw = {
                "vicreg": {
                    "sim_weight": opt("vicreg_sim_weight"),
                    "var_weight": opt("vicreg_var_weight"),
                    "cov_weight": opt("vicreg_cov_weight"),
                },
                "barlow_twins": {"off_diagonal_weight": opt("barlow_off_diagonal_weight")},
                "dclw": {"temperature": lc.temperature, "sigma": opt("sigma")},
                "supcon": {
                    "temperature": lc.temperature,
                    "contrast_mode": opt("contrast_mode"),
                    "num_views": 2 if config.positives == "views" else 1,
                },
            }.get(name, {"temperature": lc.temperature})
            loss = baselines.baseline_loss(name, emb, labels, positive_ids, **kw)
        aux["contrastive_loss"] = loss
        if clop_weight > 0:
            clop = baselines.clop_loss(z, visible_labels, prototypes, weight=clop_weight)
            aux["clop_loss"] = clop
            loss = loss + clop
        return loss, aux

    objective.takes_step = schedule != "constant"
    return objective


def theorem_bound(config: ml_collections.ConfigDict, num_classes: int) -> float | None:
    """The Theorem 2/3 minimum the training loss is compared with, where it applies.

    The theorems hold for label positives, the HN settings with a ψ of Definition 1,
    embeddings in the unit ball (the sphere is inside it) and no CLOP term.
    """
    lc = config.loss
    if (
        lc.name not in losses.SETTINGS
        or config.positives != "labels"
        or config.normalization == "none"
        or config.clop.weight > 0
        # A temperature rescales ψ's arguments and τ⁺ debiasing changes the loss: the
        # Theorem 2/3 values are not their minima.
        or validation.loss_option(config, "hn_temperature") != 1.0
        or validation.loss_option(config, "tau_plus") > 0
    ):
        return None
    if lc.name in ("scl", "hscl"):
        return geometry.scl_lower_bound(num_classes, lc.k, psi=lc.psi, alpha=lc.alpha)
    if lc.estimator == "reweighted":
        return geometry.ucl_reweighted_limit(num_classes)
    return geometry.ucl_lower_bound(num_classes, lc.k, psi=lc.psi, alpha=lc.alpha)


# --------------------------------------------------------------------------- step
def make_batch(
    step: Array,
    images: Array,
    labels: Array,
    visible: Array,
    key: Array,
    *,
    batch_size: int,
    steps_per_epoch: int,
    positives: str,
    views: str,
    view_kwargs: dict,
    perm: Array | None = None,
    augment_labelled: bool = False,
):
    """Selects the step's batch from the device-resident data and forms its positives.

    `perm` is the epoch's permutation of the training set (`epoch_permutation`); the
    trainer computes it once per epoch and passes it in, because drawing a permutation
    of N = 60,000 inside every step costs as much as a small model's step. Without it
    the permutation is drawn here (the same one).

    Returns (x, labels, positive_ids, visible_labels); with views the batch holds the
    2B views `concat(view1, view2)` and `positive_ids = concat(arange(B), arange(B))`;
    with label positives and `augment_labelled`, x is one view of each example.
    """
    n = labels.shape[0]
    if perm is None:
        perm = _permutation(key, step // steps_per_epoch, n)
    idx = jax.lax.dynamic_slice_in_dim(perm, (step % steps_per_epoch) * batch_size, batch_size)
    x = augment.preprocess(images[idx])
    y = labels[idx]
    vis = visible[idx]
    view_key = jax.random.fold_in(jax.random.fold_in(key, 1 << 20), step)
    if positives == "views":
        x = augment.make_views(view_key, x, views, **view_kwargs)
        ids = jnp.tile(jnp.arange(batch_size), 2)
        return x, jnp.tile(y, 2), ids, jnp.tile(vis, 2)
    if augment_labelled:
        x = augment.augment(view_key, x, views, **view_kwargs)
    return x, y, y, vis


def _permutation(data_key: Array, epoch: Array | int, n: int) -> Array:
    return jax.random.permutation(jax.random.fold_in(data_key, epoch), n)


def epoch_permutation(seed: int, epoch: int, n: int) -> Array:
    """The order in which epoch `epoch` of a run with `seed` visits its n examples."""
    return _permutation(jax.random.fold_in(jax.random.key(seed), 0), epoch, n)


def train_step(
    state: TrainState,
    images: Array,
    labels: Array,
    visible: Array,
    perm: Array | None = None,
    *,
    seed: int,
    objective: Callable,
    normalization: str,
    batch_fn: Callable,
    batch_sharding: NamedSharding | None,
):
    """One optimisation step; pure. Returns (new_state, metrics).

    `perm` is the current epoch's `epoch_permutation` (None: drawn inside the step).
    """
    base = jax.random.key(seed)
    data_key = jax.random.fold_in(base, 0)
    loss_key = jax.random.fold_in(jax.random.fold_in(base, 1), state.step)
    batch_kw = {} if perm is None else {"perm": perm}
    x, y, ids, vis = batch_fn(state.step, images, labels, visible, data_key, **batch_kw)
    if batch_sharding is not None:
        x, y, ids, vis = (
            jax.lax.with_sharding_constraint(a, batch_sharding) for a in (x, y, ids, vis)
        )

    def loss_fn(params):
        variables = {"params": params}
        has_bn = bool(state.batch_stats)
        if has_bn:
            variables["batch_stats"] = state.batch_stats
            (h, f), updates = state.apply_fn(variables, x, train=True, mutable=["batch_stats"])
            new_bs = updates["batch_stats"]
        else:
            h, f = state.apply_fn(variables, x, train=True)
            new_bs = state.batch_stats
        z = geometry.normalize(f, normalization)
        # A β schedule reads the step (see make_objective); other objectives do not.
        step_kw = {"step": state.step} if getattr(objective, "takes_step", False) else {}
        loss, aux = objective(z, f, y, ids, vis, loss_key, state.prototypes, **step_kw)
        aux["embedding_norm"] = jnp.mean(jnp.linalg.norm(f, axis=-1))
        return loss, (aux, new_bs)

    (loss, (aux, new_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new_state = state.apply_gradients(grads=grads, batch_stats=new_bs)
    # A non-finite step leaves the state as it was (so the last good state is what a
    # checkpoint holds) and records its step for the host to report.
    new_state = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new_state, state)
    new_state = new_state.replace(
        step=state.step + 1,
        nonfinite_step=jnp.where(
            (state.nonfinite_step < 0) & ~finite, state.step, state.nonfinite_step
        ),
    )
    metrics = {"loss": loss, "grad_norm": grad_norm, **aux}
    return new_state, metrics


def make_step_fn(
    config: ml_collections.ConfigDict,
    num_classes: int,
    *,
    batch_fn: Callable,
    batch_sharding: NamedSharding | None,
    replicated: NamedSharding | None,
    steps_per_dispatch: int = 1,
    objective: Callable | None = None,
):
    """Jits `train_step` (state donated); `steps_per_dispatch` > 1 scans several steps.

    Several steps per dispatch remove the host's per-step dispatch cost for small
    models; the returned metrics are then means over the scanned steps. `objective`
    replaces the config's loss (the benchmark uses it to separate the loss's cost).
    """
    step = functools.partial(
        train_step,
        seed=config.seed,
        objective=objective or make_objective(config, num_classes),
        normalization=config.normalization,
        batch_fn=batch_fn,
        batch_sharding=batch_sharding,
    )
    fn = step
    if steps_per_dispatch > 1:

        def fn(state, images, labels, visible, perm=None):
            def body(s, _):
                return step(s, images, labels, visible, perm)

            state, ms = jax.lax.scan(body, state, None, length=steps_per_dispatch)
            return state, jax.tree.map(lambda a: jnp.mean(a, axis=0), ms)

    kw = {} if replicated is None else {"out_shardings": (replicated, replicated)}
    return jax.jit(fn, donate_argnums=0, **kw)


def view_options(config: ml_collections.ConfigDict) -> dict:
    """The keyword options of the config's view kind (`noise_std` for noise views)."""
    kw = {"std": config.noise_std} if config.views == "noise" else {}
    kw.update(dict(config.get("view_kwargs") or {}))
    for key in ("crop_scale",):  # ConfigDict gives lists back from the command line
        if key in kw:
            kw[key] = tuple(kw[key])
    return kw


def _steps_per_dispatch(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    """The configured steps per dispatch, reduced to a divisor of the epoch length."""
    n = max(int(config.get("steps_per_dispatch", 1) or 1), 1)
    while steps_per_epoch % n:
        n -= 1
    return n


# --------------------------------------------------------------------------- setup
def _embed_dim(config, num_classes: int) -> int:
    return num_classes - 1 if config.embed_dim in (-1, None) else int(config.embed_dim)


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


def create_train_state(config, model, sample_x, num_classes, steps_per_epoch) -> TrainState:
    """Initialises parameters, optimizer and CLOP prototypes from the config's seed."""
    base = jax.random.key(config.seed)
    variables = model.init(jax.random.fold_in(base, 2), sample_x, train=False)
    tx, _ = make_optimizer(config, steps_per_epoch)
    d = _embed_dim(config, num_classes)
    if config.clop.weight > 0:
        if config.clop.prototypes == "simplex":
            protos = baselines.simplex_prototypes(num_classes, d)
        else:
            protos = baselines.orthonormal_prototypes(jax.random.fold_in(base, 3), num_classes, d)
    else:
        protos = jnp.zeros((1, d), jnp.float32)  # unused; Orbax cannot save empty arrays
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        tx=tx,
        batch_stats=variables.get("batch_stats", {}),
        prototypes=jnp.asarray(protos, jnp.float32),
        nonfinite_step=jnp.asarray(-1, jnp.int32),
    )


def _config_fingerprint(config: ml_collections.ConfigDict) -> dict:
    """The fields that define a run (everything but run-length and logging knobs)."""
    return validation.fingerprint_of(json.loads(config.to_json_best_effort()))


# --------------------------------------------------------------------------- evaluation
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


# --------------------------------------------------------------------------- main loop
class _Preempted(Exception):
    pass


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains and evaluates the model named by `config`; the library's one entry point.

    The run holds the workdir's exclusive lock (`hncl_jax.workdir.lock_workdir`) from
    start to end: a second run on the same workdir fails at once.

    Args:
      config: an `ml_collections.ConfigDict` such as `configs/default.py` returns.
      workdir: the run's folder: `checkpoints/`, `metrics.jsonl`, `tensorboard/`,
        `config.json`, `plots/*.png` and `summary.txt`. Rerunning on the same workdir
        resumes from its latest checkpoint with the same data order.

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
      SystemExit: on SIGTERM or Ctrl-C, once a checkpoint is saved (code 128 + signal).
    """
    with workdir_lib.lock_workdir(workdir) as locked:
        return _train_and_evaluate(config, locked)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """`train_and_evaluate`'s body, run while holding the workdir's lock."""
    t_start = time.perf_counter()  # the summary's wall time: data, compilation, training
    num_devices = jax.device_count()
    # Every check that can fail runs before anything is written to the workdir or
    # compiled: the config, the workdir's previous run, the data (not prepared, corrupt
    # files), the config against the data, and the warm-start checkpoint's shapes.
    ckpt_dir = os.path.join(workdir, "checkpoints")
    # An odd workdir (a file named checkpoints, unreadable metrics) is an error before
    # any of it is read as "absent" and the run restarts over its outputs.
    workdir_lib.check_layout(workdir)
    has_checkpoint = _has_checkpoint(ckpt_dir)
    validation.validate_config(config, num_devices=num_devices, resuming=has_checkpoint)
    is_primary = jax.process_index() == 0
    fingerprint = _config_fingerprint(config)
    validation.check_workdir(
        workdir,
        fingerprint,
        config.allow_config_change,
        has_checkpoint=has_checkpoint,
        checkpoint_fingerprint=_checkpoint_fingerprint(ckpt_dir) if has_checkpoint else None,
    )

    train_ds, test_ds = load_data(config)
    num_classes = train_ds.num_classes
    n_train = len(train_ds.labels)
    validation.validate_against_data(
        config, num_classes, num_examples=n_train, num_devices=num_devices
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
    embed_dim = _embed_dim(config, num_classes)

    model = models.create_model(
        config.model,
        embed_dim=embed_dim,
        dtype=jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32,
        **dict(config.model_kwargs),
    )
    mesh = jax.make_mesh((num_devices,), ("data",))
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P("data")) if num_devices > 1 else None

    visible_labels = train_ds.labels.copy()
    labelled_mask = None
    if config.label_fraction < 1.0:
        labelled_mask = data.labelled_mask(n_train, config.label_fraction, config.seed)
        visible_labels = np.where(labelled_mask, visible_labels, -1).astype(np.int32)

    def init_state():
        sample_x = augment.preprocess(jnp.asarray(train_ds.images[:2]))
        return create_train_state(config, model, sample_x, num_classes, steps_per_epoch)

    abstract_state = jax.eval_shape(init_state)  # traced only: no compilation, no arrays
    validation.check_memory(
        config,
        batch_size=batch_size,
        input_shape=train_ds.images.shape[1:],
        num_params=sum(int(np.prod(p.shape)) for p in jax.tree.leaves(abstract_state.params)),
        num_devices=num_devices,
    )
    warm = None
    if config.init_from and not _has_checkpoint(ckpt_dir):
        # Compares every leaf's shape with the checkpoint (naming the mismatched ones)
        # before anything is written; a resumed run ignores init_from.
        warm = checkpointing.load_for_warm_start(
            config.init_from,
            {"params": abstract_state.params, "batch_stats": abstract_state.batch_stats},
        )

    def put(a):
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, replicated, lambda i: a[i])

    images, labels, visible = put(train_ds.images), put(train_ds.labels), put(visible_labels)
    os.makedirs(workdir, exist_ok=True)
    ckpt = checkpointing.Checkpointer(ckpt_dir, max_to_keep=config.max_checkpoints)
    restored = ckpt.restore_latest(abstract_state)
    # Losses of the dispatches of the current epoch so far; a checkpoint written in the
    # middle of an epoch (preemption) keeps them, so the resumed epoch mean is exact.
    epoch_loss: list[Array] = []
    if restored is not None:
        state, meta, start_step = restored
        logging.info("resuming from %s at step %d", ckpt_dir, start_step)
        start_step = int(state.step)
        epoch_loss = [jnp.asarray(v, jnp.float32) for v in meta.get("epoch_losses", [])]
    else:
        start_step = 0
        state = init_state()
        if warm is not None:
            state = state.replace(params=warm["params"], batch_stats=warm["batch_stats"])
            logging.info("warm start from %s (fresh optimizer, step 0)", config.init_from)
    state = jax.device_put(state, replicated)

    view_kwargs = view_options(config)
    batch_fn = functools.partial(
        make_batch,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        positives=config.positives,
        views=config.views,
        view_kwargs=view_kwargs,
        augment_labelled=bool(config.get("augment", False)),
    )
    dispatch = _steps_per_dispatch(config, steps_per_epoch)
    step_fn = make_step_fn(
        config,
        num_classes,
        batch_fn=batch_fn,
        batch_sharding=batch_sharding,
        replicated=replicated,
        steps_per_dispatch=dispatch,
    )
    features_fn = make_features_fn(model, config.normalization)
    bound = theorem_bound(config, num_classes)

    writer = reporting.MetricWriter(workdir, enabled=is_primary, resume_step=start_step)
    if is_primary:
        reporting.save_config(json.loads(config.to_json_best_effort()), workdir)
        validation.save_fingerprint(workdir, _config_fingerprint(config))
        reporting.log_config_tensorboard(workdir, config, start_step)
    # W&B mirrors every write_scalars call below (validation checked it is importable).
    wandb_log = reporting.WandbLogger(
        workdir, config, enabled=is_primary and bool(config.get("wandb", False))
    )
    _, schedule = make_optimizer(config, steps_per_epoch)

    history: list[dict] = [r for r in reporting.read_metrics(workdir) if "nc/train/z/zero_sum" in r]
    # Every evaluation's DC spectra (plotted together); those after the resumed step go.
    spectra = reporting.read_spectra(workdir, max_step=start_step) if is_primary else []
    # A finished run rerun on its workdir reports its last evaluation again.
    final_scalars: dict[str, float] = dict(history[-1]) if history else {}
    train_z = None

    def save(step: int, force: bool = False):
        meta = {"epoch": step // steps_per_epoch, "step": step, "config_fingerprint": fingerprint}
        if epoch_loss:  # mid-epoch (preemption): the epoch's losses so far, exact floats
            meta["epoch_losses"] = [float(v) for v in jax.device_get(epoch_loss)]
        ckpt.save(step, state, meta, force=force)

    preempted = {"signal": None}

    def on_signal(signum, _frame):
        preempted["signal"] = signum

    old_handlers = {}
    if is_primary:
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                old_handlers[s] = signal.signal(s, on_signal)
            except ValueError:  # not in the main thread (e.g. some notebook runners)
                pass

    permute = jax.jit(
        functools.partial(epoch_permutation, config.seed, n=n_train), out_shardings=replicated
    )
    finished = start_step >= total_steps
    if finished and is_primary:
        print(
            f"{workdir}: already finished at step {start_step}/{total_steps}; its last "
            "evaluation follows (another workdir or a larger num_epochs trains again).",
            flush=True,
        )
    bar = reporting.ProgressBar(
        total_steps, initial=start_step, enabled=is_primary and not finished
    )
    step = start_step
    perm, perm_epoch = None, None
    t_last, step_last = time.perf_counter(), step
    t_loop = t_last
    try:
        while step < total_steps:
            if perm_epoch != step // steps_per_epoch:
                perm_epoch = step // steps_per_epoch
                perm = permute(perm_epoch)
            state, metrics = step_fn(state, images, labels, visible, perm)
            step += dispatch
            epoch_loss.append(metrics["loss"])
            end_of_epoch = step % steps_per_epoch == 0
            crossed_log = step % config.log_every_steps < dispatch
            if crossed_log or end_of_epoch or step == total_steps:
                _check_finite(state, ckpt, ckpt_dir)
                now = time.perf_counter()
                sps = (step - step_last) / max(now - t_last, 1e-9)
                t_last, step_last = now, step
                scalars = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
                scalars["train/steps_per_sec"] = sps
                scalars["train/learning_rate"] = float(schedule(step - 1))
                writer.write_scalars(step, scalars)
                wandb_log.log(step, scalars)
                bar.update(step, scalars["train/loss"], sps)
            if end_of_epoch:
                epoch = step // steps_per_epoch
                last = step == total_steps
                mean_loss = float(jnp.mean(jnp.stack(epoch_loss)))
                epoch_loss = []
                periodic_eval = config.eval_every_epochs and epoch % config.eval_every_epochs == 0
                if periodic_eval or last:
                    probe = config.linear_probe == "periodic" or (
                        last and config.linear_probe == "end"
                    )
                    scalars, eval_spectra, train_z = run_evaluation(
                        config,
                        state,
                        features_fn,
                        train_ds,
                        test_ds,
                        num_classes,
                        probe=probe,
                        labelled=labelled_mask,
                    )
                    scalars["train/epoch_loss"] = mean_loss
                    scalars["epoch"] = epoch
                    if bound is not None:
                        scalars["train/theorem_bound"] = bound
                        scalars["train/loss_gap"] = mean_loss - bound
                    writer.write_scalars(step, scalars)
                    wandb_log.log(step, scalars)
                    if is_primary:
                        spectra.append({"step": step, "epoch": epoch, "spectra": eval_spectra})
                        reporting.write_spectra(workdir, spectra)
                    history.append({"step": step, **scalars})
                    final_scalars = scalars
                periodic_ckpt = (
                    config.checkpoint_every_epochs and epoch % config.checkpoint_every_epochs == 0
                )
                if periodic_ckpt or last:
                    save(step, force=True)
            if preempted["signal"] is not None and step < total_steps:
                raise _Preempted()
    except (_Preempted, KeyboardInterrupt):
        try:
            # Never checkpoint a state that went past a skipped non-finite step.
            _check_finite(state, ckpt, ckpt_dir)
            if ckpt.latest_step() != step:
                save(step, force=True)
            ckpt.wait_until_finished()
        finally:
            writer.close()
            wandb_log.finish()
            bar.close()
        msg = (
            f"interrupted at step {step}/{total_steps}: checkpoint saved in "
            f"{ckpt.step_path(step)}. Resume with the same command (same --workdir={workdir})."
        )
        print(msg, flush=True)  # once: stdout (a logging copy printed it twice)
        # The shell's convention for "killed by signal N": 130 for Ctrl-C, 143 for SIGTERM.
        raise SystemExit(128 + (preempted["signal"] or signal.SIGINT)) from None
    except (FloatingPointError, checkpointing.CheckpointDiskFullError):
        writer.close()
        wandb_log.finish()
        bar.close()
        ckpt.close()
        raise
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)

    ckpt.wait_until_finished()
    bar.close()
    t_end = time.perf_counter()
    plot_paths: list[str] = []
    if is_primary and config.plots and history:
        plot_paths = reporting.plot_all(
            workdir,
            history=reporting.read_metrics(workdir),  # every logged step, not only evaluations
            spectra=spectra,
            embeddings=train_z if embed_dim <= 3 else None,
            labels=train_ds.labels if embed_dim <= 3 else None,
            title=reporting.run_title(config, workdir),
            steps_per_epoch=steps_per_epoch,
        )
    if is_primary:
        trained = step - start_step
        text = reporting.summary_text(
            final_scalars,
            workdir,
            config=config,
            step=step,
            total_steps=total_steps,
            steps_trained=trained,
            wall_time_s=t_end - t_start,
            steps_per_sec=trained / max(t_end - t_loop, 1e-9) if trained else None,
        )
        with open(os.path.join(workdir, "summary.txt"), "w") as fh:
            fh.write(text + "\n")
        print(text, flush=True)
        reporting.log_results_tensorboard(
            workdir, config, final_scalars, plot_paths, step, summary=text
        )
        wandb_log.log_images(step, plot_paths)
        wandb_log.finish(summary=final_scalars)
    writer.close()
    ckpt.close()
    return state


def _has_checkpoint(ckpt_dir: str) -> bool:
    """Whether `ckpt_dir` holds a finalized checkpoint (read only; creates nothing)."""
    try:
        checkpointing.resolve_checkpoint_path(ckpt_dir)
    except FileNotFoundError:
        return False
    return True


def _checkpoint_fingerprint(ckpt_dir: str) -> dict | None:
    """The config fingerprint saved with the latest checkpoint (None: older checkpoints)."""
    directory, step = checkpointing.resolve_checkpoint_path(ckpt_dir)
    record = checkpointing.read_step_metadata(directory, step).get("config_fingerprint")
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
            f"{os.path.join(workdir, reporting.METRICS_FILE)} holds {len(rows)} rows up to step "
            f"{last}, but {os.path.join(workdir, 'checkpoints')} has no checkpoint: its "
            f"checkpoints (the first is written at step {first_save}) were lost or moved. "
            "Nothing was changed. Put them back to resume, or pass another --workdir (or move "
            "metrics.jsonl away) to start afresh."
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
