"""The supervised and unsupervised (hard-negative) contrastive losses of [HN].

* `contrastive_loss` — SCL, HSCL, UCL and HUCL (docs/math.md §3-6) with the paper's sampled
  estimator (Algorithm 1, per-anchor or per-pair draws) or the deterministic k → ∞
  "reweighted" estimator.
* `simclr_form_loss` — the large-k SimCLR form of [HN eq. 42] (docs/math.md §7).
* `contrastive_loss_with_aux`, `simclr_form_loss_with_aux` — the same losses, returned
  as (loss, aux) with the counts of dropped and fallback anchors and, on request, the
  hard-negative diagnostics; their docstrings document every option. The plain
  functions take the same options and always return the scalar loss.

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

import functools
import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from hncl_jax import _loss_utils as _utils
from hncl_jax import checks
from hncl_jax import hardening as hard
from hncl_jax.hardening import check_hardening_args, check_k, check_psi_args

SETTINGS = ("scl", "hscl", "ucl", "hucl")
ESTIMATORS = ("sampled", "reweighted")
# The ψ each estimator implements: the reweighted one is InfoNCE's k → ∞ limit only.
ESTIMATOR_PSIS = {"sampled": _utils.PSIS, "reweighted": ("infonce",)}
DRAWS = ("anchor", "pair")
REDUCTIONS = ("anchor_mean", "pair_mean")
Q_MODES = ("batch", "negatives")

# The settings whose positives and negatives come from labels.
SUPERVISED_SETTINGS = ("scl", "hscl")
_HARD = ("hscl", "hucl")


# ----------------------------------------------------------------------------------------
# Checks and shared pieces.


def _as_embeddings(caller: str, z: ArrayLike) -> jax.Array:
    """z as a float array of at least float32 (bfloat16 / float16 are promoted)."""
    z = jnp.asarray(z)
    _utils.check_embeddings(caller, z)
    return z.astype(jnp.promote_types(z.dtype, jnp.float32))


def _as_ids(caller: str, arg: str, ids: ArrayLike, n: int) -> jax.Array:
    ids = jnp.asarray(ids)
    _utils.check_ids(caller, arg, ids, n)
    return ids


def _check_traced(
    caller: str,
    z: jax.Array,
    *,
    beta: Any = 0.0,
    epsilon: Any = 1.0,
    alpha: Any = 1.0,
    psi: str = "infonce",
    tau_plus: Any = 0.0,
) -> None:
    """Checked mode (`hncl_jax.checks`): the checks a traced argument escapes.

    Without checked mode a traced β that is NaN or < 0, ε ≤ 0, α ≤ 0 or τ⁺ ∉ [0, 1) is
    not detected and the loss is meaningless (NaN, inf, or a finite wrong value).
    """
    checks.finite(caller, "z", z)
    checks.in_range(caller, "beta", beta, low=0.0, high=math.inf, high_open=True)
    checks.in_range(caller, "epsilon", epsilon, low=0.0, low_open=True)
    checks.in_range(caller, "tau_plus", tau_plus, low=0.0, high=1.0, high_open=True)
    if psi != "infonce":
        checks.in_range(caller, "alpha", alpha, low=0.0, low_open=True)


def _similarities(z: jax.Array) -> jax.Array:
    # HIGHEST: on GPUs the default float32 matmul may run in TF32 (~1e-3 relative error),
    # which would blur the Theorem 2/3 minima; the (N, N, d) product is cheap.
    return jnp.matmul(z, z.T, precision=jax.lax.Precision.HIGHEST)


def _positive_mask(positive_ids: jax.Array, self_positive: bool) -> jax.Array:
    mask = positive_ids[:, None] == positive_ids[None, :]
    if not self_positive:
        mask = mask & ~jnp.eye(positive_ids.shape[0], dtype=bool)
    return mask


def _reduce(
    pair_loss: jax.Array,
    positives: jax.Array,
    candidates: jax.Array,
    reduction: str = "anchor_mean",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Reduces ℓ_ij over the anchors that have a positive and a candidate.

    "anchor_mean" is Algorithm 1 lines 27-29; see `_loss_utils.mean_over_positives`.
    Returns (loss, valid anchors (N,) bool, num_dropped_anchors int32).
    """
    return _utils.mean_over_positives(pair_loss, positives, jnp.any(candidates, axis=-1), reduction)


def _check_temperature(caller: str, temperature: Any) -> None:
    note = "the similarities are divided by it; 1.0 is the papers' unit temperature"
    _utils.check_scalar(caller, "temperature", temperature, note=note, example=1.0)


def _scaled(s: jax.Array, temperature: Any) -> jax.Array:
    """s / τ; the unit temperature returns s itself, so τ = 1 is bit-identical to no τ."""
    if _utils.concrete_scalar(temperature, caller="temperature", arg="temperature") == 1.0:
        return s
    return s / temperature


def _negative_diagnostics(
    s: jax.Array,
    candidates: jax.Array,
    labels: jax.Array,
    valid: jax.Array,
    log_q: jax.Array | None,
    idx: jax.Array | None,
) -> dict[str, jax.Array]:
    """Hard-negative diagnostics, means over the kept anchors, without gradient.

    * "neg_collision": share of the negatives that carry the anchor's label (for UCL/HUCL
      the latent class: the class collision [HN §4] blames for HUCL's gap); drawn
      negatives with `idx`, else the q_i-expected share.
    * "neg_sim_drawn" / "neg_sim_uniform": mean anchor-negative similarity of the drawn
      (or q_i-weighted) negatives, and of the uniform reference over the candidates.
    * "neg_ess", "neg_ess_fraction", "neg_entropy" (with `log_q`): the effective sample
      size 1 / Σ_m q_i(m)² of the tilted distribution, the same divided by the number of
      candidates (1 = uniform), and its entropy in nats.
    """
    s = jax.lax.stop_gradient(s)
    n = s.shape[0]
    same = labels[:, None] == labels[None, :]
    num_cand = jnp.sum(candidates, axis=-1)
    per_anchor = {
        "neg_sim_uniform": jnp.sum(jnp.where(candidates, s, 0.0), axis=-1)
        / jnp.maximum(num_cand, 1)
    }
    if log_q is not None:
        log_q = jax.lax.stop_gradient(jnp.where(candidates, log_q, -jnp.inf))
        q = jnp.exp(log_q)
        ess = 1.0 / jnp.maximum(jnp.sum(jnp.square(q), axis=-1), jnp.finfo(s.dtype).tiny)
        per_anchor["neg_ess"] = ess
        per_anchor["neg_ess_fraction"] = ess / jnp.maximum(num_cand, 1)
        per_anchor["neg_entropy"] = -jnp.sum(jnp.where(q > 0, q * log_q, 0.0), axis=-1)
    if idx is not None:
        flat = idx.reshape(n, -1)
        per_anchor["neg_collision"] = jnp.mean(jnp.take_along_axis(same, flat, axis=1), axis=-1)
        per_anchor["neg_sim_drawn"] = jnp.mean(jnp.take_along_axis(s, flat, axis=1), axis=-1)
    else:
        per_anchor["neg_collision"] = jnp.sum(jnp.where(same, q, 0.0), axis=-1)
        per_anchor["neg_sim_drawn"] = jnp.sum(jnp.where(candidates, q * s, 0.0), axis=-1)
    num_valid = jnp.maximum(jnp.sum(valid), 1)
    return {
        name: jnp.sum(jnp.where(valid, value, 0.0)) / num_valid
        for name, value in sorted(per_anchor.items())
    }


# ----------------------------------------------------------------------------------------
# SCL / HSCL / UCL / HUCL: the two estimators.


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
    s_loss: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array | None]:
    """ℓ_ij of Algorithm 1 for every (i, j), shape (N, N), and fallbacks.

    Negatives are drawn with the similarities `s`; the ψ arguments are those of `s_loss`
    (s / τ with a temperature, else `s` itself).

    Returns (pair_loss, fallback (N,) bool per anchor for separable hardening, the int32
    number of SIR tuples that fell back with `eta_fn`, the drawn indices, and log q_i
    (None with `eta_fn`)).
    """
    n = s.shape[0]
    s_fixed = jax.lax.stop_gradient(s)
    num_tuples = None if draw == "anchor" else n
    num_fallback = jnp.zeros((), dtype=jnp.int32)
    log_q = None
    if eta_fn is None:
        log_q, fallback = hard.tilted_log_probs(
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
    extra = (fallback, num_fallback, idx, log_q)
    s = s_loss
    # Gradients flow through the gathered similarities, not through the draw.
    s_neg = jnp.take_along_axis(s, idx.reshape(n, -1), axis=1).reshape(idx.shape)
    if draw == "anchor" and psi == "infonce":
        # ψ(s_neg − s_ij) = softplus(A_i − s_ij), A_i = logsumexp_m s_{i,n_m} − log k.
        a = jax.nn.logsumexp(s_neg, axis=-1) - math.log(k)
        return jax.nn.softplus(a[:, None] - s), *extra
    if draw == "anchor" and psi == "infonce_sum":
        lse = jax.nn.logsumexp(s_neg, axis=-1)
        log_alpha = jnp.log(jnp.asarray(alpha, dtype=s.dtype))
        return jnp.logaddexp(log_alpha, lse[:, None] - s), *extra
    if draw == "anchor":
        s_neg = s_neg[:, None, :]  # (N, 1, k), shared by the anchor's positives
    t = s_neg - s[:, :, None]  # (N, N, k)
    return hard.psi(t, psi, alpha), *extra


def _log_mean_negative(
    s: jax.Array,
    candidates: jax.Array,
    *,
    hardening: str,
    beta: Any,
    epsilon: Any,
    tau_plus: Any,
    grad_through_weights: bool,
    temperature: Any = 1.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """log E_{m ~ q_i}[exp(s_im / τ)] (τ⁺-debiased against s_ij), (N, 1) or (N, N).

    q_i is tilted by the raw similarities s (h(s_im)); the expectation is of exp(s/τ).
    The reweighted loss is then ℓ_ij = softplus(returned − s_ij / τ). Returns
    (log_neg, fallback (N,) bool, log q (N, N)).
    """
    s_weights = s if grad_through_weights else jax.lax.stop_gradient(s)
    log_q, fallback = hard.tilted_log_probs(
        s_weights, candidates, hardening=hardening, beta=beta, epsilon=epsilon
    )
    if not grad_through_weights:
        log_q = jax.lax.stop_gradient(log_q)
    log_q_out = log_q
    s = _scaled(s, temperature)
    min_logit = -1.0 / temperature  # exp(s/τ) >= e^{-1/τ} on the unit sphere
    # b_i = log Σ_m q_i(m) exp(s_im); entries with q = 0 (log q = −inf) are masked out.
    b, _ = _utils.masked_logsumexp(log_q + s, candidates & (log_q > -jnp.inf))
    log_neg = b[:, None]
    tp = _utils.concrete_scalar(tau_plus, caller="contrastive_loss", arg="tau_plus")
    if tp is None or tp > 0:
        # [R21]: E⁻ ≈ (E_q[exp s⁻] − τ⁺ exp s⁺) / (1 − τ⁺), clipped below at e^{-1/τ} (the
        # smallest exp(s/τ) on the sphere); in log space around c = max(b_i, s_ij) so that
        # nothing overflows.
        c = jnp.maximum(log_neg, s)
        debiased = jnp.exp(log_neg - c) - tau_plus * jnp.exp(s - c)
        floor = (1.0 - tau_plus) * jnp.exp(min_logit - c)
        inner = jnp.maximum(debiased, floor)
        tiny = jnp.finfo(s.dtype).tiny
        log_neg = c + jnp.log(jnp.maximum(inner, tiny)) - jnp.log1p(-tau_plus)
    return log_neg, fallback, log_q_out


def _fused_reweighted_applies(
    hardening: str,
    tau_plus: Any,
    grad_through_weights: bool,
    reduction: str,
    temperature: Any,
) -> bool:
    """Whether `_fused_reweighted_loss` computes this reweighted loss (its common case)."""
    if hardening not in ("exponential", "none") or grad_through_weights:
        return False
    tp = _utils.concrete_scalar(tau_plus, caller="contrastive_loss", arg="tau_plus")
    tau = _utils.concrete_scalar(temperature, caller="contrastive_loss", arg="temperature")
    return tp == 0 and tau is not None and reduction == "anchor_mean"


def _fused_forward(z, candidates, positives, beta, inv_tau):
    """The reweighted loss's row statistics, in a few passes over s = z zᵀ.

    With exponential hardening q_i(m) ∝ exp(β s_im) on the candidates C_i, so
    b_i = log Σ_C q_i(m) exp(s_im/τ) = LSE_C((β + 1/τ) s_im) − LSE_C(β s_im), both
    shifted by the row maximum of s over C_i (β ≥ 0, τ > 0: no exponent exceeds 0).
    Counts are float sums of `where(mask, 1, 0)`, which XLA fuses into one reduction each.
    """
    s = _similarities(z)
    count = lambda mask: jnp.sum(jnp.where(mask, 1.0, 0.0), axis=-1)
    has = count(candidates) > 0
    s_max = jnp.max(jnp.where(candidates, s, -jnp.inf), axis=-1)
    s_max = jnp.where(has, s_max, 0.0)
    shifted = s - s_max[:, None]
    # `where`, not a product with the mask: off C_i, s may exceed the row maximum and exp
    # overflow (0 · inf would be NaN).
    num = jnp.sum(jnp.where(candidates, jnp.exp((beta + inv_tau) * shifted), 0.0), axis=-1)
    den = jnp.sum(jnp.where(candidates, jnp.exp(beta * shifted), 0.0), axis=-1)
    num, den = jnp.where(has, num, 1.0), jnp.where(has, den, 1.0)
    b = jnp.where(has, jnp.log(num) - jnp.log(den) + inv_tau * s_max, 0.0)
    logits = b[:, None] - inv_tau * s
    num_pos = count(positives)
    valid = has & (num_pos > 0)
    # Weight of anchor i's pairs in the loss: the mean over its positives, then over anchors.
    w = jnp.where(valid, 1.0 / jnp.maximum(num_pos, 1.0), 0.0)
    w = w / jnp.maximum(jnp.sum(jnp.where(valid, 1.0, 0.0)), 1.0)
    loss = jnp.sum(w * jnp.sum(jnp.where(positives, jax.nn.softplus(logits), 0.0), axis=-1))
    # ∂loss/∂b_i, for the backward pass.
    db = w * jnp.sum(jnp.where(positives, jax.nn.sigmoid(logits), 0.0), axis=-1)
    return loss, (s, s_max, num, b, w, db, valid)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _fused_reweighted_loss(z, candidates, positives, beta, inv_tau):
    """The reweighted SCL/HSCL/UCL/HUCL loss of z, with its own gradient.

    Equals softplus(b_i − s_ij/τ) reduced by `_reduce(..., "anchor_mean")` with b_i of
    `_log_mean_negative` (exponential hardening, τ⁺ = 0, weights without gradient), up
    to the order of float32 sums. Autodiff of that composition makes about 20 passes
    over (N, N) matrices and two (N, N) × (N, d) products in the backward; here the
    forward makes a handful of row reductions and the backward one elementwise pass and
    one product:

        ∂loss/∂s_ij = (1/τ) [db_i q̃_ij 1_C(i, j) − w_i σ(b_i − s_ij/τ) 1_P(i, j)],
        ∂loss/∂z = (∂loss/∂s + (∂loss/∂s)ᵀ) z  (one product; the masks must be symmetric),

    where q̃_ij = exp((β + 1/τ)(s_ij − max_C s_i·)) / num_i is the softmax of
    log q_i + s_i·/τ over the candidates, w_i the anchor's pair weight and db_i =
    ∂loss/∂b_i = Σ_P w_i σ(·). β ≥ 0 may be traced (it has no gradient: the weights
    q_i carry none); 1/τ is a Python float.

    Returns (loss, valid anchors (N,) bool).
    """
    loss, res = _fused_forward(z, candidates, positives, beta, inv_tau)
    return loss, res[-1]


def _fused_fwd(z, candidates, positives, beta, inv_tau):
    loss, res = _fused_forward(z, candidates, positives, beta, inv_tau)
    return (loss, res[-1]), (z, candidates, positives, beta, res)


def _fused_bwd(inv_tau, saved, cotangents):
    z, candidates, positives, beta, (s, s_max, num, b, w, db, _) = saved
    g = cotangents[0]

    def ds(rows):  # ∂loss/∂s_ij with the row statistics of i (rows=True) or of j
        at = (lambda v: v[:, None]) if rows else (lambda v: v[None, :])
        q_tilde = jnp.exp((beta + inv_tau) * (s - at(s_max))) / at(num)
        sig = jax.nn.sigmoid(at(b) - inv_tau * s)
        return jnp.where(candidates, at(db) * q_tilde, 0.0) - jnp.where(positives, at(w) * sig, 0.0)

    # s = z zᵀ gives ∂loss/∂z = (D + Dᵀ) z. s and both masks are symmetric (built from
    # label equalities), so Dᵀ_ij = D_ji is D's formula with the statistics of column j:
    # no transposed copy of an (N, N) matrix, which XLA:CPU makes slowly.
    d_sym = (g * inv_tau) * (ds(rows=True) + ds(rows=False))
    dz = jnp.matmul(d_sym, z, precision=jax.lax.Precision.HIGHEST)
    zero_mask = lambda m: np.zeros(m.shape, dtype=jax.dtypes.float0)
    return dz, zero_mask(candidates), zero_mask(positives), jnp.zeros_like(beta)


_fused_reweighted_loss.defvjp(_fused_fwd, _fused_bwd)


# ----------------------------------------------------------------------------------------
# SCL / HSCL / UCL / HUCL: the pieces of `contrastive_loss`.


def _check_contrastive_args(
    caller: str,
    key: jax.Array | None,
    *,
    setting: str,
    psi: str,
    alpha: Any,
    hardening: str,
    beta: Any,
    epsilon: Any,
    k: Any,
    estimator: str,
    draw: str,
    tau_plus: Any,
    eta_fn: Any,
    num_proposals: Any,
    temperature: Any,
    reduction: str,
) -> None:
    """The trace-time checks of `contrastive_loss`'s options (not of the arrays)."""
    _utils.check_choice(caller, "setting", setting, SETTINGS)
    _utils.check_choice(caller, "estimator", estimator, ESTIMATORS)
    _utils.check_choice(caller, "draw", draw, DRAWS)
    _utils.check_choice(caller, "reduction", reduction, REDUCTIONS)
    _check_temperature(caller, temperature)
    check_psi_args(psi, alpha, caller=caller)
    check_hardening_args(hardening, beta, epsilon, caller=caller)
    check_k(k, caller=caller)
    check_k(num_proposals, caller=caller, arg="num_proposals")
    if psi not in ESTIMATOR_PSIS[estimator]:
        raise ValueError(
            f"{caller}: estimator='reweighted' is the k → ∞ limit of InfoNCE (mean form) only; "
            f"got psi={psi!r}. Use psi='infonce' or estimator='sampled'."
        )
    tp = _utils.concrete_scalar(tau_plus, caller=caller, arg="tau_plus")
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


def _candidate_mask(setting: str, labels: jax.Array, exclude_anchor: bool) -> jax.Array:
    """(N, N) bool: SCL/HSCL the other classes; UCL/HUCL the batch (less the anchor)."""
    if setting in SUPERVISED_SETTINGS:
        return labels[:, None] != labels[None, :]
    n = labels.shape[0]
    candidates = jnp.ones((n, n), dtype=bool)
    if exclude_anchor:
        candidates = candidates & ~jnp.eye(n, dtype=bool)
    return candidates


def _estimated_pair_losses(
    key: jax.Array | None,
    s: jax.Array,
    candidates: jax.Array,
    *,
    estimator: str,
    psi: str,
    alpha: Any,
    hardening: str,
    beta: Any,
    epsilon: Any,
    k: int,
    draw: str,
    eta_fn: Callable | None,
    num_proposals: int,
    tau_plus: Any,
    grad_through_weights: bool,
    temperature: Any,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None, jax.Array | None]:
    """ℓ_ij (N, N) of the sampled or the reweighted estimator.

    Returns (pair_loss, fallback (N,) bool, the int32 number of SIR tuples that fell
    back, the drawn indices (None for "reweighted"), log q_i (None with `eta_fn`)).
    """
    if estimator == "sampled":
        return _sampled_pair_losses(
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
            s_loss=_scaled(s, temperature),
        )
    log_neg, fallback, log_q = _log_mean_negative(
        s,
        candidates,
        hardening=hardening,
        beta=beta,
        epsilon=epsilon,
        tau_plus=tau_plus,
        grad_through_weights=grad_through_weights,
        temperature=temperature,
    )
    pair_loss = jax.nn.softplus(log_neg - _scaled(s, temperature))
    return pair_loss, fallback, jnp.zeros((), dtype=jnp.int32), None, log_q


def _contrastive_loss(
    caller: str,
    z: ArrayLike,
    labels: ArrayLike,
    key: jax.Array | None,
    *,
    with_aux: bool,
    diagnostics: bool,
    setting: str,
    psi: str,
    alpha: Any,
    hardening: str,
    beta: Any,
    epsilon: Any,
    k: int,
    estimator: str,
    draw: str,
    positive_ids: ArrayLike | None,
    self_positive: bool,
    exclude_anchor: bool,
    tau_plus: Any,
    grad_through_weights: bool,
    eta_fn: Callable[[jax.Array], jax.Array] | None,
    num_proposals: int,
    temperature: Any,
    reduction: str,
) -> tuple[jax.Array, dict[str, jax.Array] | None]:
    """(loss, aux) of `contrastive_loss_with_aux`; aux is None unless `with_aux`."""
    _check_contrastive_args(
        caller,
        key,
        setting=setting,
        psi=psi,
        alpha=alpha,
        hardening=hardening,
        beta=beta,
        epsilon=epsilon,
        k=k,
        estimator=estimator,
        draw=draw,
        tau_plus=tau_plus,
        eta_fn=eta_fn,
        num_proposals=num_proposals,
        temperature=temperature,
        reduction=reduction,
    )
    z = _as_embeddings(caller, z)
    _check_traced(caller, z, beta=beta, alpha=alpha, psi=psi, epsilon=epsilon, tau_plus=tau_plus)
    n = z.shape[0]
    labels = _as_ids(caller, "labels", labels, n)
    positive_ids = labels if positive_ids is None else positive_ids
    positive_ids = _as_ids(caller, "positive_ids", positive_ids, n)

    if setting not in _HARD:
        hardening, beta, epsilon = "none", 0.0, 1.0
    positives = _positive_mask(positive_ids, self_positive)
    candidates = _candidate_mask(setting, labels, exclude_anchor)
    if estimator == "reweighted" and _fused_reweighted_applies(
        hardening, tau_plus, grad_through_weights, reduction, temperature
    ):
        # Exponential hardening never falls back (every h = exp(β s) > 0).
        inv_tau = 1.0 / float(temperature)
        beta = 0.0 if hardening == "none" else beta
        loss, valid = _fused_reweighted_loss(z, candidates, positives, beta, inv_tau)
        if not with_aux:
            return loss, None
        num_dropped = (valid.shape[0] - jnp.sum(valid)).astype(jnp.int32)
        aux = {"num_dropped_anchors": num_dropped, "num_fallback": jnp.int32(0)}
        if diagnostics:  # from q_i itself, without gradient (the loss needs no log q)
            s = jax.lax.stop_gradient(_similarities(z))
            log_q, _ = hard.tilted_log_probs(
                s, candidates, hardening=hardening, beta=beta, epsilon=epsilon
            )
            aux.update(_negative_diagnostics(s, candidates, labels, valid, log_q, None))
        return loss, aux
    s = _similarities(z)
    pair_loss, fallback, num_sir_fallback, idx, log_q = _estimated_pair_losses(
        key,
        s,
        candidates,
        estimator=estimator,
        psi=psi,
        alpha=alpha,
        hardening=hardening,
        beta=beta,
        epsilon=epsilon,
        k=k,
        draw=draw,
        eta_fn=eta_fn,
        num_proposals=num_proposals,
        tau_plus=tau_plus,
        grad_through_weights=grad_through_weights,
        temperature=temperature,
    )
    loss, valid, num_dropped = _reduce(pair_loss, positives, candidates, reduction)
    if not with_aux:
        return loss, None
    aux = {
        "num_dropped_anchors": num_dropped,
        "num_fallback": jnp.sum(fallback & valid).astype(jnp.int32) + num_sir_fallback,
    }
    if diagnostics:
        aux.update(_negative_diagnostics(s, candidates, labels, valid, log_q, idx))
    return loss, aux


def _twin_arguments(
    caller: str, full: Callable, z: Any, ids: Any, key: Any, options: dict[str, Any]
) -> dict[str, Any]:
    """The arguments of the loss-only twin `caller` as its full function `full` takes them.

    Bound to `full`'s signature with its defaults, so each option and its default is
    written once (in `full`); `diagnostics` belongs to `full` alone.
    """
    if "diagnostics" in options:
        raise TypeError(
            f"{caller} returns the loss alone and takes no 'diagnostics'; call "
            f"{full.__name__}(..., diagnostics=True) for (loss, aux) with the diagnostics."
        )
    try:
        bound = inspect.signature(full).bind(z, ids, key, **options)
    except TypeError as err:
        raise TypeError(
            f"{caller}: {err}; its options are those of {full.__name__} (see its docstring)."
        ) from None
    bound.apply_defaults()
    return bound.arguments


def _warn_return_aux(caller: str) -> None:
    warnings.warn(
        f"{caller}(..., return_aux=True / return_diagnostics=True) is deprecated: it changes "
        f"the return type. Call {caller}_with_aux(..., diagnostics=...) for (loss, aux).",
        DeprecationWarning,
        stacklevel=3,
    )


# ----------------------------------------------------------------------------------------
# SCL / HSCL / UCL / HUCL.


def contrastive_loss_with_aux(
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
    temperature: float = 1.0,
    reduction: str = "anchor_mean",
    diagnostics: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The SCL, HSCL, UCL and HUCL losses of [HN] on one batch, with their counts, as (loss, aux).

    The losses of docs/math.md §3-6. `contrastive_loss` returns the same loss, bit for
    bit, alone; its options are the ones documented here.

    For anchor i and each positive j (positive_ids[j] == positive_ids[i]; j = i only if
    `self_positive`), k negatives n_1..n_k are drawn i.i.d. from the tilted distribution
    q_i(m) ∝ h(s_im) over the candidates of i, and

        ℓ_ij = ψ_k(s_{i,n_1} − s_ij, ..., s_{i,n_k} − s_ij).

    The anchor's loss is the mean of ℓ_ij over its positives, the batch loss the mean over
    anchors (Algorithm 1 lines 17-29; `reduction="anchor_mean"`, the default).
    `reduction="pair_mean"` instead takes one mean over all (anchor, positive) pairs, the
    reduction of the [HN] code (config field `loss.reduction`); with label positives the
    two differ on batches whose classes are unbalanced (an anchor of a class with n_c
    members then weighs n_c / Σ_c n_c² instead of 1 / N) and agree on balanced ones and
    whenever every anchor has the same number of positives (two views). With a
    `temperature` τ the ψ arguments are (s_{i,n_m} − s_ij) / τ, while q_i still tilts by
    the raw similarity, h(s_im). Candidates: SCL/HSCL the examples of other classes
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
      time O(N²d), memory O(N²). With exponential h it equals the importance weighting
      of [R21] only up to a log N⁻ offset: their objective with N⁻ negatives,
      −log(e^{s⁺} / (e^{s⁺} + N⁻ E_q[e^{s⁻}])) = softplus(b_i + log N⁻ − s_ij), is the
      sum form of ψ, ours the mean form softplus(b_i − s_ij), b_i = log E_q[e^{s⁻}].
      The offset sits inside the softplus, so the two losses differ by more than a
      constant: their values and gradients differ (the sum form weighs the negatives
      against the positive N⁻ times more), and N⁻ varies between anchors whose classes
      have different sizes.
      Their weights are exp(β s/τ) where ours are exp(β s): β_R21 = β τ. `tau_plus` > 0
      adds their debiasing (E_q − τ⁺ e^{s⁺}) / (1 − τ⁺), floored at e^{-1/τ} as theirs.
    * `eta_fn` (sampled only): a non-separable hardening η(t_1..t_k), sampled by SIR
      (`hardening.sir_sample`) from `num_proposals` = R reference k-tuples: time and
      memory O(N R k) per anchor draw, O(N² R k) with draw="pair".

    Negatives are drawn with `hardening.sample_negatives` (inverse CDF in log space, no
    gradient through the draw); gradients flow through the similarities of the drawn
    negatives and the positives. Detaching the sampling probabilities is what the sampled
    code of [HN] does (a drawn index has no derivative). It is not what [R21]'s
    `criterion` does: its weights exp(β s) are computed from the same, undetached
    similarities, so its gradient also flows through the weights. The reweighted
    estimator offers both: `grad_through_weights=True` is [R21]'s gradient, the default
    (False) detaches q_i as the sampled estimator does.

    Besides the loss, aux counts the dropped and fallback anchors and, on request, holds
    hard-negative diagnostics.

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
      grad_through_weights: reweighted only: let the gradient flow through q_i, as in
        [R21]'s code (off by default, as in the sampled code of [HN]).
      eta_fn: optional non-separable hardening for hscl/hucl, returning log η of the
        anchor-negative similarities (..., k) -> (...); replaces `hardening`
        (`hardening.make_eta` builds the registered ones).
      num_proposals: SIR proposals per drawn tuple when `eta_fn` is given.
      temperature: τ > 0 dividing the ψ arguments (1 in [HN]; q_i is not rescaled).
      reduction: one of `REDUCTIONS`, "anchor_mean" (Algorithm 1) or "pair_mean".
      diagnostics: also return (in aux) the hard-negative diagnostics, means over the
        kept anchors, without gradient: "neg_collision" (share of drawn negatives, or
        of q_i's mass for "reweighted", with the anchor's label: for UCL/HUCL the
        latent-class collision), "neg_sim_drawn" and "neg_sim_uniform" (mean s_im of
        the drawn or q_i-weighted negatives and of the uniform candidates), and without
        `eta_fn` "neg_ess" (1 / Σ_m q_i(m)², the effective sample size of the tilted
        distribution), "neg_ess_fraction" (the same over the number of candidates) and
        "neg_entropy" (of q_i, nats).

    Returns:
      (loss, aux): the scalar loss and aux = {"num_dropped_anchors": anchors left out
      of the mean, "num_fallback": kept anchors whose candidates all had h = 0 and were
      sampled/weighted uniformly (with `eta_fn`: drawn tuples whose R proposals all had
      η = 0)} (int32 scalars), plus the diagnostics with `diagnostics=True`.

    Raises:
      ValueError: for unknown names, β < 0, ε ≤ 0, α ≤ 0, k < 1, τ⁺ ∉ [0, 1), τ ≤ 0, a
        missing key, "reweighted" with a ψ other than InfoNCE, or mismatched shapes.

    Examples:
      A batch of one class has no SCL negatives: every anchor is dropped and the loss
      is 0.

      >>> import jax, jax.numpy as jnp
      >>> z = jnp.eye(3, 2)
      >>> loss, aux = contrastive_loss_with_aux(
      ...     z, jnp.zeros(3, jnp.int32), jax.random.key(0), setting="scl", k=4)
      >>> print(loss, aux["num_dropped_anchors"], aux["num_fallback"])
      0.0 3 0

    References:
      [HN Def. 1-4, Algorithm 1, Thm 1-3]; [R21 eq. 5 and code]; docs/math.md §3-6.
    """
    # Nothing is assigned before this line, so locals() is exactly the arguments.
    return _contrastive_loss("contrastive_loss_with_aux", with_aux=True, **locals())


def contrastive_loss(
    z: ArrayLike,
    labels: ArrayLike,
    key: jax.Array | None = None,
    *,
    return_aux: bool = False,
    return_diagnostics: bool = False,
    **options: Any,
) -> jax.Array:
    """The SCL, HSCL, UCL and HUCL losses of [HN] on one batch (docs/math.md §3-6).

    The loss of `contrastive_loss_with_aux` for the same arguments and key, bit for bit,
    without its aux. Its docstring defines the losses, the estimators and their cost,
    and every option.

    Args:
      z: normalized embeddings, shape (N, d) (see `geometry.normalize`).
      labels: int (N,) class labels (see `contrastive_loss_with_aux`).
      key: PRNG key for the sampled estimator (unused by "reweighted").
      return_aux: deprecated; use `contrastive_loss_with_aux`. True returns
        `contrastive_loss_with_aux(...)`'s (loss, aux) instead of the loss.
      return_diagnostics: deprecated; use `contrastive_loss_with_aux(...,
        diagnostics=True)`, which True returns.
      **options: the keyword options of `contrastive_loss_with_aux` (`setting`, which
        is required, `psi`, `beta`, `k`, `estimator`, ...) except `diagnostics`.

    Returns:
      The scalar loss.

    Raises:
      ValueError: as `contrastive_loss_with_aux`.
      TypeError: for an option `contrastive_loss_with_aux` does not take, `diagnostics`,
        or a missing `setting`.

    Examples:
      HSCL with k = 16 sampled negatives on six 2-d embeddings of three classes:

      >>> import jax, jax.numpy as jnp
      >>> from hncl_jax import geometry
      >>> z = geometry.normalize(jax.random.normal(jax.random.key(0), (6, 2)), "unit_ball")
      >>> y = jnp.array([0, 0, 1, 1, 2, 2])
      >>> loss = contrastive_loss(z, y, jax.random.key(1), setting="hscl", beta=10.0, k=16)
      >>> loss.shape, loss.dtype
      ((), dtype('float32'))

      At Neural Collapse (the simplex ETF) SCL reaches the bound of Theorem 2,
      log(1 + exp(−3/2)) for C = 3:

      >>> z_nc = geometry.simplex_etf(3)[y]
      >>> print(f"{contrastive_loss(z_nc, y, setting='scl', estimator='reweighted'):.5f}")
      0.20141

    References:
      [HN Def. 1-4, Algorithm 1, Thm 1-3]; docs/math.md §3-6.
    """
    if return_aux or return_diagnostics:
        _warn_return_aux("contrastive_loss")
        return contrastive_loss_with_aux(z, labels, key, diagnostics=return_diagnostics, **options)
    args = _twin_arguments("contrastive_loss", contrastive_loss_with_aux, z, labels, key, options)
    loss, _ = _contrastive_loss("contrastive_loss", with_aux=False, **args)
    return loss


# ----------------------------------------------------------------------------------------
# SimCLR form [HN eq. 42].


def _simclr_log_count(
    caller: str,
    q: str,
    negatives: jax.Array,
    positive_ids: jax.Array,
    labels: jax.Array | None,
    self_positive: bool,
    dtype: Any,
) -> float | jax.Array:
    """log Q_i: log(N − 2) for q="batch" (checked against concrete ids), else (N, 1)."""
    n = negatives.shape[0]
    batch_q = math.log(max(n - 2, 1))
    if q == "batch":
        _check_batch_q(caller, positive_ids, labels, self_positive, n)
        return batch_q
    num_neg = jnp.sum(negatives, axis=-1)
    # Where the count is N − 2 use the same float as q="batch" (bit-identical there).
    return jnp.where(num_neg == n - 2, batch_q, jnp.log(jnp.maximum(num_neg, 1).astype(dtype)))[
        :, None
    ]


def _simclr_form_loss(
    caller: str,
    z: ArrayLike,
    positive_ids: ArrayLike,
    key: jax.Array | None,
    *,
    with_aux: bool,
    diagnostics: bool,
    beta: Any,
    hardening: str,
    epsilon: Any,
    self_positive: bool,
    grad_through_weights: bool,
    labels: ArrayLike | None,
    q: str,
    temperature: Any,
    reduction: str,
) -> tuple[jax.Array, dict[str, jax.Array] | None]:
    """(loss, aux) of `simclr_form_loss_with_aux`; aux is None unless `with_aux`."""
    del key  # unused: the expectation is exact
    check_hardening_args(hardening, beta, epsilon, caller=caller)
    _utils.check_choice(caller, "q", q, Q_MODES)
    _utils.check_choice(caller, "reduction", reduction, REDUCTIONS)
    _check_temperature(caller, temperature)
    z = _as_embeddings(caller, z)
    _check_traced(caller, z, beta=beta, epsilon=epsilon)
    n = z.shape[0]
    positive_ids = _as_ids(caller, "positive_ids", positive_ids, n)
    if labels is not None:
        labels = _as_ids(caller, "labels", labels, n)
    s = _similarities(z)
    positives = _positive_mask(positive_ids, self_positive)
    class_ids = positive_ids if labels is None else labels
    negatives = class_ids[:, None] != class_ids[None, :]
    log_count = _simclr_log_count(
        caller, q, negatives, positive_ids, labels, self_positive, s.dtype
    )
    log_neg, fallback, log_q = _log_mean_negative(
        s,
        negatives,
        hardening=hardening,
        beta=beta,
        epsilon=epsilon,
        tau_plus=0.0,
        grad_through_weights=grad_through_weights,
        temperature=temperature,
    )
    # log(1 + Q E[exp s⁻] / exp s⁺) = softplus(log E[exp s⁻] + log Q − s⁺). Q >= 1 whenever
    # an anchor has both a positive and a negative (N >= 3); other anchors are dropped.
    pair_loss = jax.nn.softplus(log_neg + log_count - _scaled(s, temperature))
    loss, valid, num_dropped = _reduce(pair_loss, positives, negatives, reduction)
    if not with_aux:
        return loss, None
    aux = {
        "num_dropped_anchors": num_dropped,
        "num_fallback": jnp.sum(fallback & valid).astype(jnp.int32),
    }
    if diagnostics:
        aux.update(_negative_diagnostics(s, negatives, class_ids, valid, log_q, None))
    return loss, aux


def simclr_form_loss_with_aux(
    z: ArrayLike,
    positive_ids: ArrayLike,
    key: jax.Array | None = None,
    *,
    beta: float = 0.0,
    hardening: str = "exponential",
    epsilon: float = 1.0,
    self_positive: bool = False,
    grad_through_weights: bool = False,
    labels: ArrayLike | None = None,
    q: str = "batch",
    temperature: float = 1.0,
    reduction: str = "anchor_mean",
    diagnostics: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The SimCLR-form loss of [HN eq. 42] and its counts, as (loss, aux) (docs/math.md §7).

    `simclr_form_loss` returns the same loss, bit for bit, alone; its options are the
    ones documented here. The negatives are uniform or tilted:

        ℓ_ij = log(1 + Q_i · E_{m ~ q_i}[exp(s_im)] / exp(s_ij)),

    where the negatives of anchor i are the views that are not its positives
    (positive_ids[m] ≠ positive_ids[i]; unsupervised, Fig. 12 right) or, with `labels`,
    the views of other classes (labels[m] ≠ labels[i]; supervised, Fig. 12 left), and q_i
    is uniform (β = 0 or hardening "none") or tilted, q_i(m) ∝ h(s_im). The expectation
    is exact, not sampled. Q_i:

    * q="batch" (the paper's "batch size minus two"): Q = N − 2, N the number of views.
      For two views of B examples with unsupervised negatives this is each anchor's
      number of negatives 2B − 2, and with uniform q the loss is NT-Xent at unit
      temperature with the positive removed from the denominator's negatives sum. With
      more views, label positives or label negatives N − 2 is not the number of
      negatives, so concrete ids whose negative counts differ from N − 2 are refused.
    * q="negatives": Q_i = the number of negatives of anchor i, so that with uniform q
      Q_i E_q[exp s] = Σ_{negatives} exp(s_im) for any layout: the uniform form is then
      SINCERE-style InfoNCE at unit temperature (`baselines.sincere` pair terms), and
      equals q="batch" bit for bit where the count is N − 2.

    The anchor's loss is the mean over its positives (j ≠ i unless `self_positive`), the
    batch loss the mean over anchors with a positive and a negative (or, with
    reduction="pair_mean", the mean over all such pairs). aux counts the dropped and
    fallback anchors.

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
      labels: int (N,) class labels; if given, only other-class views are negatives
        (the supervised SimCLR form).
      q: one of `Q_MODES`.
      temperature: τ > 0 dividing the similarities inside the exponentials (1 in [HN]).
      reduction: one of `REDUCTIONS`.
      diagnostics: also return the diagnostics of `contrastive_loss_with_aux`
        (q_i-weighted).

    Returns:
      (loss, aux) with aux = {"num_dropped_anchors", "num_fallback"} (int32 scalars),
      plus the diagnostics with `diagnostics=True`.

    Raises:
      ValueError: for unknown names, β < 0, ε ≤ 0, τ ≤ 0, mismatched shapes, or q="batch"
        with concrete ids for which some anchor's number of negatives is not N − 2.

    Examples:
      Two identical views of two orthogonal examples: each anchor's positive has
      s = 1 and its two negatives s = 0, so with Q = N − 2 = 2 every anchor's loss is
      log(1 + 2 e⁻¹):

      >>> import jax.numpy as jnp
      >>> z = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
      >>> loss, aux = simclr_form_loss_with_aux(z, jnp.array([0, 1, 0, 1]))
      >>> print(f"{loss:.4f}", f"{jnp.log1p(2 / jnp.e):.4f}", aux["num_dropped_anchors"])
      0.5514 0.5514 0

    References:
      [HN App. B.5, eq. 42]; SimCLR (Chen et al. 2020); SINCERE (Feeney and Hughes,
      arXiv:2309.14277); [R21]; docs/math.md §7.
    """
    # Nothing is assigned before this line, so locals() is exactly the arguments.
    return _simclr_form_loss("simclr_form_loss_with_aux", with_aux=True, **locals())


def simclr_form_loss(
    z: ArrayLike,
    positive_ids: ArrayLike,
    key: jax.Array | None = None,
    *,
    return_aux: bool = False,
    return_diagnostics: bool = False,
    **options: Any,
) -> jax.Array:
    """The SimCLR-form loss of [HN eq. 42], with uniform or tilted negatives (docs/math.md §7).

    The loss of `simclr_form_loss_with_aux` for the same arguments, bit for bit, without
    its aux. Its docstring defines the loss and every option.

    Args:
      z: normalized embeddings, shape (N, d).
      positive_ids: int (N,); the views convention is z = concat(view1, view2),
        positive_ids = concat(arange(B), arange(B)).
      key: unused (the expectation is exact); accepted so that every objective shares a
        call signature.
      return_aux: deprecated; use `simclr_form_loss_with_aux`. True returns its
        (loss, aux) instead of the loss.
      return_diagnostics: deprecated; use `simclr_form_loss_with_aux(...,
        diagnostics=True)`, which True returns.
      **options: the keyword options of `simclr_form_loss_with_aux` (`beta`,
        `hardening`, `labels`, `q`, ...) except `diagnostics`.

    Returns:
      The scalar loss.

    Raises:
      ValueError: as `simclr_form_loss_with_aux`.
      TypeError: for an option `simclr_form_loss_with_aux` does not take, or `diagnostics`.

    Examples:
      Two views of B = 3 examples, with uniform and with tilted negatives:

      >>> import jax, jax.numpy as jnp
      >>> from hncl_jax import geometry
      >>> z = geometry.normalize(jax.random.normal(jax.random.key(0), (6, 4)), "unit_sphere")
      >>> ids = jnp.array([0, 1, 2, 0, 1, 2])
      >>> uniform = simclr_form_loss(z, ids)
      >>> hard = simclr_form_loss(z, ids, beta=5.0)
      >>> bool(hard >= uniform)
      True

    References:
      [HN App. B.5, eq. 42]; docs/math.md §7.
    """
    if return_aux or return_diagnostics:
        _warn_return_aux("simclr_form_loss")
        return simclr_form_loss_with_aux(
            z, positive_ids, key, diagnostics=return_diagnostics, **options
        )
    args = _twin_arguments(
        "simclr_form_loss", simclr_form_loss_with_aux, z, positive_ids, key, options
    )
    loss, _ = _simclr_form_loss("simclr_form_loss", with_aux=False, **args)
    return loss


def _check_batch_q(
    caller: str,
    positive_ids: jax.Array,
    labels: jax.Array | None,
    self_positive: bool,
    n: int,
) -> None:
    """Refuses q="batch" where Q = N − 2 is known not to count the negatives."""
    ids = _utils.concrete(positive_ids)
    lab = None if labels is None else _utils.concrete(labels)
    if ids is None or (labels is not None and lab is None):
        return  # traced ids: the caller (e.g. the trainer's config check) decides
    groups = ids if lab is None else lab
    num_neg = np.sum(groups[:, None] != groups[None, :], axis=-1)
    num_pos = np.sum(ids[:, None] == ids[None, :], axis=-1) - (0 if self_positive else 1)
    kept = (num_pos > 0) & (num_neg > 0)
    if np.any(num_neg[kept] != n - 2):
        raise ValueError(
            f"{caller}: q='batch' sets Q = N − 2 = {n - 2}, the number of negatives of two "
            "views of distinct examples, but here anchors have "
            f"{sorted(set(num_neg[kept].tolist()))} negatives (more than two views, label "
            "positives or label negatives); pass q='negatives' to use each anchor's count."
        )
