"""Checked mode: the loss functions' argument checks for traced values, with checkify.

Python-level arguments (β = 2.0, a label array known at trace time) are checked by
each function with a ValueError as it is called. Under `jax.jit` a β, τ⁺, α or a label
array that is itself traced cannot be inspected: the functions then compute whatever
the arithmetic gives (a NaN β gives a finite but meaningless loss, τ⁺ = 1 gives inf, a
label ≥ C selects the last prototype). Checked mode makes those cases errors:

    >>> loss_fn = checks.checked(lambda z, y, key, beta: losses.contrastive_loss(
    ...     z, y, key, setting="hscl", beta=beta, k=16))
    >>> loss_fn(z, y, key, jnp.nan)   # raises checks.InvalidInputError naming beta

`checked(fn)` traces `fn` with the checks switched on, functionalizes them with
`jax.experimental.checkify` (user checks only: no cost is added to unchecked code),
jits the result and raises `InvalidInputError` (a ValueError) when a check fails. The
same `checks.check` calls work under a caller's own `checkify.checkify` when traced
inside `checks.checking()`. Outside checked mode every call below is a no-op, so the
library's jitted functions compile exactly as before.

Checked, per function (see each function's docstring):

* `losses.contrastive_loss`, `losses.simclr_form_loss`: embeddings finite; β finite
  and ≥ 0; ε > 0; α > 0 (infonce_sum, triplet); τ⁺ ∈ [0, 1); temperature > 0;
* `hardening.psi`: arguments t not NaN; α > 0 for infonce_sum;
* `baselines.clop_loss`: embeddings finite; labels in [-1, C) (-1 = hidden);
* `baselines.baseline_loss`: embeddings finite; temperature > 0.

References:
  JAX documentation, "The checkify transformation" (`jax.experimental.checkify`).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import checkify

__all__ = ["InvalidInputError", "check", "checked", "checking", "enabled"]

_STATE = threading.local()


class InvalidInputError(ValueError):
    """A traced argument or input failed a check of checked mode."""


def enabled() -> bool:
    """Whether functions traced now add their checks (inside `checking()`)."""
    return getattr(_STATE, "depth", 0) > 0


@contextlib.contextmanager
def checking() -> Iterator[None]:
    """Switches the checks on for everything traced inside the block.

    Use it around tracing under your own `checkify.checkify`; `checked` does it for you.
    """
    _STATE.depth = getattr(_STATE, "depth", 0) + 1
    try:
        yield
    finally:
        _STATE.depth -= 1


def check(pred: Any, message: str, *args: Any) -> None:
    """`checkify.check(pred, message, *args)` in checked mode, nothing otherwise.

    Args:
      pred: a boolean scalar (traced or concrete); False fails the check.
      message: the error text; `{}` fields are filled with `args` at run time.
      *args: arrays shown in the message.
    """
    if enabled():
        checkify.check(jnp.all(jnp.asarray(pred)), message, *args)


def finite(caller: str, arg: str, x: Any) -> None:
    """Checks that every entry of `x` is finite (reports how many are not)."""
    if enabled():
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact):
            bad = jnp.sum(~jnp.isfinite(x))
            check(bad == 0, f"{caller}: {arg} holds {{}} non-finite value(s) (NaN or ±inf).", bad)


def in_range(
    caller: str,
    arg: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Checks low ≤ value ≤ high (strict where `*_open`); NaN always fails."""
    if not enabled() or value is None:
        return
    v = jnp.asarray(value, jnp.float32)
    ok = ~jnp.isnan(v)
    if low is not None:
        ok &= v > low if low_open else v >= low
    if high is not None:
        ok &= v < high if high_open else v <= high
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '≥'} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '≤'} {high}")
    where = " and ".join(parts)
    check(jnp.all(ok), f"{caller}: {arg}={{}} must be {where}.", v)


def labels_below(caller: str, arg: str, labels: Any, num_classes: int, *, low: int = 0) -> None:
    """Checks low ≤ labels < num_classes (reports the largest and smallest label)."""
    if enabled():
        y = jnp.asarray(labels)
        check(
            jnp.all((y >= low) & (y < num_classes)),
            f"{caller}: {arg} must lie in [{low}, {num_classes}); found labels from {{}} to {{}}.",
            jnp.min(y),
            jnp.max(y),
        )


def checked(fn: Callable, *, jit: bool = True, **jit_kwargs: Any) -> Callable:
    """`fn` with checked mode on: jitted, raising `InvalidInputError` on a failed check.

    Args:
      fn: a function of arrays calling the library's losses (or any `checks.check`).
      jit: jit the checkified function (False: run it eagerly, still checked).
      **jit_kwargs: passed to `jax.jit` (e.g. `static_argnames`).

    Returns:
      a function with `fn`'s signature and outputs.

    Raises (from the returned function):
      InvalidInputError: the first failed check's message.
    """
    functional = checkify.checkify(fn, errors=checkify.user_checks)
    compiled = jax.jit(functional, **jit_kwargs) if jit else functional

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with checking():
            err, out = compiled(*args, **kwargs)
        message = err.get()
        if message:
            raise InvalidInputError(message.split("\n")[0] if "\n" in message else message)
        return out

    return wrapper
