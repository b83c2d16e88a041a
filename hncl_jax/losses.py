"""The supervised and unsupervised (hard-negative) contrastive losses of [HN].

* `contrastive_loss` — SCL, HSCL, UCL and HUCL (docs/math.md §3-6) with the paper's sampled
  estimator (Algorithm 1, per-anchor or per-pair draws) or the deterministic k → ∞
  "reweighted" estimator.
* `simclr_form_loss` — the large-k SimCLR form of [HN eq. 42] (docs/math.md §7).

Conventions (docs/math.md §0): z (N, d) are already normalized (`geometry.normalize`);
similarities s_ij = z_i · z_j at unit temperature; t = s(anchor, negative) −
s(anchor, positive). Positives are decided by `positive_ids`, candidate negatives by
`labels` (SCL/HSCL: other classes) or by nothing (UCL/HUCL: the whole batch). Everything
is one traceable function of z: shapes are static, masks are built with `where`, no value
leaves the device. Arguments are checked at trace time with `ValueError`.

References:
  [HN] Jiang et al., "Hard-Negative Sampling for Contrastive Learning: Optimal
  Representation Geometry and Neural- vs Dimensional-Collapse"
  (earlier version: arXiv:2209.00078), Def. 1-4,
  Algorithm 1, eq. 42.
  [R21] Robinson, Chuang, Sra, Jegelka, "Contrastive Learning with Hard Negative
  Samples", ICLR 2021 (importance reweighting and its τ⁺ debiasing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hncl_jax import hardening as hard
from hncl_jax.hardening import check_hardening_args, check_k, check_psi_args

SETTINGS = ("scl", "hscl", "ucl", "hucl")
ESTIMATORS = ("sampled", "reweighted")
DRAWS = ("anchor", "pair")

_SUPERVISED = ("scl", "hscl")
_HARD = ("hscl", "hucl")


# ----------------------------------------------------------------------------------------
# Checks and shared pieces.


def _check_choice(caller: str, arg: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(
            f"{caller}: {arg}={value!r} is not supported; use one of {options} "
            f"(e.g. {arg}={options[0]!r})."
        )


def _as_embeddings(caller: str, z: ArrayLike) -> jax.Array:
    z = jnp.asarray(z)
    if z.ndim != 2 or z.shape[0] < 1:
        raise ValueError(
            f"{caller}: z must have shape (N, d) with N >= 1 (normalized embeddings); got "
            f"shape {z.shape}."
        )
    if not jnp.issubdtype(z.dtype, jnp.floating):
        raise ValueError(f"{caller}: z must be a float array; got dtype {z.dtype}.")
    # bfloat16 / float16 embeddings: the losses are computed in float32 (at least).
    return z.astype(jnp.promote_types(z.dtype, jnp.float32))


def _as_ids(caller: str, arg: str, ids: ArrayLike, n: int) -> jax.Array:
    ids = jnp.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(
            f"{caller}: {arg} must have shape (N,) = ({n},) to match z; got shape {ids.shape}."
        )
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(f"{caller}: {arg} must be an integer array; got dtype {ids.dtype}.")
    return ids


def _similarities(z: jax.Array) -> jax.Array:
    # HIGHEST: on GPUs the default float32 matmul may run in TF32 (~1e-3 relative error),
    # which would blur the Theorem 2/3 minima; the (N, N, d) product is cheap.
    return jnp.matmul(z, z.T, precision=jax.lax.Precision.HIGHEST)


def _positive_mask(positive_ids: jax.Array, self_positive: bool) -> jax.Array:
    mask = positive_ids[:, None] == positive_ids[None, :]
    if not self_positive:
        mask = mask & ~jnp.eye(positive_ids.shape[0], dtype=bool)
    return mask


def _masked_logsumexp(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Row-wise log Σ_{m: mask} exp(x_m); 0 for an empty row, finite gradients always."""
    nonempty = jnp.any(mask, axis=-1, keepdims=True)
    safe = jnp.where(mask, x, -jnp.inf)
    safe = jnp.where(nonempty, safe, jnp.zeros_like(x))  # an all −inf row has a NaN VJP
    return jnp.where(nonempty[:, 0], jax.nn.logsumexp(safe, axis=-1), 0.0)


def _reduce(
    pair_loss: jax.Array, positives: jax.Array, candidates: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Mean over positives, then over anchors that have a positive and a candidate.

    Returns (loss, valid anchors (N,) bool, num_dropped_anchors int32).
    """
    num_pos = jnp.sum(positives, axis=-1)
    per_anchor = jnp.sum(jnp.where(positives, pair_loss, 0.0), axis=-1) / jnp.maximum(num_pos, 1)
    valid = (num_pos > 0) & jnp.any(candidates, axis=-1)
    num_valid = jnp.sum(valid)
    loss = jnp.sum(jnp.where(valid, per_anchor, 0.0)) / jnp.maximum(num_valid, 1)
    return loss, valid, (valid.shape[0] - num_valid).astype(jnp.int32)


# ----------------------------------------------------------------------------------------
# SCL / HSCL / UCL / HUCL.


def _sampled_pair_losses(
    key: jax.Array,
    s: jax.Array,
    candidates: jax.Array,
    *,
    psi: str,
    alpha: Any,
    hardening: str,
    beta: Any,
    epsilon: Any,
    k: int,
    draw: str,
    eta_fn: Callable | None,
    num_proposals: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """ℓ_ij of Algorithm 1 for every (i, j), shape (N, N), and fallbacks.

    Returns (pair_loss, fallback (N,) bool per anchor for separable hardening, and the
    int32 number of SIR tuples that fell back with `eta_fn`).
    """
    n = s.shape[0]
    s_fixed = jax.lax.stop_gradient(s)
    num_tuples = None if draw == "anchor" else n
    num_fallback = jnp.zeros((), dtype=jnp.int32)
    if eta_fn is None:
        _, fallback = hard.tilted_log_probs(
            s_fixed, candidates, hardening=hardening, beta=beta, epsilon=epsilon
        )
        idx, _ = hard.sample_negatives(
            key,
            s_fixed,
            candidates,
            k,
            hardening=hardening,
            beta=beta,
            epsilon=epsilon,
            num_tuples=num_tuples,
        )
    else:
        idx, num_fallback = hard.sir_sample(
            key, s_fixed, candidates, k, eta_fn, num_proposals, num_tuples=num_tuples
        )
        fallback = jnp.zeros((n,), dtype=bool)
    # Gradients flow through the gathered similarities, not through the draw.
    s_neg = jnp.take_along_axis(s, idx.reshape(n, -1), axis=1).reshape(idx.shape)
    if draw == "anchor" and psi == "infonce":
        # ψ(s_neg − s_ij) = softplus(A_i − s_ij), A_i = logsumexp_m s_{i,n_m} − log k.
        a = jax.nn.logsumexp(s_neg, axis=-1) - math.log(k)
        return jax.nn.softplus(a[:, None] - s), fallback, num_fallback
    if draw == "anchor" and psi == "infonce_sum":
        lse = jax.nn.logsumexp(s_neg, axis=-1)
        log_alpha = jnp.log(jnp.asarray(alpha, dtype=s.dtype))
        return jnp.logaddexp(log_alpha, lse[:, None] - s), fallback, num_fallback
    if draw == "anchor":
        s_neg = s_neg[:, None, :]  # (N, 1, k), shared by the anchor's positives
    t = s_neg - s[:, :, None]  # (N, N, k)
    return hard.psi(t, psi, alpha), fallback, num_fallback


def _log_mean_negative(
    s: jax.Array,
    candidates: jax.Array,
    *,
    hardening: str,
    beta: Any,
    epsilon: Any,
    tau_plus: Any,
    grad_through_weights: bool,
) -> tuple[jax.Array, jax.Array]:
    """log E_{m ~ q_i}[exp(s_im)] (τ⁺-debiased against s_ij), (N, 1) or (N, N); fallbacks.

    The reweighted loss is then ℓ_ij = softplus(returned − s_ij).
    """
    s_weights = s if grad_through_weights else jax.lax.stop_gradient(s)
    log_q, fallback = hard.tilted_log_probs(
        s_weights, candidates, hardening=hardening, beta=beta, epsilon=epsilon
    )
    if not grad_through_weights:
        log_q = jax.lax.stop_gradient(log_q)
    # b_i = log Σ_m q_i(m) exp(s_im); entries with q = 0 (log q = −inf) are masked out.
    b = _masked_logsumexp(log_q + s, candidates & (log_q > -jnp.inf))
    log_neg = b[:, None]
    tp = hard.concrete_scalar(tau_plus, caller="contrastive_loss", arg="tau_plus")
    if tp is None or tp > 0:
        # [R21]: E⁻ ≈ (E_q[exp s⁻] − τ⁺ exp s⁺) / (1 − τ⁺), clipped below at e^{-1} (the
        # smallest exp(s) at unit temperature on the sphere); in log space around
        # c = max(b_i, s_ij) so that nothing overflows.
        c = jnp.maximum(log_neg, s)
        debiased = jnp.exp(log_neg - c) - tau_plus * jnp.exp(s - c)
        floor = (1.0 - tau_plus) * jnp.exp(-1.0 - c)
        inner = jnp.maximum(debiased, floor)
        tiny = jnp.finfo(s.dtype).tiny
        log_neg = c + jnp.log(jnp.maximum(inner, tiny)) - jnp.log1p(-tau_plus)
    return log_neg, fallback


def contrastive_loss(
    z: ArrayLike,
    labels: ArrayLike,
    key: jax.Array | None = None,
    *,
    setting: str,
    psi: str = "infonce",
    alpha: float = 1.0,
    hardening: str = "exponential",
    beta: float = 0.0,
    epsilon: float = 1.0,
    k: int = 256,
    estimator: str = "sampled",
    draw: str = "anchor",
    positive_ids: ArrayLike | None = None,
    self_positive: bool = True,
    exclude_anchor: bool = False,
    tau_plus: float = 0.0,
    grad_through_weights: bool = False,
    eta_fn: Callable[[jax.Array], jax.Array] | None = None,
    num_proposals: int = 64,
    return_aux: bool = False,
) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
    """The SCL, HSCL, UCL and HUCL losses of [HN] on one batch (docs/math.md §3-6).

    For anchor i and each positive j (positive_ids[j] == positive_ids[i]; j = i only if
    `self_positive`), k negatives n_1..n_k are drawn i.i.d. from the tilted distribution
    q_i(m) ∝ h(s_im) over the candidates of i, and

        ℓ_ij = ψ_k(s_{i,n_1} − s_ij, ..., s_{i,n_k} − s_ij).

    The anchor's loss is the mean of ℓ_ij over its positives, the batch loss the mean over
    anchors (Algorithm 1 lines 17-29). Candidates: SCL/HSCL the examples of other classes
    (by `labels`); UCL/HUCL the whole batch, the anchor included unless `exclude_anchor`.
    Settings "scl"/"ucl" use no hardening (β, ε, `hardening` ignored); "hscl"/"hucl" use
    h = `hardening` (and β = 0 gives exactly SCL/UCL for the same key). An anchor with no
    positive or no candidate is left out of the mean (a batch with none gives 0).

    Estimators and their cost (N anchors, d dimensions, k negatives):

    * "sampled", draw="anchor" (default): one draw of k per anchor shared by all its
      positives; each ℓ_ij has the distribution of Algorithm 1's. For InfoNCE
      ℓ_ij = softplus(A_i − s_ij), A_i = logsumexp_m s_{i,n_m} − log k ("infonce_sum"
      likewise): time O(N²d + N² + N k log N), memory O(N² + N k). "triplet" needs the
      (N, N, k) arguments: time and memory O(N²k).
    * "sampled", draw="pair": fresh k draws for every (i, j), exactly Algorithm 1 line 20:
      time O(N²d + N²k log N), memory O(N²k).
    * "reweighted" (InfoNCE only): the k → ∞ limit,
      ℓ_ij = log(1 + Σ_m q_i(m) exp(s_im − s_ij)); deterministic (no key needed);
      time O(N²d), memory O(N²). With exponential h it is the importance weighting of
      [R21]; `tau_plus` > 0 adds their debiasing.
    * `eta_fn` (sampled only): a non-separable hardening η(t_1..t_k), sampled by SIR
      (`hardening.sir_sample`) from `num_proposals` = R reference k-tuples: time and
      memory O(N R k) per anchor draw, O(N² R k) with draw="pair".

    Negatives are drawn with `hardening.sample_negatives` (inverse CDF in log space, no
    gradient through the draw); gradients flow through the similarities.

    Args:
      z: normalized embeddings, shape (N, d) (see `geometry.normalize`).
      labels: int (N,) class labels; they decide the SCL/HSCL candidates and are the
        default positive ids (latent labels in the unsupervised settings).
      key: PRNG key for the sampled estimator (unused by "reweighted").
      setting: one of `SETTINGS`.
      psi: one of `hardening.PSIS`.
      alpha: α > 0 of "infonce_sum" and "triplet".
      hardening: one of `hardening.HARDENINGS` (hscl/hucl only).
      beta: β ≥ 0 of exponential hardening.
      epsilon: ε > 0 of polynomial hardening.
      k: negatives per anchor (static int >= 1; unused by "reweighted").
      estimator: one of `ESTIMATORS`.
      draw: one of `DRAWS` (sampled only).
      positive_ids: int (N,); defaults to `labels`. For two views of B examples use
        z = concat(view1, view2), positive_ids = concat(arange(B), arange(B)),
        self_positive=False.
      self_positive: whether an anchor is its own positive (Algorithm 1 line 19 runs over
        all j, so True for label positives).
      exclude_anchor: UCL/HUCL: leave the anchor out of its own candidates.
      tau_plus: τ⁺ ∈ [0, 1), class-prior debiasing of [R21] (reweighted only).
      grad_through_weights: reweighted only: let the gradient flow through q_i (off by
        default, as the papers detach the sampling probabilities).
      eta_fn: optional non-separable hardening for hscl/hucl, returning **log η** of the
        anchor-negative similarities (..., k) -> (...); replaces `hardening`.
      num_proposals: SIR proposals per drawn tuple when `eta_fn` is given.
      return_aux: also return the aux dict.

    Returns:
      The scalar loss, or (loss, aux) with aux = {"num_dropped_anchors": anchors left out
      of the mean, "num_fallback": kept anchors whose candidates all had h = 0 and were
      sampled/weighted uniformly (with `eta_fn`: drawn tuples whose R proposals all had
      η = 0)} (int32 scalars).

    Raises:
      ValueError: for unknown names, β < 0, ε ≤ 0, α ≤ 0, k < 1, τ⁺ ∉ [0, 1), a missing
        key, "reweighted" with a ψ other than InfoNCE, or mismatched shapes.

    Example:
      >>> z = geometry.normalize(f, "unit_ball")
      >>> loss = contrastive_loss(z, y, key, setting="hscl", beta=10.0, k=256)

    References:
      [HN Def. 1-4, Algorithm 1, Thm 1-3]; [R21 eq. 5 and code]; docs/math.md §3-6.
    """
    caller = "contrastive_loss"
    _check_choice(caller, "setting", setting, SETTINGS)
    _check_choice(caller, "estimator", estimator, ESTIMATORS)
    _check_choice(caller, "draw", draw, DRAWS)
    check_psi_args(psi, alpha, caller=caller)
    check_hardening_args(hardening, beta, epsilon, caller=caller)
    check_k(k, caller=caller)
    check_k(num_proposals, caller=caller, arg="num_proposals")
    if estimator == "reweighted" and psi != "infonce":
        raise ValueError(
            f"{caller}: estimator='reweighted' is the k → ∞ limit of InfoNCE (mean form) only; "
            f"got psi={psi!r}. Use psi='infonce' or estimator='sampled'."
        )
    tp = hard.concrete_scalar(tau_plus, caller=caller, arg="tau_plus")
    if tp is not None and not 0.0 <= tp < 1.0:
        raise ValueError(
            f"{caller}: tau_plus={tau_plus!r} must lie in [0, 1) (the class prior τ⁺ of "
            "[R21]); use tau_plus=0.0 for no debiasing."
        )
    if (tp is None or tp > 0) and estimator != "reweighted":
        raise ValueError(
            f"{caller}: tau_plus={tau_plus!r} debiases the reweighted estimator only; set "
            "estimator='reweighted' or tau_plus=0.0."
        )
    if eta_fn is not None:
        if not callable(eta_fn):
            raise ValueError(f"{caller}: eta_fn={eta_fn!r} must be a callable returning log η.")
        if estimator != "sampled" or setting not in _HARD:
            raise ValueError(
                f"{caller}: eta_fn (a non-separable hardening) needs estimator='sampled' and "
                f"setting 'hscl' or 'hucl'; got estimator={estimator!r}, setting={setting!r}."
            )
    if estimator == "sampled" and key is None:
        raise ValueError(
            f"{caller}: key=None, but estimator='sampled' draws negatives; pass a PRNG key "
            "(e.g. jax.random.key(0)) or use estimator='reweighted'."
        )
    z = _as_embeddings(caller, z)
    n = z.shape[0]
    labels = _as_ids(caller, "labels", labels, n)
    positive_ids = labels if positive_ids is None else positive_ids
    positive_ids = _as_ids(caller, "positive_ids", positive_ids, n)

    if setting not in _HARD:
        hardening, beta, epsilon = "none", 0.0, 1.0
    s = _similarities(z)
    positives = _positive_mask(positive_ids, self_positive)
    if setting in _SUPERVISED:
        candidates = labels[:, None] != labels[None, :]
    else:
        candidates = jnp.ones((n, n), dtype=bool)
        if exclude_anchor:
            candidates = candidates & ~jnp.eye(n, dtype=bool)

    num_sir_fallback = jnp.zeros((), dtype=jnp.int32)
    if estimator == "sampled":
        pair_loss, fallback, num_sir_fallback = _sampled_pair_losses(
            key,
            s,
            candidates,
            psi=psi,
            alpha=alpha,
            hardening=hardening,
            beta=beta,
            epsilon=epsilon,
            k=int(k),
            draw=draw,
            eta_fn=eta_fn,
            num_proposals=int(num_proposals),
        )
    else:
        log_neg, fallback = _log_mean_negative(
            s,
            candidates,
            hardening=hardening,
            beta=beta,
            epsilon=epsilon,
            tau_plus=tau_plus,
            grad_through_weights=grad_through_weights,
        )
        pair_loss = jax.nn.softplus(log_neg - s)
    loss, valid, num_dropped = _reduce(pair_loss, positives, candidates)
    if not return_aux:
        return loss
    aux = {
        "num_dropped_anchors": num_dropped,
        "num_fallback": jnp.sum(fallback & valid).astype(jnp.int32) + num_sir_fallback,
    }
    return loss, aux


# ----------------------------------------------------------------------------------------
# SimCLR form [HN eq. 42].


def simclr_form_loss(
    z: ArrayLike,
    positive_ids: ArrayLike,
    key: jax.Array | None = None,
    *,
    beta: float = 0.0,
    hardening: str = "exponential",
    epsilon: float = 1.0,
    self_positive: bool = False,
    grad_through_weights: bool = False,
    return_aux: bool = False,
) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
    """The SimCLR-form loss of [HN eq. 42], with uniform or tilted negatives (docs/math.md §7).

        ℓ_ij = log(1 + Q · E_{m ~ q_i}[exp(s_im)] / exp(s_ij)),   Q = N − 2,

    where N is the number of views in the batch, the negatives of anchor i are the other
    views that are not its positives (positive_ids[m] ≠ positive_ids[i]; for two views
    of B examples these are the Q = 2B − 2 views of other examples), and q_i is uniform
    (β = 0 or hardening "none") or tilted, q_i(m) ∝ h(s_im). The expectation is exact,
    not sampled; with uniform q the loss is the NT-Xent loss at unit temperature with the
    positive removed from the denominator's negatives sum. The anchor's loss is the mean
    over its positives (j ≠ i unless `self_positive`), the batch loss the mean over
    anchors with a positive and a negative.

    Cost: time O(N²d), memory O(N²).

    Args:
      z: normalized embeddings, shape (N, d).
      positive_ids: int (N,); the views convention is z = concat(view1, view2),
        positive_ids = concat(arange(B), arange(B)).
      key: unused (the expectation is exact); accepted so that every objective shares a
        call signature.
      beta: β ≥ 0 of exponential hardening.
      hardening: one of `hardening.HARDENINGS`.
      epsilon: ε > 0 of polynomial hardening.
      self_positive: whether an anchor is its own positive.
      grad_through_weights: let the gradient flow through q_i (off by default).
      return_aux: also return {"num_dropped_anchors", "num_fallback"}.

    Returns:
      The scalar loss, or (loss, aux).

    References:
      [HN App. B.5, eq. 42]; SimCLR (Chen et al. 2020); [R21]; docs/math.md §7.
    """
    del key
    caller = "simclr_form_loss"
    check_hardening_args(hardening, beta, epsilon, caller=caller)
    z = _as_embeddings(caller, z)
    n = z.shape[0]
    positive_ids = _as_ids(caller, "positive_ids", positive_ids, n)
    s = _similarities(z)
    positives = _positive_mask(positive_ids, self_positive)
    negatives = positive_ids[:, None] != positive_ids[None, :]
    log_neg, fallback = _log_mean_negative(
        s,
        negatives,
        hardening=hardening,
        beta=beta,
        epsilon=epsilon,
        tau_plus=0.0,
        grad_through_weights=grad_through_weights,
    )
    # log(1 + Q E[exp s⁻] / exp s⁺) = softplus(log E[exp s⁻] + log Q − s⁺). Q >= 1 whenever
    # an anchor has both a positive and a negative (N >= 3); other anchors are dropped.
    pair_loss = jax.nn.softplus(log_neg + math.log(max(n - 2, 1)) - s)
    loss, valid, num_dropped = _reduce(pair_loss, positives, negatives)
    if not return_aux:
        return loss
    aux = {
        "num_dropped_anchors": num_dropped,
        "num_fallback": jnp.sum(fallback & valid).astype(jnp.int32),
    }
    return loss, aux
