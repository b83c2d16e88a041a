"""The trainer: `train_and_evaluate(config, workdir)`, its factories and its pure step.

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

Every caller (the trainer, the sweep, the benchmark, the tests) wires a step through
the same factories: `create_model`, `create_learning_rate_fn`, `make_optimizer`,
`create_train_state`, `make_batch_fn`, `make_step_fn`, or all of them at once
through `build`. `train_and_evaluate` is validate → load → build → restore-or-init →
loop, with every resource of the run (checkpointer, metric writer, W&B, progress bar,
signal handlers) held by one `contextlib.ExitStack`, so every way out closes them all.

Only this module (and `main`) reads a config; the floors below take arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from hncl_jax import baselines, data, evaluation, geometry, hardening, losses, models
from hncl_jax.data import augment
from hncl_jax.train import checkpointing, memory, reporting, validation
from hncl_jax.train import workdir as workdir_lib
from hncl_jax.train.tables import OPTIMIZERS, SCHEDULES

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


# --------------------------------------------------------------------------- keys
# Every random key of a run is `fold_in(key(config.seed), KEY_STREAMS[name])`, further
# folded with an index where the stream is per epoch or per step:
#   data:       the epoch permutation fold_in(data, epoch); the views
#               fold_in(fold_in(data, VIEW_STREAM), step) (see `view_key`);
#   loss:       fold_in(loss, step), the negatives the loss samples;
#   init:       the model's parameters;
#   prototypes: CLOP's orthonormal prototypes.
# The host-side NumPy draws take the seed itself: the labelled subset
# (`data.labelled_mask(n, fraction, seed)`), the `max_examples` subsets (seed for
# train, seed + 1 for test) and the linear probe (seed).
KEY_STREAMS = {"data": 0, "loss": 1, "init": 2, "prototypes": 3}
VIEW_STREAM = 1 << 20  # folded into the data key: views never reuse a permutation key


def rng_key(seed: int, stream: str, index: Array | int | None = None) -> Array:
    """The key of `stream` (a `KEY_STREAMS` name) of a run, folded with `index` if given."""
    key = jax.random.fold_in(jax.random.key(seed), KEY_STREAMS[stream])
    return key if index is None else jax.random.fold_in(key, index)


def view_key(data_key: Array, step: Array | int) -> Array:
    """The key of the views (or augmentation) of `step`, from the run's data key."""
    return jax.random.fold_in(jax.random.fold_in(data_key, VIEW_STREAM), step)


def itstime(step: int, every: int | None, total: int | None = None, *, window: int = 1) -> bool:
    """Whether a period of `every` ends within the last `window` steps, or `step` is `total`.

    The one test of "is it time to log / evaluate / checkpoint": `every` None or 0 is
    never (except at `total`); `window` is the number of steps the last dispatch ran,
    so a period that ends inside a multi-step dispatch is not missed. Works on any
    counter (steps or epochs).
    """
    periodic = bool(every) and step % every < window
    return periodic or (total is not None and step == total)


# --------------------------------------------------------------------------- optimizer
def _lookup(table: dict, field: str, name: str):
    if name not in table:
        raise ValueError(
            f"config.{field}={name!r} is not one of {', '.join(map(repr, table))}; set "
            f"--config.{field}=<one of these>."
        )
    return table[name]


def create_learning_rate_fn(config: ml_collections.ConfigDict, steps_per_epoch: int):
    """The learning-rate schedule of `config.optimizer` (a function of the step)."""
    oc = config.optimizer
    lr = oc.learning_rate
    if oc.scale_lr_by_batch:
        lr = lr * config.batch_size / 256.0
    total = max(config.num_epochs * steps_per_epoch, 1)
    warmup = int(oc.warmup_epochs * steps_per_epoch)
    return _lookup(SCHEDULES, "optimizer.schedule", oc.schedule)(lr, total, warmup)


def make_optimizer(
    config: ml_collections.ConfigDict,
    steps_per_epoch: int,
    *,
    learning_rate_fn: optax.Schedule | None = None,
):
    """The optax optimizer of `config.optimizer` and its schedule: (tx, schedule).

    `learning_rate_fn` is the schedule to drive it with (default:
    `create_learning_rate_fn(config, steps_per_epoch)`).
    """
    schedule = learning_rate_fn or create_learning_rate_fn(config, steps_per_epoch)
    factory = _lookup(OPTIMIZERS, "optimizer.name", config.optimizer.name)
    return factory(schedule, config.optimizer), schedule


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

    baseline_kw = _baseline_kwargs(config)

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
            loss, extra = losses.contrastive_loss_with_aux(
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
                diagnostics=diagnostics,
                **hn_kw,
            )
            aux.update(split_aux(extra))
        elif name == "simclr_form":
            loss, extra = losses.simclr_form_loss_with_aux(
                z,
                positive_ids,
                key,
                beta=beta,
                hardening=lc.hardening,
                epsilon=lc.epsilon,
                labels=labels if opt("supervised_negatives") else None,
                q=opt("simclr_q"),
                diagnostics=diagnostics,
                **hn_kw,
            )
            if diagnostics:
                aux.update({k: v for k, v in split_aux(extra).items() if k.startswith("hn_")})
        else:
            emb = f if name in ("vicreg", "barlow_twins") else z
            loss = baselines.baseline_loss(name, emb, labels, positive_ids, **baseline_kw)
        aux["contrastive_loss"] = loss
        if clop_weight > 0:
            clop = baselines.clop_loss(z, visible_labels, prototypes, weight=clop_weight)
            aux["clop_loss"] = clop
            loss = loss + clop
        return loss, aux

    objective.takes_step = schedule != "constant"
    return objective


def _baseline_kwargs(config: ml_collections.ConfigDict) -> dict:
    """The keyword options of `baselines.baseline_loss` for `config.loss.name`."""
    lc = config.loss
    opt = functools.partial(validation.loss_option, config)
    return {
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
    }.get(lc.name, {"temperature": lc.temperature})


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

    `key` is the run's data key (`rng_key(seed, "data")`). `perm` is the epoch's
    permutation of the training set (`epoch_permutation`); the trainer computes it once
    per epoch and passes it in, because drawing a permutation of N = 60,000 inside
    every step costs as much as a small model's step. Without it the permutation is
    drawn here (the same one).

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
    vkey = view_key(key, step)
    if positives == "views":
        x = augment.make_views(vkey, x, views, **view_kwargs)
        ids = jnp.tile(jnp.arange(batch_size), 2)
        return x, jnp.tile(y, 2), ids, jnp.tile(vis, 2)
    if augment_labelled:
        x = augment.augment(vkey, x, views, **view_kwargs)
    return x, y, y, vis


def _permutation(data_key: Array, epoch: Array | int, n: int) -> Array:
    return jax.random.permutation(jax.random.fold_in(data_key, epoch), n)


def epoch_permutation(seed: int, epoch: int, n: int) -> Array:
    """The order in which epoch `epoch` of a run with `seed` visits its n examples."""
    return _permutation(rng_key(seed, "data"), epoch, n)


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
    data_key = rng_key(seed, "data")
    loss_key = rng_key(seed, "loss", state.step)
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
    grad_norm = optax.tree.norm(grads)
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


# --------------------------------------------------------------------------- factories
_embed_dim = validation.embed_dim  # the rule lives with the checks that enforce it


def create_model(config: ml_collections.ConfigDict, num_classes: int):
    """The flax encoder of `config.model` with the run's embedding dimension and dtype."""
    return models.create_model(
        config.model,
        embed_dim=validation.embed_dim(config, num_classes),
        dtype=jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32,
        **dict(config.model_kwargs or {}),
    )


def create_train_state(
    config,
    model,
    sample_x,
    num_classes,
    steps_per_epoch,
    *,
    tx: optax.GradientTransformation | None = None,
) -> TrainState:
    """Initialises parameters, optimizer and CLOP prototypes from the config's seed.

    `tx` is the optimizer (default: `make_optimizer(config, steps_per_epoch)`).
    """
    variables = model.init(rng_key(config.seed, "init"), sample_x, train=False)
    if tx is None:
        tx, _ = make_optimizer(config, steps_per_epoch)
    d = validation.embed_dim(config, num_classes)
    if config.clop.weight > 0:
        if config.clop.prototypes == "simplex":
            protos = baselines.simplex_prototypes(num_classes, d)
        else:
            key = rng_key(config.seed, "prototypes")
            protos = baselines.orthonormal_prototypes(key, num_classes, d)
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


def make_batch_fn(config: ml_collections.ConfigDict, *, batch_size: int, steps_per_epoch: int):
    """`make_batch` with the config's positives and views bound (the step's `batch_fn`)."""
    return functools.partial(
        make_batch,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        positives=config.positives,
        views=config.views,
        view_kwargs=view_options(config),
        augment_labelled=bool(config.get("augment", False)),
    )


def make_mesh(devices=None) -> Mesh:
    """The one-axis mesh "data" over `devices` (default: every device of every host).

    Built with `Mesh` directly, whose axes are Auto: `jax.make_mesh` gives Explicit axes
    from jax 0.8 on, and the step's `with_sharding_constraint` accepts only Auto ones.
    """
    return Mesh(np.array(jax.devices() if devices is None else devices), ("data",))


@dataclasses.dataclass
class Built:
    """What `build` wires from a config: everything a train step needs but the data.

    Attributes:
      model: the flax encoder (`create_model`).
      learning_rate_fn: the schedule (`create_learning_rate_fn`), which drives `tx`.
      tx: the optax optimizer (`make_optimizer`).
      init_state: `init_state(sample_x)` → a fresh `TrainState` (`create_train_state`).
      batch_fn: the step's batch function (`make_batch_fn` unless given).
      step_fn: the jitted step (`make_step_fn`), `step_fn(state, images, labels,
        visible[, perm])` → (state, metrics); made on first use, so the checks that
        need only the model's shapes run before it exists.
      steps_per_dispatch: the steps each `step_fn` call runs.
      mesh, replicated, batch_sharding: the mesh and its shardings (None unsharded;
        `batch_sharding` is None on one device).
    """

    model: Any
    learning_rate_fn: optax.Schedule
    tx: optax.GradientTransformation
    init_state: Callable[[Array], TrainState]
    batch_fn: Callable
    steps_per_dispatch: int
    mesh: Mesh | None
    replicated: NamedSharding | None
    batch_sharding: NamedSharding | None
    make_step: Callable[[], Callable]

    @functools.cached_property
    def step_fn(self) -> Callable:
        return self.make_step()


def build(
    config: ml_collections.ConfigDict,
    num_classes: int,
    *,
    batch_size: int,
    steps_per_epoch: int,
    devices=None,
    sharded: bool = True,
    batch_fn: Callable | None = None,
    objective: Callable | None = None,
    steps_per_dispatch: int | None = None,
) -> Built:
    """Wires model, schedule, optimizer, state factory and jitted step from `config`.

    Args:
      config: the run's config (validated).
      num_classes: C of the training set.
      batch_size: the global batch actually used (after clamping to the data).
      steps_per_epoch: steps of one epoch (sets the schedule's length).
      devices: the devices of the mesh (default: all); `sharded=False` builds no mesh
        and leaves placement to the caller (the benchmark's single device).
      batch_fn: replaces `make_batch_fn(config, ...)` (e.g. a fixed batch).
      objective: replaces the config's loss (`make_step_fn`).
      steps_per_dispatch: steps per jitted call (default: the config's, reduced to a
        divisor of the epoch).
    """
    mesh = make_mesh(devices) if sharded else None
    replicated = NamedSharding(mesh, P()) if mesh is not None else None
    batch_sharding = NamedSharding(mesh, P("data")) if mesh is not None and mesh.size > 1 else None
    model = create_model(config, num_classes)
    schedule = create_learning_rate_fn(config, steps_per_epoch)
    tx, _ = make_optimizer(config, steps_per_epoch, learning_rate_fn=schedule)
    if batch_fn is None:
        batch_fn = make_batch_fn(config, batch_size=batch_size, steps_per_epoch=steps_per_epoch)
    if steps_per_dispatch is None:
        steps_per_dispatch = _steps_per_dispatch(config, steps_per_epoch)
    make_step = functools.partial(
        make_step_fn,
        config,
        num_classes,
        batch_fn=batch_fn,
        batch_sharding=batch_sharding,
        replicated=replicated,
        steps_per_dispatch=steps_per_dispatch,
        objective=objective,
    )

    def init_state(sample_x: Array) -> TrainState:
        return create_train_state(config, model, sample_x, num_classes, steps_per_epoch, tx=tx)

    return Built(
        model=model,
        learning_rate_fn=schedule,
        tx=tx,
        init_state=init_state,
        batch_fn=batch_fn,
        steps_per_dispatch=steps_per_dispatch,
        mesh=mesh,
        replicated=replicated,
        batch_sharding=batch_sharding,
        make_step=make_step,
    )


def put_replicated(tree: PyTree, sharding: NamedSharding) -> PyTree:
    """Places every array leaf of `tree` on `sharding` from host values (every host alike)."""

    def put(a):
        if not hasattr(a, "shape"):
            return a
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, sharding, lambda i: a[i])

    return jax.tree.map(put, tree)


# --------------------------------------------------------------------------- data
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


class _Signals:
    """The signal (SIGTERM, SIGINT) received while `catch_signals` was active, if any."""

    signal: int | None = None


@contextlib.contextmanager
def catch_signals(enabled: bool = True) -> Iterator[_Signals]:
    """Records SIGTERM and Ctrl-C instead of dying, and restores the old handlers on exit.

    The loop reads `.signal` after each dispatch and stops at a step it can checkpoint.
    Off the main thread (some notebook runners) the handlers cannot be installed and
    the signals keep their default action.
    """
    caught = _Signals()

    def on_signal(signum, _frame):
        caught.signal = signum

    old: dict[int, Any] = {}
    if enabled:
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                old[s] = signal.signal(s, on_signal)
            except ValueError:  # not in the main thread
                pass
    try:
        yield caught
    finally:
        for s, h in old.items():
            signal.signal(s, h)


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
      SystemExit: on SIGTERM or Ctrl-C, once a checkpoint is saved (code 128 + signal).
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
        warm = checkpointing.load_for_warm_start(
            config.init_from,
            {"params": abstract_state.params, "batch_stats": abstract_state.batch_stats},
        )
    return sample_x, abstract_state, warm


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


def _restore_or_init(config, setup: _Setup, built: Built, ckpt, sample_x, abstract, warm):
    """The latest checkpoint's state, else a fresh one (warm-started if asked).

    A checkpoint is restored straight into the replicated sharding (the target's leaves
    carry it); only a fresh state is placed afterwards.
    """

    def on_mesh(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=built.replicated)
        return leaf

    restored = ckpt.restore_latest(jax.tree.map(on_mesh, abstract))
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


def _save(loop: _Loop, ckpt, setup: _Setup, force: bool = False) -> None:
    meta = {
        "epoch": loop.step // setup.steps_per_epoch,
        "step": loop.step,
        "config_fingerprint": setup.fingerprint,
    }
    if loop.epoch_loss:  # mid-epoch (preemption): the epoch's losses so far, exact floats
        meta["epoch_losses"] = [float(v) for v in jax.device_get(loop.epoch_loss)]
    ckpt.save(loop.step, loop.state, meta, force=force)


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
        if primary:
            workdir_lib.save_config_record(workdir, config)
            reporting.log_config_tensorboard(workdir, config, loop.start_step)
        # W&B mirrors every write_scalars call (validation checked it is importable).
        wandb_log = reporting.WandbLogger(
            workdir, config, enabled=primary and bool(config.get("wandb", False))
        )
        stack.callback(wandb_log.finish)
        loop.history = [
            r for r in reporting.read_metrics(workdir) if reporting.is_evaluation_row(r)
        ]
        # Every evaluation's DC spectra (plotted together); those after the resumed step go.
        loop.spectra = reporting.read_spectra(workdir, max_step=loop.start_step) if primary else []
        # A finished run rerun on its workdir reports its last evaluation again.
        loop.final_scalars = dict(loop.history[-1]) if loop.history else {}
        finished = loop.start_step >= setup.total_steps
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
        except (_Preempted, KeyboardInterrupt):
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

    Raises `_Preempted` when a signal arrived (at the step reached), FloatingPointError
    at the first non-finite log.
    """
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
        loop.epoch_loss.append(metrics["loss"])
        end_of_epoch = itstime(loop.step, spe)
        if end_of_epoch or itstime(loop.step, config.log_every_steps, total, window=dispatch):
            _log_train(loop, metrics, io, setup, built)
        if end_of_epoch:
            _end_epoch(config, setup, loop, io, features_fn)
        if caught.signal is not None and loop.step < total:
            raise _Preempted()


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
    text = reporting.write_summary(
        workdir,
        loop.final_scalars,
        config=config,
        step=loop.step,
        total_steps=setup.total_steps,
        steps_trained=trained,
        wall_time_s=t_end - t_start,
        steps_per_sec=trained / max(t_end - t_loop, 1e-9) if trained else None,
    )
    if verbose:
        print(text, flush=True)
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
