"""The train state and its factories: keys, model, schedule, optimizer, initial state.

The state is one pytree, a flax `TrainState` subclass (linen with `batch_stats`),
because Orbax saves and restores it as is and `jax.eval_shape` gives the abstract
target for free. Every random key of a run derives from its seed through `rng_key`,
so a resumed run draws exactly what the first one drew.

Only the trainer's modules read a config; the floors below take arrays.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from hncl_jax import baselines, models
from hncl_jax.train import validation
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
