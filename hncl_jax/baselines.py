"""Baseline self-supervised and supervised losses, and the CLOP prototype term.

These are the published losses the hard-negative (HN) and CLOP papers compare against
(docs/math.md §8), written as pure, jit-able functions of a batch of embeddings, plus the
orthonormal-prototype term of CLOP (docs/math.md §9).

Conventions shared by the contrastive losses (`nt_xent`, `supcon`, `sincere`, `dcl`,
`dclw`):

* `z` has shape (N, d) and is un-normalized: every loss takes cosine similarities,
  s_ij = z_i · z_j / (‖z_i‖ ‖z_j‖), through a safe norm (a zero row gets similarity 0
  to everything and finite gradients).
* Positives of anchor i are the other rows with the same id (`positive_ids` for the
  self-supervised losses, `labels` for the supervised ones); the anchor itself is never
  a positive nor in any denominator.
* For two augmented views of B examples the layout is z = concat([view1, view2])
  (N = 2B) with positive_ids = concat([arange(B), arange(B)]).
* The loss of an anchor is the mean over its positives; the batch loss is the mean over
  anchors that have at least one positive (and, where the loss needs one, a negative).
  A batch where no anchor qualifies gives 0, not NaN.

Every log-sum-exp over a masked set is computed with `where` masks and a shifted
exponential, never log(0); gradients stay finite for empty sets.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hncl_jax import _loss_utils as _utils
from hncl_jax import checks, geometry

BASELINES = ("nt_xent", "supcon", "sincere", "dcl", "dclw", "vicreg", "barlow_twins")
CONTRAST_MODES = ("all", "one")

# Losses of BASELINES that read `labels` (the others read `positive_ids` or split z).
LABEL_LOSSES = ("supcon", "sincere")
_VIEW_PAIR_LOSSES = ("vicreg", "barlow_twins")


# Argument checks (`_loss_utils`). Shapes are static under jit, so they are always
# checked; values (a temperature, a label range) only when they are concrete, so a traced
# temperature (e.g. a learned one) still works.


def _check_contrastive(
    caller: str, z: jax.Array, ids: jax.Array, arg: str, temperature: Any
) -> None:
    _utils.check_embeddings(caller, z, min_rows=2)
    _utils.check_ids(caller, arg, ids, z.shape[0])
    note = "the cosine similarities are divided by it"
    _utils.check_scalar(caller, "temperature", temperature, note=note, example=0.5)


def _check_view_pair(caller: str, z1: jax.Array, z2: jax.Array) -> None:
    _utils.check_embeddings(caller, z1, arg="z1", min_rows=2)
    _utils.check_embeddings(caller, z2, arg="z2", min_rows=2)
    if z1.shape != z2.shape:
        raise ValueError(
            f"{caller}: z1 and z2 must have the same shape [B, d], got {z1.shape} and {z2.shape}; "
            "row i of z1 and row i of z2 must be two views of the same example."
        )


# Shared numerics.


def _cosine_logits(z: jax.Array, temperature: jax.Array | float) -> jax.Array:
    """Returns the [N, N] cosine similarities divided by the temperature."""
    zn = geometry.normalize(z, "unit_sphere")
    return (zn @ zn.T) / temperature


def _pair_masks(ids: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Returns (positive, negative, not_self) [N, N] boolean masks for integer ids (N,)."""
    same = ids[:, None] == ids[None, :]
    not_self = ~jnp.eye(ids.shape[0], dtype=bool)
    return same & not_self, ~same, not_self


def _mean_over_positives_then_anchors(
    pair_loss: jax.Array, positive: jax.Array, valid_anchor: jax.Array
) -> jax.Array:
    """Mean over each anchor's positives, then over the valid anchors (0 if none)."""
    return _utils.mean_over_positives(pair_loss, positive, valid_anchor)[0]


def _softmax_cross_entropy_over_all_others(
    z: jax.Array,
    ids: jax.Array,
    temperature: jax.Array | float,
    anchors: jax.Array | None = None,
) -> jax.Array:
    """-mean_{p∈P(i)} log(exp(l_ip) / Σ_{k≠i} exp(l_ik)), averaged over anchors.

    `anchors` (N,) bool restricts the anchors (default: every row).
    """
    logits = _cosine_logits(z, temperature)
    positive, _, not_self = _pair_masks(ids)
    log_denominator, _ = _utils.masked_logsumexp(logits, not_self)
    pair_loss = log_denominator[:, None] - logits
    anchors = jnp.ones(ids.shape, bool) if anchors is None else anchors
    return _mean_over_positives_then_anchors(pair_loss, positive, anchors)


# Contrastive baselines.


def nt_xent(
    z: jax.Array, positive_ids: jax.Array, temperature: jax.Array | float = 0.5
) -> jax.Array:
    """Normalized temperature-scaled cross entropy (NT-Xent, the SimCLR loss).

    With cosine similarities s_ij and positives P(i) = {j ≠ i : id_j = id_i},

        ℓ_i = −(1/|P(i)|) Σ_{p ∈ P(i)} log( exp(s_ip/τ) / Σ_{k ≠ i} exp(s_ik/τ) ),

    averaged over the anchors with |P(i)| ≥ 1. In the two-view layout each anchor has
    exactly one positive (its other view) and this is SimCLR's loss over all 2B anchors.
    With several positives per anchor it coincides with `supcon` (all other rows,
    positives included, stay in the denominator); it then differs from
    `optax.losses.ntxent`, which removes the other positives from each denominator (that
    is `sincere`, up to the averaging).

    Args:
      z: embeddings, un-normalized, shape (N, d) (N = 2B for two views).
      positive_ids: integer ids, shape (N,); rows with equal ids are positives.
      temperature: τ > 0, a scalar.

    Returns:
      A scalar loss.

    Raises:
      ValueError: for mismatched shapes, non-integer ids or a concrete τ ≤ 0.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> views = jax.random.normal(jax.random.key(0), (8, 16))  # 2 views of B = 4
      >>> ids = jnp.concatenate([jnp.arange(4), jnp.arange(4)])
      >>> loss = nt_xent(views, ids, temperature=0.5)
      >>> loss.shape
      ()

      Two identical views of orthogonal examples: each anchor's positive has s = 1,
      its 6 other rows s = 0 (one of them is itself excluded), so
      ℓ = log(e² + 6) − 2 at τ = 0.5.

      >>> e = jnp.concatenate([jnp.eye(4), jnp.eye(4)])
      >>> print(f"{nt_xent(e, ids):.4f}", f"{jnp.log(jnp.e**2 + 6) - 2:.4f}")
      0.5944 0.5944

    References:
      T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
      Representations", ICML 2020 (arXiv:2002.05709), eq. (1).
    """
    _check_contrastive("nt_xent", z, positive_ids, "positive_ids", temperature)
    return _softmax_cross_entropy_over_all_others(z, positive_ids, temperature)


def supcon(
    z: jax.Array,
    labels: jax.Array,
    temperature: jax.Array | float = 0.1,
    contrast_mode: str = "all",
    num_views: int = 2,
) -> jax.Array:
    """Supervised contrastive loss, the L^sup_out form.

        L = (1/|I'|) Σ_{i ∈ I'} −(1/|P(i)|) Σ_{p ∈ P(i)}
              log( exp(s_ip/τ) / Σ_{a ≠ i} exp(s_ia/τ) ),

    with P(i) the other rows of anchor i's class and I' the anchors with at least one
    positive (anchors alone in their class are dropped). The mean over positives is
    outside the log ("out"), the variant Khosla et al. recommend. The reference code's
    extra factor temperature / base_temperature is not applied.

    `contrast_mode` is the reference code's option: "all" makes every row an anchor;
    "one" only the rows of the first view, z[: N // num_views], which still contrast
    against every row (all views), as `anchor_feature = features[:, 0]` there. With one
    view (num_views=1) the two modes agree.

    Args:
      z: embeddings, un-normalized, shape (N, d) (all views stacked,
        concat([view1, ..., viewV])).
      labels: integer class labels, shape (N,).
      temperature: τ > 0, a scalar.
      contrast_mode: "all" or "one" (`CONTRAST_MODES`).
      num_views: V ≥ 1, the number of stacked views ("one" only); N must be a multiple
        of it.

    Returns:
      A scalar loss.

    Raises:
      ValueError: for an unknown `contrast_mode`, or N not a multiple of `num_views`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> z = jax.random.normal(jax.random.key(0), (8, 4))
      >>> labels = jnp.array([0, 0, 1, 1, 0, 0, 1, 1])
      >>> all_anchors = supcon(z, labels)
      >>> first_view = supcon(z, labels, contrast_mode="one", num_views=2)
      >>> all_anchors.shape, first_view.shape
      ((), ())

    References:
      P. Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020
      (arXiv:2004.11362), eq. (2).
    """
    _check_contrastive("supcon", z, labels, "labels", temperature)
    _utils.check_choice("supcon", "contrast_mode", contrast_mode, CONTRAST_MODES)
    if contrast_mode == "all":
        return _softmax_cross_entropy_over_all_others(z, labels, temperature)
    n = z.shape[0]
    bad = isinstance(num_views, bool) or not isinstance(num_views, int | np.integer)
    if bad or num_views < 1 or n % num_views:
        raise ValueError(
            f"supcon: num_views={num_views!r} must be a positive int dividing the {n} rows of z "
            "(contrast_mode='one' takes the first N // num_views rows as anchors)."
        )
    anchors = jnp.arange(n) < n // num_views
    return _softmax_cross_entropy_over_all_others(z, labels, temperature, anchors)


def sincere(z: jax.Array, labels: jax.Array, temperature: jax.Array | float = 0.1) -> jax.Array:
    """Supervised InfoNCE REvisited (SINCERE) loss.

    Each positive pair is classified against the other classes only:

        ℓ_i = −(1/|P(i)|) Σ_{p ∈ P(i)}
              log( exp(s_ip/τ) / (exp(s_ip/τ) + Σ_{n: y_n ≠ y_i} exp(s_in/τ)) ),

    averaged over anchors with at least one positive. Since its denominator is a subset
    of SupCon's, sincere ≤ supcon per pair, with equality when every anchor has exactly
    one positive. `optax.losses.ntxent` computes the same pair terms but averages over
    all positive pairs at once; both agree when every anchor has the same number of
    positives (balanced classes).

    Args:
      z: embeddings, un-normalized, shape (N, d).
      labels: integer class labels, shape (N,).
      temperature: τ > 0, a scalar.

    Returns:
      A scalar loss.

    Raises:
      ValueError: for mismatched shapes, non-integer labels or a concrete τ ≤ 0.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> z = jax.random.normal(jax.random.key(0), (6, 4))
      >>> labels = jnp.array([0, 0, 0, 1, 1, 1])
      >>> bool(sincere(z, labels) <= supcon(z, labels))
      True

    References:
      P. Feeney and M. C. Hughes, "SINCERE: Supervised Information Noise-Contrastive
      Estimation REvisited", 2024 (arXiv:2309.14277).
    """
    _check_contrastive("sincere", z, labels, "labels", temperature)
    logits = _cosine_logits(z, temperature)
    positive, negative, _ = _pair_masks(labels)
    log_negatives, has_negative = _utils.masked_logsumexp(logits, negative)
    # -log(e^{l_ip} / (e^{l_ip} + Σ_n e^{l_in})) = softplus(LSE_n l_in - l_ip); no negatives: 0.
    pair_loss = jnp.where(
        has_negative[:, None], jax.nn.softplus(log_negatives[:, None] - logits), 0.0
    )
    return _mean_over_positives_then_anchors(pair_loss, positive, jnp.ones(labels.shape, bool))


def _decoupled(
    z: jax.Array, ids: jax.Array, temperature: jax.Array | float, sigma: jax.Array | float | None
) -> jax.Array:
    """DCL (sigma None) or DCLW pair terms, reduced as the module docstring says."""
    zn = geometry.normalize(z, "unit_sphere")
    cos = zn @ zn.T
    logits = cos / temperature
    positive, negative, _ = _pair_masks(ids)
    log_negatives, has_negative = _utils.masked_logsumexp(logits, negative)
    if sigma is None:
        weight = 1.0
    else:
        # w_ip = 2 - exp(s_ip/σ) / mean_{positive pairs} exp(s/σ) = 2 - M softmax_ip; the
        # gradient flows through w, as in the authors' code.
        num_pairs = jnp.maximum(jnp.sum(positive), 1)
        scaled = cos / sigma
        log_total, _ = _utils.masked_logsumexp(scaled.ravel(), positive.ravel())
        ratio = jnp.exp(jnp.where(positive, scaled - log_total, -jnp.inf))
        weight = 2.0 - num_pairs * ratio
    pair_loss = log_negatives[:, None] - weight * logits
    return _mean_over_positives_then_anchors(pair_loss, positive, has_negative)


def dcl(z: jax.Array, positive_ids: jax.Array, temperature: jax.Array | float = 0.5) -> jax.Array:
    """Decoupled contrastive loss (DCL): NT-Xent without the positive in the denominator.

        ℓ_i = (1/|P(i)|) Σ_{p ∈ P(i)} [ −s_ip/τ + log Σ_{n ∉ P(i) ∪ {i}} exp(s_in/τ) ],

    averaged over anchors with at least one positive and one negative. In the two-view
    layout the mean over all 2B anchors equals the authors' symmetric loss
    (DCL(z1, z2) + DCL(z2, z1)) / 2. Unlike NT-Xent it can be negative, and
    nt_xent − dcl = mean_i softplus(s_ip/τ − LSE_n s_in/τ) > 0 in the two-view layout.

    Args:
      z: embeddings, un-normalized, shape (N, d).
      positive_ids: integer ids, shape (N,); rows with equal ids are positives.
      temperature: τ > 0, a scalar.

    Returns:
      A scalar loss.

    Raises:
      ValueError: for mismatched shapes, non-integer ids or a concrete τ ≤ 0.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> views = jax.random.normal(jax.random.key(0), (8, 16))
      >>> ids = jnp.concatenate([jnp.arange(4), jnp.arange(4)])
      >>> bool(nt_xent(views, ids) > dcl(views, ids))
      True

    References:
      C.-H. Yeh et al., "Decoupled Contrastive Learning", ECCV 2022 (arXiv:2110.06848).
    """
    _check_contrastive("dcl", z, positive_ids, "positive_ids", temperature)
    return _decoupled(z, positive_ids, temperature, None)


def dclw(
    z: jax.Array,
    positive_ids: jax.Array,
    temperature: jax.Array | float = 0.5,
    sigma: jax.Array | float = 0.5,
) -> jax.Array:
    """Decoupled contrastive loss with von Mises-Fisher weighting (DCLW).

    As `dcl`, with the positive term −s_ip/τ multiplied by

        w_ip = 2 − exp(s_ip/σ) / ( (1/M) Σ_{(a,b)} exp(s_ab/σ) ),

    the mean running over the M ordered positive pairs of the batch, so the weights
    average to 1 and harder (less similar) positives weigh more. As σ → ∞, w → 1 and
    DCLW becomes DCL.

    Args:
      z: embeddings, un-normalized, shape (N, d).
      positive_ids: integer ids, shape (N,); rows with equal ids are positives.
      temperature: τ > 0, a scalar.
      sigma: σ > 0, the vMF weighting scale.

    Returns:
      A scalar loss.

    Raises:
      ValueError: for mismatched shapes, non-integer ids, or a concrete τ or σ ≤ 0.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> views = jax.random.normal(jax.random.key(0), (8, 16))
      >>> ids = jnp.concatenate([jnp.arange(4), jnp.arange(4)])
      >>> bool(jnp.allclose(dclw(views, ids, sigma=1e6), dcl(views, ids), atol=1e-4))  # σ → ∞
      True

    References:
      C.-H. Yeh et al., "Decoupled Contrastive Learning", ECCV 2022 (arXiv:2110.06848),
      DCLW.
    """
    _check_contrastive("dclw", z, positive_ids, "positive_ids", temperature)
    _utils.check_scalar("dclw", "sigma", sigma, note="the vMF weighting scale", example=0.5)
    return _decoupled(z, positive_ids, temperature, sigma)


# Non-contrastive baselines (two views, un-normalized embeddings).


def _off_diagonal_sum_of_squares(m: jax.Array) -> jax.Array:
    return jnp.sum(jnp.square(m)) - jnp.sum(jnp.square(jnp.diagonal(m)))


def vicreg(
    z1: jax.Array,
    z2: jax.Array,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
) -> jax.Array:
    """Variance-Invariance-Covariance Regularization (VICReg) loss.

        L = λ s(Z, Z') + μ [v(Z) + v(Z')] / 2 + ν [c(Z) + c(Z')],

    with s the mean squared error between the views,
    v(Z) = (1/d) Σ_j max(0, 1 − sqrt(Var(z^j) + 10⁻⁴)) (unbiased variance over the
    batch) and c(Z) = (1/d) Σ_{i ≠ j} C(Z)_ij², C the unbiased covariance matrix. The
    variance term is the mean of the two branches as in the authors' code
    (`main_vicreg.py`); the paper's formula sums them, which is the same loss with μ
    doubled.

    Args:
      z1: first-view embeddings, shape (B, d), B ≥ 2.
      z2: second-view embeddings, shape (B, d); row i is a view of the same example.
      sim_weight: λ ≥ 0, weight of the invariance term.
      var_weight: μ ≥ 0, weight of the variance term.
      cov_weight: ν ≥ 0, weight of the covariance term.

    Returns:
      A scalar loss.

    Raises:
      ValueError: for views of different shapes, B < 2 or a negative weight.

    Examples:
      Identical, decorrelated views of unit variance: every term is 0.

      >>> import jax.numpy as jnp
      >>> z = jnp.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]) * jnp.sqrt(0.75)
      >>> print(f"{vicreg(z, z):.4f}")
      0.0000

    References:
      A. Bardes, J. Ponce and Y. LeCun, "VICReg: Variance-Invariance-Covariance
      Regularization for Self-Supervised Learning", ICLR 2022 (arXiv:2105.04906), §2.
    """
    _check_view_pair("vicreg", z1, z2)
    weights = {"sim_weight": sim_weight, "var_weight": var_weight, "cov_weight": cov_weight}
    for name, value in weights.items():
        _utils.check_scalar("vicreg", name, value, strict=False, example=25.0)
    batch, dim = z1.shape
    invariance = jnp.mean(jnp.square(z1 - z2))

    def variance_and_covariance(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = x - jnp.mean(x, axis=0)
        cov = (x.T @ x) / (batch - 1)
        std = jnp.sqrt(jnp.diagonal(cov) + 1e-4)
        return jnp.mean(jax.nn.relu(1.0 - std)), _off_diagonal_sum_of_squares(cov) / dim

    v1, c1 = variance_and_covariance(z1)
    v2, c2 = variance_and_covariance(z2)
    return sim_weight * invariance + var_weight * 0.5 * (v1 + v2) + cov_weight * (c1 + c2)


def barlow_twins(z1: jax.Array, z2: jax.Array, off_diagonal_weight: float = 5e-3) -> jax.Array:
    """Barlow Twins redundancy-reduction loss.

        L = Σ_i (1 − C_ii)² + λ Σ_{i ≠ j} C_ij²,    C = (1/B) Ẑᵀ Ẑ',

    where Ẑ, Ẑ' are the views standardized over the batch (mean 0, biased variance 1
    with ε = 10⁻⁵, i.e. BatchNorm without affine parameters as in the authors' code), so
    C is the cross-correlation matrix.

    Args:
      z1: first-view embeddings, shape (B, d), B ≥ 2.
      z2: second-view embeddings, shape (B, d); row i is a view of the same example.
      off_diagonal_weight: λ ≥ 0, weight of the redundancy term.

    Returns:
      A scalar loss.

    Raises:
      ValueError: for views of different shapes, B < 2 or λ < 0.

    Examples:
      Identical views with uncorrelated features: C ≈ I, the loss is ≈ 0.

      >>> import jax.numpy as jnp
      >>> z = jnp.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
      >>> print(f"{barlow_twins(z, z):.4f}")
      0.0000

    References:
      J. Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy
      Reduction", ICML 2021 (arXiv:2103.03230), eqs. (1)-(2).
    """
    _check_view_pair("barlow_twins", z1, z2)
    note = "weight of the redundancy term"
    _utils.check_scalar(
        "barlow_twins",
        "off_diagonal_weight",
        off_diagonal_weight,
        strict=False,
        note=note,
        example=5e-3,
    )

    def standardize(x: jax.Array) -> jax.Array:
        x = x - jnp.mean(x, axis=0)
        return x / jnp.sqrt(jnp.mean(jnp.square(x), axis=0) + 1e-5)

    c = standardize(z1).T @ standardize(z2) / z1.shape[0]
    on_diagonal = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
    return on_diagonal + off_diagonal_weight * _off_diagonal_sum_of_squares(c)


# CLOP: orthonormal prototypes.


def _check_class_count(num_classes: int, dim: int) -> None:
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}.")


def orthonormal_prototypes(key: jax.Array, num_classes: int, dim: int) -> jax.Array:
    """Random orthonormal class prototypes for CLOP.

    The reduced QR decomposition of a (dim, num_classes) standard Gaussian matrix gives
    num_classes orthonormal columns; signs are fixed so that R has a positive diagonal,
    making the result a deterministic function of `key` (the Haar distribution on the
    Stiefel manifold). The prototypes are fixed targets, not trained; store them with
    the checkpoint.

    Args:
      key: a `jax.random` key.
      num_classes: C ≥ 1, the number of prototypes.
      dim: d ≥ C, the embedding dimension.

    Returns:
      Prototypes, float32, shape (C, d), with P @ P.T = I.

    Raises:
      ValueError: if dim < num_classes: C orthonormal vectors need d ≥ C.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> p = orthonormal_prototypes(jax.random.key(0), num_classes=3, dim=5)
      >>> p.shape, bool(jnp.allclose(p @ p.T, jnp.eye(3), atol=1e-5))
      ((3, 5), True)

    References:
      H. Li, M. Nguyen and D. Pimentel-Alarcón, "Preventing Collapse in Contrastive
      Learning with Orthonormal Prototypes (CLOP)", 2024 (arXiv:2403.18699), §4 (the
      paper orthonormalizes Gaussian vectors with an SVD; QR gives the same kind of
      random orthonormal basis).
    """
    _check_class_count(num_classes, dim)
    if dim < num_classes:
        raise ValueError(
            f"CLOP needs the embedding dim >= the number of classes for orthonormal prototypes, "
            f"got dim={dim} < num_classes={num_classes}; raise the model's embed_dim to at least "
            f"{num_classes}, or use simplex_prototypes (needs dim >= num_classes - 1)."
        )
    gaussian = jax.random.normal(key, (dim, num_classes), jnp.float32)
    q, r = jnp.linalg.qr(gaussian, mode="reduced")
    signs = jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0)
    return (q * signs).T


def simplex_prototypes(num_classes: int, dim: int) -> jax.Array:
    """Simplex equiangular tight frame prototypes (the comparison to CLOP's).

    Unit vectors with pairwise inner products −1/(C−1), from `geometry.simplex_etf`.

    Args:
      num_classes: C ≥ 2, the number of prototypes.
      dim: d ≥ C − 1, the embedding dimension.

    Returns:
      Prototypes, float32, shape (C, d).

    Examples:
      >>> p = simplex_prototypes(3, 2)
      >>> print((p @ p.T).round(4))
      [[ 1.  -0.5 -0.5]
       [-0.5  1.  -0.5]
       [-0.5 -0.5  1. ]]

    References:
      V. Papyan, X. Y. Han and D. L. Donoho, "Prevalence of neural collapse during the
      terminal phase of deep learning training", PNAS 2020 (arXiv:2008.08186).
    """
    _check_class_count(num_classes, dim)
    return geometry.simplex_etf(num_classes, dim)


def clop_loss(
    z: jax.Array, labels: jax.Array, prototypes: jax.Array, weight: jax.Array | float = 1.0
) -> jax.Array:
    """CLOP prototype term: pull labelled embeddings to their class prototype.

        λ · (1/|S|) Σ_{i ∈ S} (1 − cos(z_i, c_{y_i})),    S = {i : y_i ≥ 0},

    added to a contrastive loss. Unlabelled rows (label −1) are ignored; a batch with no
    labelled row gives 0 with zero (finite) gradients. The paper writes a sum over S;
    the mean keeps λ independent of the batch size (docs/math.md §9).

    Labels known at trace time outside [−1, C) raise a ValueError; traced ones are not
    inspected: a label ≥ C silently pulls to the last prototype (the gather clamps).
    Under `hncl_jax.checks.checked` they, and non-finite embeddings, raise
    `InvalidInputError`.

    Args:
      z: embeddings, un-normalized, shape (N, d).
      labels: integer labels in [−1, C), shape (N,); −1 marks unlabelled rows.
      prototypes: class prototypes, shape (C, d) (e.g. `orthonormal_prototypes`).
      weight: λ ≥ 0, a scalar.

    Returns:
      A scalar loss.

    Raises:
      ValueError: for mismatched shapes, concrete labels outside [−1, C) or λ < 0.

    Examples:
      Row 0 sits on its prototype (cosine 1), row 1 is orthogonal to its own (cosine
      0) and row 2 is unlabelled: the mean over the labelled rows is (0 + 1) / 2.

      >>> import jax.numpy as jnp
      >>> z = jnp.array([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> print(clop_loss(z, jnp.array([0, 1, -1]), jnp.eye(2)))
      0.5

    References:
      H. Li, M. Nguyen and D. Pimentel-Alarcón, "Preventing Collapse in Contrastive
      Learning with Orthonormal Prototypes (CLOP)", 2024 (arXiv:2403.18699), §4 eq. (4).
    """
    _utils.check_embeddings("clop_loss", z)
    _utils.check_ids("clop_loss", "labels", labels, z.shape[0])
    if jnp.ndim(prototypes) != 2 or prototypes.shape[1] != z.shape[1]:
        raise ValueError(
            f"prototypes must have shape [C, {z.shape[1]}] to match z's dim, got "
            f"{jnp.shape(prototypes)}; build them with orthonormal_prototypes(key, C, dim)."
        )
    _utils.check_scalar("clop_loss", "weight", weight, strict=False, note="λ", example=1.0)
    concrete_labels = _utils.concrete(labels)
    num_classes = prototypes.shape[0]
    if (
        concrete_labels is not None
        and concrete_labels.size
        and (concrete_labels.min() < -1 or concrete_labels.max() >= num_classes)
    ):
        raise ValueError(
            f"labels must lie in [-1, {num_classes}) (-1 = unlabelled), got values in "
            f"[{concrete_labels.min()}, {concrete_labels.max()}]."
        )
    checks.finite("clop_loss", "z", z)
    checks.labels_below("clop_loss", "labels", labels, num_classes, low=-1)
    labelled = labels >= 0
    targets = geometry.normalize(prototypes, "unit_sphere")[jnp.where(labelled, labels, 0)]
    cos = jnp.sum(geometry.normalize(z, "unit_sphere") * targets, axis=-1)
    total = jnp.sum(jnp.where(labelled, 1.0 - cos, 0.0))
    return weight * total / jnp.maximum(jnp.sum(labelled), 1)


# Dispatcher.


def baseline_loss(
    name: str,
    z: jax.Array,
    labels: jax.Array | None = None,
    positive_ids: jax.Array | None = None,
    **kwargs: Any,
) -> jax.Array:
    """Evaluates the baseline loss `name` on a stacked batch of views.

    `nt_xent`, `dcl` and `dclw` read `positive_ids`; `supcon` and `sincere` read
    `labels`; `vicreg` and `barlow_twins` split z into its two halves (z[:B], z[B:]),
    which needs the two-view layout: an even batch and, when `positive_ids` is given and
    concrete, positive_ids[:B] == positive_ids[B:].

    Args:
      name: one of `BASELINES`.
      z: embeddings, shape (N, d), all views stacked (concat([view1, view2])).
      labels: integer class labels, shape (N,) (needed by `supcon`, `sincere`).
      positive_ids: integer ids, shape (N,) (needed by `nt_xent`, `dcl`, `dclw`).
      **kwargs: the loss's hyperparameters (`temperature`, `sigma`, `sim_weight`, ...).

    Returns:
      A scalar loss.

    Raises:
      ValueError: for an unknown name, missing ids, or a batch not in the two-view
        layout for `vicreg` and `barlow_twins`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> z = jax.random.normal(jax.random.key(0), (8, 4))
      >>> ids = jnp.concatenate([jnp.arange(4), jnp.arange(4)])
      >>> bool(baseline_loss("nt_xent", z, positive_ids=ids) == nt_xent(z, ids))
      True
      >>> bool(baseline_loss("vicreg", z, positive_ids=ids) == vicreg(z[:4], z[4:]))
      True
    """
    _utils.check_choice("baseline_loss", "name", name, BASELINES)
    if name in _VIEW_PAIR_LOSSES:
        _utils.check_embeddings("baseline_loss", z, min_rows=2)
        n = z.shape[0]
        if n % 2:
            raise ValueError(
                f"{name} needs two views stacked as concat([view1, view2]), so an even batch; "
                f"got z with {n} rows."
            )
        if positive_ids is not None:
            _utils.check_ids("baseline_loss", "positive_ids", positive_ids, n)
            ids = _utils.concrete(positive_ids)
            if ids is not None and not np.array_equal(ids[: n // 2], ids[n // 2 :]):
                raise ValueError(
                    f"{name} pairs row i with row i + {n // 2}, but positive_ids is not in the "
                    "views layout concat([arange(B), arange(B)]) "
                    "(positive_ids[:B] != positive_ids[B:])."
                )
        loss_fn = vicreg if name == "vicreg" else barlow_twins
        return loss_fn(z[: n // 2], z[n // 2 :], **kwargs)
    ids, arg = (labels, "labels") if name in LABEL_LOSSES else (positive_ids, "positive_ids")
    if ids is None:
        raise ValueError(f"{name} needs {arg}; pass {arg}= with one integer per row of z.")
    return {"nt_xent": nt_xent, "supcon": supcon, "sincere": sincere, "dcl": dcl, "dclw": dclw}[
        name
    ](z, ids, **kwargs)
