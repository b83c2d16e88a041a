"""Private helpers of the loss floor: argument checks and masked reductions.

`geometry`, `hardening`, `losses` and `baselines` share these pieces. The module imports
nothing from `hncl_jax` (only `jax` and `numpy`), so each of those modules can use it
without depending on the others.

Checks run at trace time, before anything compiles. A value is inspected only when it
is concrete; a traced value (e.g. a β schedule, a learned temperature) passes unchecked
(`hncl_jax.checks.checked` covers that case).

Error messages start with the name of the public function that was called (`caller`)
and name the argument, its value and an accepted value.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# The ψ_k names of docs/math.md §2, shared by `hardening.PSIS` and `geometry`'s bounds.
PSIS = ("infonce", "infonce_sum", "triplet")


# ----------------------------------------------------------------------------------------
# Concrete values.


def concrete(x: Any) -> np.ndarray | None:
    """`x` as a NumPy array if it is known at trace time, None if it is traced.

    Examples:
      >>> concrete([1, 2])
      array([1, 2])
      >>> _ = jax.jit(lambda x: print(concrete(x)))(1.0)  # traced: None
      None
    """
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def concrete_scalar(value: Any, *, caller: str, arg: str) -> float | None:
    """`value` as a Python float if it is known at trace time, None if it is traced.

    Args:
      value: a number, a 0-d array, or a traced value.
      caller: the public function's name, for the error message.
      arg: the argument's name, for the error message.

    Returns:
      The float, or None for a traced value.

    Raises:
      ValueError: if `value` is a concrete array that is not a scalar, or not a number.

    Examples:
      >>> concrete_scalar(jnp.float32(0.5), caller="f", arg="beta")
      0.5
      >>> concrete_scalar([1.0, 2.0], caller="f", arg="beta")
      Traceback (most recent call last):
      ...
      ValueError: f: beta must be a scalar; got an array of shape (2,).
    """
    arr = concrete(value)
    if arr is None:
        return None
    if arr.ndim != 0:
        raise ValueError(f"{caller}: {arg} must be a scalar; got an array of shape {arr.shape}.")
    try:
        return float(arr)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{caller}: {arg}={value!r} must be a real number.") from err


# ----------------------------------------------------------------------------------------
# Argument checks.


def check_choice(caller: str, arg: str, value: Any, options: tuple[str, ...]) -> None:
    """Raises ValueError unless `value` is one of `options`.

    Examples:
      >>> check_choice("f", "kind", "linear", ("constant", "linear"))
      >>> check_choice("f", "kind", "step", ("constant", "linear"))
      Traceback (most recent call last):
      ...
      ValueError: f: kind='step' is not supported; kind must be one of ('constant', ...
    """
    if value not in options:
        raise ValueError(
            f"{caller}: {arg}={value!r} is not supported; {arg} must be one of {options} "
            f"(e.g. {arg}={options[0]!r})."
        )


def check_scalar(
    caller: str,
    arg: str,
    value: Any,
    *,
    strict: bool = True,
    note: str = "",
    example: Any = 1.0,
) -> None:
    """Raises ValueError unless a concrete `value` is a finite number > 0 (>= 0 if not strict).

    A traced `value` is not inspected.

    Args:
      caller: the public function's name.
      arg: the argument's name.
      value: the value to check.
      strict: require > 0 (True) or >= 0 (False).
      note: what the argument means, shown in parentheses.
      example: an accepted value, shown as `arg=example`.

    Raises:
      ValueError: for a non-finite, negative (or zero, if `strict`) or non-scalar value.

    Examples:
      >>> check_scalar("f", "temperature", 0.5)
      >>> check_scalar("f", "temperature", 0.0, note="a divisor", example=0.5)
      Traceback (most recent call last):
      ...
      ValueError: f: temperature=0.0 must be a finite number > 0 (a divisor); e.g. ...
    """
    v = concrete_scalar(value, caller=caller, arg=arg)
    if v is not None and not (np.isfinite(v) and (v > 0 if strict else v >= 0)):
        bound = "> 0" if strict else ">= 0"
        why = f" ({note})" if note else ""
        raise ValueError(
            f"{caller}: {arg}={value!r} must be a finite number {bound}{why}; "
            f"e.g. {arg}={example!r}."
        )


def check_embeddings(caller: str, z: Any, *, arg: str = "z", min_rows: int = 1) -> None:
    """Raises ValueError unless `z` is a float array of shape (N, d) with N >= `min_rows`.

    Examples:
      >>> check_embeddings("f", jnp.zeros((4, 2)))
      >>> check_embeddings("f", jnp.zeros(4))
      Traceback (most recent call last):
      ...
      ValueError: f: z must have shape (N, d) with N >= 1 (one row per example); got ...
    """
    shape = jnp.shape(z)
    if len(shape) != 2 or shape[0] < min_rows:
        raise ValueError(
            f"{caller}: {arg} must have shape (N, d) with N >= {min_rows} (one row per "
            f"example); got shape {shape}."
        )
    dtype = jnp.result_type(z)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{caller}: {arg} must be a float array; got dtype {dtype}.")


def check_ids(caller: str, arg: str, ids: Any, n: int) -> None:
    """Raises ValueError unless `ids` is an integer array of shape (n,), one id per row of z.

    Examples:
      >>> check_ids("f", "labels", jnp.arange(3), 3)
      >>> check_ids("f", "labels", jnp.arange(2), 3)
      Traceback (most recent call last):
      ...
      ValueError: f: labels must have shape (N,) = (3,), one id per row of z; got shape (2,).
    """
    shape = jnp.shape(ids)
    if shape != (n,):
        raise ValueError(
            f"{caller}: {arg} must have shape (N,) = ({n},), one id per row of z; got shape "
            f"{shape}."
        )
    dtype = jnp.result_type(ids)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"{caller}: {arg} must be an integer array; got dtype {dtype}.")


# ----------------------------------------------------------------------------------------
# Masked reductions.


def masked_logsumexp(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Row-wise log Σ_{m: mask_m} exp(x_m), and whether each row's set is non-empty.

    An empty row gives 0 (not −inf), so a caller can drop it with `where` without NaN
    gradients; masked-out entries enter as exp(−inf) = 0, whose derivative is 0.

    Args:
      x: values, shape (..., M).
      mask: bool, the shape of `x`.

    Returns:
      (lse, nonempty), both of shape (...).

    Examples:
      >>> x = jnp.log(jnp.array([[1.0, 2.0, 4.0], [1.0, 1.0, 1.0]]))
      >>> lse, nonempty = masked_logsumexp(x, jnp.array([[True, True, False], [False] * 3]))
      >>> jnp.exp(lse), nonempty
      (Array([3., 1.], dtype=float32), Array([ True, False], dtype=bool))
    """
    nonempty = jnp.any(mask, axis=-1)
    row_max = jnp.max(jnp.where(mask, x, -jnp.inf), axis=-1, keepdims=True)
    row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    shifted = jnp.where(mask, x - row_max, -jnp.inf)
    total = jnp.sum(jnp.exp(shifted), axis=-1)
    lse = jnp.log(jnp.where(nonempty, total, 1.0)) + row_max[..., 0]
    return jnp.where(nonempty, lse, 0.0), nonempty


def mean_over_positives(
    pair_loss: jax.Array,
    positives: jax.Array,
    valid_anchor: jax.Array,
    reduction: str = "anchor_mean",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Reduces pair losses ℓ_ij to the batch loss over the anchors that qualify.

    An anchor i is kept when it has a positive and `valid_anchor[i]` (e.g. it has a
    negative). "anchor_mean": the mean of ℓ_ij over each anchor's positives, then the
    mean over the kept anchors. "pair_mean": one mean over all (anchor, positive) pairs
    of the kept anchors, which weighs an anchor by its number of positives; the two
    agree when every kept anchor has the same number of positives. A batch without a
    kept anchor gives 0.

    Args:
      pair_loss: ℓ_ij, shape (N, N).
      positives: bool (N, N), True where j is a positive of anchor i.
      valid_anchor: bool (N,), the anchors that may be kept.
      reduction: "anchor_mean" or "pair_mean".

    Returns:
      (loss, kept anchors (N,) bool, the int32 number of anchors left out).

    Examples:
      >>> pair_loss = jnp.array([[1.0, 3.0, 5.0], [2.0, 4.0, 6.0], [0.0, 0.0, 0.0]])
      >>> positives = jnp.array([[True, True, False], [False, True, True], [False] * 3])
      >>> loss, kept, dropped = mean_over_positives(pair_loss, positives, jnp.ones(3, bool))
      >>> print(loss, kept, dropped)
      3.5 [ True  True False] 1
    """
    num_pos = jnp.sum(positives, axis=-1)
    valid = (num_pos > 0) & valid_anchor
    num_valid = jnp.sum(valid)
    if reduction == "pair_mean":
        kept = positives & valid[:, None]
        loss = jnp.sum(jnp.where(kept, pair_loss, 0.0)) / jnp.maximum(jnp.sum(kept), 1)
    else:
        per_anchor = jnp.sum(jnp.where(positives, pair_loss, 0.0), axis=-1) / jnp.maximum(
            num_pos, 1
        )
        loss = jnp.sum(jnp.where(valid, per_anchor, 0.0)) / jnp.maximum(num_valid, 1)
    return loss, valid, (valid.shape[0] - num_valid).astype(jnp.int32)
