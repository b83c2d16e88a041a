"""The loss functions ψ_k, hardening functions and tilted negative sampling.

Pure `jax` building blocks of the hard-negative (HN) losses (docs/math.md §2 and §5):

* `psi` — the convex, argument-wise non-decreasing ψ_k of [HN Def. 1], reducing the k
  arguments t_m = s(anchor, negative_m) − s(anchor, positive) on the last axis.
* `log_hardening` — log h(t) of the separable hardening functions η = Π_m h(t_m)
  [HN Def. 2, App. B.4].
* `tilted_log_probs`, `tilted_probs` — the η-harder negative distribution of one negative
  q_i(m) ∝ h(s_im) 1[m ∈ candidates_i] [HN Def. 3-4], computed in log space.
* `sample_negatives` — k i.i.d. negatives per anchor from q_i, all anchors at once.
* `sir_sample` — sampling-importance-resampling for a non-separable η(t_1..t_k).
* `beta_schedule` — β as a function of the training step (constant, linear, cosine).
* `make_eta`, `register_eta`, `ETAS` — η by name (a small registry, or an importable
  "module:function" hook) as the log η callables `sir_sample` takes.

Conventions: `sims` is an (N, M) matrix of anchor-candidate similarities s_im (M = N for
a batch against itself) and `candidate_mask` an (N, M) boolean matrix of the reference
(uniform) negative distribution's support. An anchor whose candidates all have h = 0
(e.g. polynomial hardening with every s_im ≤ −1) falls back to the reference
distribution and is counted. An anchor with no candidate at all gets a uniform
distribution over every column so that shapes stay static; the losses drop such anchors.
Gradients and the tilted distribution: the sampled code of [HN] detaches the sampling
probabilities (a drawn index has no derivative), and so do `sample_negatives`,
`sir_sample` and `tilted_probs`. [R21]'s `criterion` does not: it computes its
importance weights exp(β s) from the same, undetached similarities, so its gradient also
flows through the weights. `tilted_log_probs` is therefore differentiable in `sims`; the
losses detach its result unless their `grad_through_weights` option asks for [R21]'s
gradient.

References:
  [HN] Jiang et al., "Hard-Negative Sampling for Contrastive Learning: Optimal
  Representation Geometry and Neural- vs Dimensional-Collapse"
  (earlier version: arXiv:2209.00078), Def. 1-4,
  Algorithm 1, App. B.4.
  [R21] Robinson, Chuang, Sra, Jegelka, "Contrastive Learning with Hard Negative
  Samples", ICLR 2021 (importance weights with gradient).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from hncl_jax import _loss_utils as _utils
from hncl_jax import checks

PSIS = _utils.PSIS
HARDENINGS = ("none", "exponential", "polynomial")
SAMPLERS = ("inverse_cdf", "categorical")
BETA_SCHEDULES = ("constant", "linear", "cosine")

# The inverse-CDF sampler rounds q_i(m) to multiples of 2^-30 and accumulates them in
# int32: the cumulative sums are exact, so a zero-probability column (a non-candidate,
# or h = 0) is never drawn, and rows with up to 2^30 columns cannot overflow.
_CDF_BITS = 30


# ----------------------------------------------------------------------------------------
# Argument checks. They run at trace time (before compilation). Values are checked only
# when they are concrete, so a traced β (e.g. a schedule) still works.


# `value` as a float if it is concrete, None if traced (kept here for existing callers).
concrete_scalar = _utils.concrete_scalar


def check_psi_args(name: str, alpha: Any, *, caller: str = "psi") -> None:
    """Raises ValueError unless `name` is in `PSIS` and `alpha` is a valid α (> 0).

    α is ψ's only parameter: the additive constant of "infonce_sum" and the margin of
    "triplet" (both > 0 in [HN Def. 1]); "infonce" ignores it.
    """
    _utils.check_choice(caller, "psi", name, PSIS)
    concrete_scalar(alpha, caller=caller, arg="alpha")
    if name != "infonce":
        note = f"for psi={name!r}, the α of [HN Def. 1]"
        _utils.check_scalar(caller, "alpha", alpha, note=note, example=1.0)


def check_hardening_args(name: str, beta: Any, epsilon: Any, *, caller: str) -> None:
    """Raises ValueError unless `name` is in `HARDENINGS`, β ≥ 0 and ε > 0."""
    _utils.check_choice(caller, "hardening", name, HARDENINGS)
    note = "exponential hardening exp(β t); β = 0 is no hardening"
    _utils.check_scalar(caller, "beta", beta, strict=False, note=note, example=10.0)
    note = "polynomial hardening max(t + 1, 0)^ε"
    _utils.check_scalar(caller, "epsilon", epsilon, note=note, example=3.0)


def check_k(k: Any, *, caller: str, arg: str = "k") -> None:
    """Raises ValueError unless `k` is a Python/NumPy integer >= 1 (a static shape)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(
            f"{caller}: {arg}={k!r} must be an integer >= 1 (it is a static array size); "
            f"e.g. {arg}=256."
        )


def _check_sims(caller: str, sims: jax.Array, candidate_mask: jax.Array) -> None:
    if sims.ndim != 2:
        raise ValueError(
            f"{caller}: sims must have shape (N, M) (anchors x candidates); got {sims.shape}."
        )
    if candidate_mask.shape != sims.shape:
        raise ValueError(
            f"{caller}: candidate_mask must have the shape of sims {sims.shape}; got "
            f"{candidate_mask.shape}."
        )


# ----------------------------------------------------------------------------------------
# ψ_k and h.


def psi(t: ArrayLike, name: str = "infonce", alpha: float = 1.0) -> jax.Array:
    """The generalized contrastive loss function ψ_k of [HN Def. 1], over the last axis.

      name            ψ_k(t_1..t_k)
      "infonce"       log(1 + (1/k) Σ_m exp(t_m)) = softplus(logsumexp(t) − log k)
      "infonce_sum"   log(α + Σ_m exp(t_m)) = logaddexp(log α, logsumexp(t))
      "triplet"       (1/k) Σ_m max(t_m + α, 0)

    All three are computed without overflow for any finite t.

    Args:
      t: arguments t_m = s(anchor, negative_m) − s(anchor, positive), shape (..., k).
      name: one of `PSIS`.
      alpha: α > 0 of "infonce_sum" and "triplet" (ignored by "infonce").

    Returns:
      ψ_k(t), shape (...).

    Raises:
      ValueError: for an unknown `name`, α ≤ 0, or a scalar `t`. A traced α is not
        inspected (α ≤ 0 gives NaN for "infonce_sum"); under `hncl_jax.checks.checked`
        it, and NaN arguments, raise `InvalidInputError`.

    Examples:
      >>> import jax.numpy as jnp
      >>> print(f"{psi(jnp.zeros(4)):.4f}")  # log(1 + mean(e^0)) = log 2
      0.6931
      >>> print(psi(jnp.array([-0.5, 0.5]), "triplet", alpha=1.0))  # mean(0.5, 1.5)
      1.0

    References:
      [HN Def. 1, Algorithm 1 line 22]; docs/math.md §2.
    """
    check_psi_args(name, alpha, caller="psi")
    t = jnp.asarray(t)
    checks.check(~jnp.any(jnp.isnan(t)), "psi: the arguments t hold NaN.")
    if name != "infonce":
        checks.in_range("psi", "alpha", alpha, low=0.0, low_open=True)
    if t.ndim < 1:
        raise ValueError(f"psi: t must have shape (..., k) with k >= 1; got shape {t.shape}.")
    k = t.shape[-1]
    if name == "infonce":
        return jax.nn.softplus(jax.nn.logsumexp(t, axis=-1) - math.log(k))
    if name == "infonce_sum":
        log_alpha = jnp.log(jnp.asarray(alpha, dtype=t.dtype))
        return jnp.logaddexp(log_alpha, jax.nn.logsumexp(t, axis=-1))
    return jnp.mean(jax.nn.relu(t + alpha), axis=-1)


def log_hardening(t: ArrayLike, name: str, beta: float = 0.0, epsilon: float = 1.0) -> jax.Array:
    """log h(t) of a separable hardening function η(t_1..t_k) = Π_m h(t_m).

      name            h(t)              log h(t)
      "none"          1                 0
      "exponential"   exp(β t)          β t
      "polynomial"    max(t + 1, 0)^ε   ε log(t + 1), −inf for t ≤ −1

    The polynomial branch uses a double `where`, so its gradient is 0 (not NaN) where
    h = 0.

    Args:
      t: anchor-negative similarities, any shape.
      name: one of `HARDENINGS`.
      beta: β ≥ 0 of "exponential".
      epsilon: ε > 0 of "polynomial".

    Returns:
      log h(t), the shape and dtype of t.

    Examples:
      >>> import jax.numpy as jnp
      >>> print(log_hardening(jnp.array([-1.0, 0.0, 1.0]), "exponential", beta=2.0))
      [-2.  0.  2.]
      >>> print(log_hardening(jnp.array([-1.0, 0.0]), "polynomial", epsilon=2.0))
      [-inf  0.]

    References:
      [HN Def. 2, Algorithm 1 (exponential), App. B.4 (polynomial)]; docs/math.md §5.
    """
    check_hardening_args(name, beta, epsilon, caller="log_hardening")
    t = jnp.asarray(t)
    if name == "none":
        return jnp.zeros_like(t)
    if name == "exponential":
        return beta * t
    u = t + 1.0
    positive = u > 0
    safe_u = jnp.where(positive, u, jnp.ones_like(u))
    return jnp.where(positive, epsilon * jnp.log(safe_u), -jnp.inf)


# ----------------------------------------------------------------------------------------
# The tilted distribution q_i.


def _tilted_log_probs(
    sims: jax.Array,
    candidate_mask: jax.Array,
    hardening: str,
    beta: Any,
    epsilon: Any,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Returns (log q (N, M), fallback (N,) bool, has_candidates (N,) bool); no checks."""
    logits = log_hardening(sims, hardening, beta, epsilon)
    masked = jnp.where(candidate_mask, logits, -jnp.inf)
    has_candidates = jnp.any(candidate_mask, axis=-1)
    # h = 0 on every candidate: the tilted distribution is undefined (γ = 0 in [HN Def. 3]);
    # use the reference distribution instead.
    fallback = has_candidates & jnp.all(masked == -jnp.inf, axis=-1)
    uniform = jnp.where(candidate_mask, jnp.zeros_like(logits), -jnp.inf)
    masked = jnp.where(fallback[:, None], uniform, masked)
    # No candidate at all: any finite row keeps the arithmetic NaN-free; callers drop it.
    masked = jnp.where(has_candidates[:, None], masked, jnp.zeros_like(logits))
    return jax.nn.log_softmax(masked, axis=-1), fallback, has_candidates


def tilted_log_probs(
    sims: ArrayLike,
    candidate_mask: ArrayLike,
    *,
    hardening: str = "exponential",
    beta: float = 0.0,
    epsilon: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """log q_i(m) of the tilted negative distribution, differentiable in `sims`.

    q_i(m) = h(s_im) 1[m ∈ candidates_i] / Σ_{m'} h(s_im') 1[m' ∈ candidates_i], computed
    as a masked log-softmax of log h, exact for any β (no overflow). Rows whose
    candidates all have h = 0 use the uniform distribution over the candidates.

    Args:
      sims: anchor-candidate similarities s_im, shape (N, M).
      candidate_mask: bool (N, M), the support of the reference distribution.
      hardening: one of `HARDENINGS`.
      beta: β ≥ 0 of "exponential".
      epsilon: ε > 0 of "polynomial".

    Returns:
      (log_q, fallback): log_q (N, M) with −inf off the support (a row without candidates
      is uniform over all M columns), and fallback (N,) bool, True where the row fell back
      to the reference distribution.

    References:
      [HN Def. 3-4, eq. 5 and 7 with separable η]; docs/math.md §5.
    """
    check_hardening_args(hardening, beta, epsilon, caller="tilted_log_probs")
    sims = jnp.asarray(sims)
    candidate_mask = jnp.asarray(candidate_mask, dtype=bool)
    _check_sims("tilted_log_probs", sims, candidate_mask)
    log_q, fallback, _ = _tilted_log_probs(sims, candidate_mask, hardening, beta, epsilon)
    return log_q, fallback


def tilted_probs(
    sims: ArrayLike,
    candidate_mask: ArrayLike,
    *,
    hardening: str = "exponential",
    beta: float = 0.0,
    epsilon: float = 1.0,
) -> jax.Array:
    """The tilted negative distribution q_i(m) ∝ h(s_im) 1[m ∈ candidates_i], no gradient.

    Args:
      sims: anchor-candidate similarities s_im, shape (N, M).
      candidate_mask: bool (N, M), the support of the reference distribution.
      hardening: one of `HARDENINGS`.
      beta: β ≥ 0 of "exponential".
      epsilon: ε > 0 of "polynomial".

    Returns:
      q, shape (N, M), rows summing to 1, under `stop_gradient`. A row whose candidates
      all have h = 0 is uniform over its candidates; a row without candidates is uniform
      over all M columns.

    Examples:
      Two equally similar candidates share the mass; column 0 is not a candidate:

      >>> import jax.numpy as jnp
      >>> sims, mask = jnp.array([[0.9, 0.5, 0.5]]), jnp.array([[False, True, True]])
      >>> print(tilted_probs(sims, mask, beta=10.0))
      [[0.  0.5 0.5]]

    References:
      [HN Def. 3-4]; docs/math.md §5.
    """
    log_q, _ = tilted_log_probs(
        sims, candidate_mask, hardening=hardening, beta=beta, epsilon=epsilon
    )
    return jax.lax.stop_gradient(jnp.exp(log_q))


# ----------------------------------------------------------------------------------------
# Sampling.


def _draw_from_log_probs(key: jax.Array, log_q: jax.Array, n: int, method: str) -> jax.Array:
    """n i.i.d. column indices per row of q = exp(log_q) (N, M) -> (N, n) int32.

    "inverse_cdf": integer CDF + binary search, O(NM + Nn log M) time, O(NM + Nn) memory.
    "categorical": Gumbel-max (`jax.random.categorical`), O(NMn) time and memory.
    """
    log_q = jax.lax.stop_gradient(log_q)
    num_rows, num_cols = log_q.shape
    if method == "categorical":
        idx = jax.random.categorical(key, log_q[:, None, :], axis=-1, shape=(num_rows, n))
        return idx.astype(jnp.int32)
    weights = jnp.round(jnp.exp(log_q) * float(2**_CDF_BITS)).astype(jnp.int32)
    cdf = jnp.cumsum(weights, axis=-1, dtype=jnp.int32)
    # Rows sum to 1, so the largest weight is >= 2^30 / M >= 1 and the total is positive.
    total = cdf[:, -1:]
    u = jax.random.randint(key, (num_rows, n), 0, total, dtype=jnp.int32)
    # First column whose CDF exceeds u: columns of weight 0 are never selected.
    idx = jax.vmap(lambda c, v: jnp.searchsorted(c, v, side="right"))(cdf, u)
    return jnp.minimum(idx, num_cols - 1).astype(jnp.int32)


def sample_negatives(
    key: jax.Array,
    sims: ArrayLike,
    candidate_mask: ArrayLike,
    k: int,
    *,
    hardening: str = "exponential",
    beta: float = 0.0,
    epsilon: float = 1.0,
    num_tuples: int | None = None,
    method: str = "inverse_cdf",
) -> tuple[jax.Array, jax.Array]:
    """Draws k i.i.d. negatives per anchor from the tilted distribution q_i, all anchors at once.

    With a separable η = Π_m h(t_m) the η-harder k-tuple of [HN Def. 3-4] is k i.i.d.
    draws from q_i(m) ∝ h(s_im) 1[m ∈ candidates_i] (drawn with replacement, as the
    reference distribution). The distribution is built in log space (`tilted_log_probs`)
    and carries no gradient.

    Two samplers give the same distribution:

    * "inverse_cdf" (default): q_i rounded to multiples of 2^-30, exact int32 cumulative
      sums and a binary search per draw: O(NM + N n log M) time, O(NM + N n) memory for
      n = k · num_tuples draws per anchor. Columns of probability 0 are never drawn;
      probabilities below 2^-31 ≈ 5e-10 are rounded to 0.
    * "categorical": `jax.random.categorical` (Gumbel-max) on the masked logits:
      O(N M n) time and memory; in float32 it is biased for probabilities below ~1e-7
      (its "low" mode).

    Args:
      key: PRNG key.
      sims: anchor-candidate similarities s_im, shape (N, M). Only their values are used.
      candidate_mask: bool (N, M), the support of the reference (uniform) distribution.
      k: negatives per anchor (static int >= 1).
      hardening: one of `HARDENINGS` ("none" = the reference distribution).
      beta: β ≥ 0 of "exponential".
      epsilon: ε > 0 of "polynomial".
      num_tuples: if given, draw that many independent k-tuples per anchor (the per-pair
        draws of Algorithm 1 use num_tuples = N).
      method: one of `SAMPLERS`.

    Returns:
      (idx, num_fallback): idx int32 of shape (N, k), or (N, num_tuples, k), with column
      indices into `sims`; num_fallback, an int32 scalar, the number of anchors with
      candidates whose candidates all have h = 0 and which were sampled from the uniform
      reference instead. Rows without any candidate hold arbitrary valid indices.

    Raises:
      ValueError: for unknown names, β < 0, ε ≤ 0, k < 1 or mismatched shapes.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> sims = jnp.array([[1.0, 0.9, -0.5, 0.0]])
      >>> mask = jnp.array([[False, True, True, True]])  # column 0: the anchor itself
      >>> idx, num_fallback = sample_negatives(jax.random.key(0), sims, mask, 8, beta=5.0)
      >>> idx.shape, bool(jnp.all(idx > 0)), int(num_fallback)
      ((1, 8), True, 0)

    References:
      [HN Def. 3-4, Algorithm 1 line 20]; docs/math.md §5.
    """
    check_hardening_args(hardening, beta, epsilon, caller="sample_negatives")
    check_k(k, caller="sample_negatives")
    if num_tuples is not None:
        check_k(num_tuples, caller="sample_negatives", arg="num_tuples")
    _utils.check_choice("sample_negatives", "method", method, SAMPLERS)
    sims = jnp.asarray(sims)
    candidate_mask = jnp.asarray(candidate_mask, dtype=bool)
    _check_sims("sample_negatives", sims, candidate_mask)
    log_q, fallback, _ = _tilted_log_probs(
        jax.lax.stop_gradient(sims), candidate_mask, hardening, beta, epsilon
    )
    tuples = 1 if num_tuples is None else int(num_tuples)
    idx = _draw_from_log_probs(key, log_q, tuples * int(k), method)
    shape = (sims.shape[0], k) if num_tuples is None else (sims.shape[0], tuples, k)
    return idx.reshape(shape), jnp.sum(fallback).astype(jnp.int32)


def sir_sample(
    key: jax.Array,
    sims: ArrayLike,
    candidate_mask: ArrayLike,
    k: int,
    eta_fn: Callable[[jax.Array], jax.Array],
    num_proposals: int = 64,
    *,
    num_tuples: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Sampling-importance-resampling of k-tuples for a non-separable hardening η.

    For each anchor (and each of `num_tuples` tuples) R = `num_proposals` candidate
    k-tuples are drawn i.i.d. from the reference (uniform over the candidates), and one
    is kept with probability ∝ η(s_{i,n_1}, ..., s_{i,n_k}) of the anchor-negative
    similarities. As R → ∞ the kept tuple is distributed as the η-harder negatives of
    [HN Def. 3-4] (for finite R the selection is the usual SIR approximation, with bias
    O(1/R)).

    `eta_fn` returns log η: the weights are normalized in log space
    (`jax.random.categorical` on log η), so no η overflows or underflows; return −inf
    where η = 0 (pass `lambda t: jnp.log(eta(t))` for a function η). If all R
    proposals of a tuple have η = 0 the tuple is chosen uniformly among them (the
    reference distribution) and counted.

    Cost: O(N T R k) for the proposals plus N T R evaluations of η on k arguments, with
    T = num_tuples (1 if None); memory O(N T R k).

    Args:
      key: PRNG key.
      sims: anchor-candidate similarities s_im, shape (N, M). No gradient flows.
      candidate_mask: bool (N, M), the support of the reference distribution.
      k: negatives per tuple (static int >= 1).
      eta_fn: maps similarities of shape (..., k) to log η, shape (...); argument-wise
        non-decreasing for a hardening function [HN Def. 2].
      num_proposals: R >= 1, proposals per drawn tuple.
      num_tuples: if given, independent tuples per anchor (output (N, num_tuples, k)).

    Returns:
      (idx, num_fallback): idx int32 (N, k) or (N, num_tuples, k); num_fallback an int32
      scalar, the number of tuples (of anchors with candidates) whose proposals all had
      η = 0.

    Raises:
      ValueError: for k or num_proposals < 1, an `eta_fn` that is not callable or returns
        the wrong shape, or mismatched shapes.

    References:
      [HN Def. 2-4]; Rubin (1988), "Using the SIR algorithm to simulate posterior
      distributions"; docs/math.md §5.
    """
    check_k(k, caller="sir_sample")
    check_k(num_proposals, caller="sir_sample", arg="num_proposals")
    if num_tuples is not None:
        check_k(num_tuples, caller="sir_sample", arg="num_tuples")
    if not callable(eta_fn):
        raise ValueError(
            f"sir_sample: eta_fn={eta_fn!r} must be a callable mapping (..., k) "
            "similarities to log η of shape (...)."
        )
    sims = jax.lax.stop_gradient(jnp.asarray(sims))
    candidate_mask = jnp.asarray(candidate_mask, dtype=bool)
    _check_sims("sir_sample", sims, candidate_mask)
    num_rows = sims.shape[0]
    tuples = 1 if num_tuples is None else int(num_tuples)
    r = int(num_proposals)
    # Check eta_fn's output shape abstractly, before any sampling work.
    proposal_shape = jax.ShapeDtypeStruct((num_rows, tuples, r, int(k)), sims.dtype)
    eta_shape = jax.eval_shape(eta_fn, proposal_shape).shape
    if eta_shape != (num_rows, tuples, r):
        raise ValueError(
            f"sir_sample: eta_fn must reduce the last axis, mapping shape "
            f"{proposal_shape.shape} to {(num_rows, tuples, r)}; it returns shape {eta_shape}."
        )
    proposal_key, select_key = jax.random.split(key)
    log_q0, _, has_candidates = _tilted_log_probs(sims, candidate_mask, "none", 0.0, 1.0)
    proposals = _draw_from_log_probs(proposal_key, log_q0, tuples * r * int(k), "inverse_cdf")
    s_prop = jnp.take_along_axis(sims, proposals, axis=1).reshape(num_rows, tuples, r, k)
    proposals = proposals.reshape(num_rows, tuples, r, k)
    log_eta = jnp.asarray(eta_fn(s_prop))
    log_eta = jnp.where(jnp.isnan(log_eta), -jnp.inf, log_eta)
    all_zero = jnp.all(log_eta == -jnp.inf, axis=-1)
    logits = jnp.where(all_zero[..., None], jnp.zeros_like(log_eta), log_eta)
    choice = jax.random.categorical(select_key, logits, axis=-1)  # (N, T)
    idx = jnp.take_along_axis(proposals, choice[:, :, None, None], axis=2)[:, :, 0, :]
    num_fallback = jnp.sum(all_zero & has_candidates[:, None]).astype(jnp.int32)
    if num_tuples is None:
        idx = idx[:, 0, :]
    return idx.astype(jnp.int32), num_fallback


# ----------------------------------------------------------------------------------------
# Hardening functions η(t_1..t_k) by name, for SIR.


def _eta_exponential(beta: Any = 0.0, **_: Any) -> Callable[[jax.Array], jax.Array]:
    # η = Π_m exp(β t_m): separable; through SIR it converges to the exact tilted draw.
    return lambda t: beta * jnp.sum(t, axis=-1)


def _eta_polynomial(epsilon: Any = 1.0, **_: Any) -> Callable[[jax.Array], jax.Array]:
    # η = Π_m max(t_m + 1, 0)^ε [HN App. B.4]; log h is −inf where a factor is 0.
    return lambda t: jnp.sum(log_hardening(t, "polynomial", 0.0, epsilon), axis=-1)


def _eta_truncated(
    beta: Any = 0.0, threshold: Any = 0.0, **_: Any
) -> Callable[[jax.Array], jax.Array]:
    # η = exp(β Σ_m t_m) · 1[max_m t_m ≥ threshold]: only tuples holding at least one
    # negative at least as similar as `threshold`. Not separable; non-negative and
    # argument-wise non-decreasing, so a hardening function of [HN Def. 2].
    def log_eta(t):
        hard_enough = jnp.max(t, axis=-1) >= threshold
        return jnp.where(hard_enough, beta * jnp.sum(t, axis=-1), -jnp.inf)

    return log_eta


_ETA_FACTORIES: dict[str, Callable[..., Callable[[jax.Array], jax.Array]]] = {
    "exponential": _eta_exponential,
    "polynomial": _eta_polynomial,
    "truncated": _eta_truncated,
}
ETAS = tuple(_ETA_FACTORIES)


def register_eta(name: str, factory: Callable[..., Callable[[jax.Array], jax.Array]]) -> None:
    """Adds a named hardening η to the registry `make_eta` reads.

    Args:
      name: the registry name (not containing ":", which marks an import hook).
      factory: called as factory(beta=..., epsilon=..., threshold=...) (accept **kwargs
        for the ones it ignores); returns a callable mapping similarities (..., k) to
        log η, shape (...), argument-wise non-decreasing.

    Raises:
      ValueError: for a name with ":" or a factory that is not callable.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(
            f"register_eta: name={name!r} must be a non-empty string without ':' (a ':' "
            "names an import hook 'module:function')."
        )
    if not callable(factory):
        raise ValueError(f"register_eta: factory={factory!r} must be callable.")
    _ETA_FACTORIES[name] = factory


def resolve_eta_hook(spec: str) -> Callable[[jax.Array], jax.Array]:
    """Imports the log η callable named by "package.module:function".

    Raises:
      ValueError: if the module cannot be imported, has no such attribute, or the
        attribute is not callable.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"eta={spec!r}: an import hook must read 'package.module:function'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"eta={spec!r}: cannot import module {module_name!r} ({err}).") from err
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ValueError(f"eta={spec!r}: module {module_name!r} has no attribute {attr!r}.")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValueError(f"eta={spec!r}: {attr!r} is not callable.")
    return fn


def make_eta(
    name: str, *, beta: Any = 0.0, epsilon: Any = 1.0, threshold: Any = 0.0
) -> Callable[[jax.Array], jax.Array]:
    """The log η callable of a named hardening function, for `sir_sample` / `eta_fn`.

      name              η(t_1..t_k)
      "exponential"     exp(β Σ_m t_m) (separable; SIR approximates the exact tilt)
      "polynomial"      Π_m max(t_m + 1, 0)^ε
      "truncated"       exp(β Σ_m t_m) · 1[max_m t_m ≥ threshold] (non-separable)
      "pkg.module:fn"   the imported callable itself, already a log η (no parameters)

    plus any name added with `register_eta`. β may be traced (a schedule).

    Args:
      name: a registry name (`ETAS` or registered) or a "module:function" hook.
      beta: β ≥ 0 (exponential, truncated).
      epsilon: ε > 0 (polynomial).
      threshold: the similarity a tuple's hardest negative must reach (truncated).

    Returns:
      A callable mapping similarities (..., k) to log η (...).

    Raises:
      ValueError: for an unknown name, β < 0, ε ≤ 0, or a hook that cannot be imported.

    References:
      [HN Def. 2-4, App. B.4]; docs/math.md §5.
    """
    if isinstance(name, str) and ":" in name:
        return resolve_eta_hook(name)
    if name not in _ETA_FACTORIES:
        raise ValueError(
            f"make_eta: name={name!r} is not a registered hardening; use one of "
            f"{tuple(_ETA_FACTORIES)}, a 'package.module:function' hook returning log η, "
            "or add it with hardening.register_eta."
        )
    check_hardening_args("exponential", beta, epsilon, caller="make_eta")
    return _ETA_FACTORIES[name](beta=beta, epsilon=epsilon, threshold=threshold)


# ----------------------------------------------------------------------------------------
# β as a function of the step.


def beta_schedule(
    step: ArrayLike,
    kind: str = "constant",
    *,
    beta: float,
    beta_start: float = 0.0,
    num_steps: int = 1,
) -> Any:
    """The hardness β at a training step, traceable (no recompilation per value).

      kind         β(step), p = min(step / num_steps, 1)
      "constant"   beta (the Python number itself)
      "linear"     beta_start + (beta − beta_start) p
      "cosine"     beta_start + (beta − beta_start) (1 − cos(π p)) / 2

    beta_start < beta anneals the hardness up, beta_start > beta down; after num_steps
    steps β stays at beta.

    Args:
      step: the step (int or traced int scalar).
      kind: one of `BETA_SCHEDULES`.
      beta: the final (or constant) β ≥ 0.
      beta_start: β at step 0 (≥ 0).
      num_steps: steps from beta_start to beta, >= 1.

    Returns:
      β: `beta` for "constant", else a float32 scalar array.

    Raises:
      ValueError: for an unknown kind, β < 0 or num_steps < 1.
    """
    _utils.check_choice("beta_schedule", "kind", kind, BETA_SCHEDULES)
    check_hardening_args("exponential", beta, 1.0, caller="beta_schedule")
    if kind == "constant":
        return beta
    check_hardening_args("exponential", beta_start, 1.0, caller="beta_schedule")
    check_k(num_steps, caller="beta_schedule", arg="num_steps")
    p = jnp.clip(jnp.asarray(step, jnp.float32) / float(num_steps), 0.0, 1.0)
    w = p if kind == "linear" else 0.5 * (1.0 - jnp.cos(jnp.pi * p))
    return beta_start + (beta - beta_start) * w
