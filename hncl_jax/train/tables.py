"""The trainer's name tables: the learning-rate schedules and optimizers a config names.

`config.optimizer.schedule` and `config.optimizer.name` are keys of `SCHEDULES` and
`OPTIMIZERS`; the factories (`hncl_jax.train.make_optimizer`) dispatch on them and the
config rules (`hncl_jax.train.validation`) check a name against them. Both import this
module, which imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax

# name → factory(peak learning rate, total steps, warmup steps) → optax schedule.
SCHEDULES: dict[str, Callable[[float, int, int], optax.Schedule]] = {
    "constant": lambda lr, total, warmup: optax.constant_schedule(lr),
    "cosine": lambda lr, total, warmup: optax.cosine_decay_schedule(lr, total),
    "warmup_cosine": lambda lr, total, warmup: optax.warmup_cosine_decay_schedule(
        0.0, lr, max(warmup, 1), max(total, warmup + 1)
    ),
}
# name → factory(schedule, config.optimizer) → optax.GradientTransformation.
OPTIMIZERS: dict[str, Callable[[optax.Schedule, Any], optax.GradientTransformation]] = {
    "adam": lambda lr, oc: optax.adam(lr),
    "adamw": lambda lr, oc: optax.adamw(lr, weight_decay=oc.weight_decay),
    "sgd": lambda lr, oc: optax.chain(
        optax.add_decayed_weights(oc.weight_decay), optax.sgd(lr, momentum=oc.momentum)
    ),
    "lars": lambda lr, oc: optax.lars(lr, weight_decay=oc.weight_decay, momentum=oc.momentum),
}
