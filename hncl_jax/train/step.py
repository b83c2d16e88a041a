"""The pure train step and the factories that wire it: batch, step, mesh, `build`.

The whole dataset lives on the device (replicated over a one-axis `Mesh` named
"data"); every step is one jitted call that derives everything from (seed, step):

    step ─► epoch permutation (fold_in(seed, epoch)) ─► batch indices ─► views ─►
    model ─► normalize ─► loss (over the *global* batch) ─► grads ─► optax ─► state

so a resumed run replays exactly the same batches, and no host round-trip happens
inside an epoch (metrics are read back only every `log_every_steps`). The batch is
sharded on "data" with `with_sharding_constraint`; XLA inserts the collectives, and
the negatives of the loss come from every device.

Every caller (the trainer, the sweep, the benchmark, the tests) wires a step through
the same factories: `create_model`, `create_learning_rate_fn`, `make_optimizer`,
`create_train_state` (in `state`), `make_objective` (in `objectives`), `make_batch_fn`,
`make_step_fn`, or all of them at once through `build`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from hncl_jax import geometry
from hncl_jax.data import augment
from hncl_jax.train.objectives import make_objective
from hncl_jax.train.state import (
    TrainState,
    create_learning_rate_fn,
    create_model,
    create_train_state,
    make_optimizer,
    rng_key,
    view_key,
)

Array = jax.Array
PyTree = Any


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
