"""Baseline self-supervised and supervised losses, and the CLOP prototype term.

These are the published losses the hard-negative (HN) and CLOP papers compare against
(docs/math.md §8), written as pure, jit-able functions of a batch of embeddings, plus the
orthonormal-prototype term of CLOP (docs/math.md §9).

Conventions shared by the contrastive losses (``nt_xent``, ``supcon``, ``sincere``,
``dcl``, ``dclw``):

* ``z`` has shape ``[N, d]`` and is *un-normalized*: every loss takes cosine
  similarities, ``s_ij = z_i · z_j / (‖z_i‖ ‖z_j‖)``, through a safe norm (a zero row
  gets similarity 0 to everything and finite gradients).
* Positives of anchor ``i`` are the other rows with the same id (``positive_ids`` for
  the self-supervised losses, ``labels`` for the supervised ones); the anchor itself is
  never a positive nor in any denominator.
* For two augmented views of ``B`` examples the layout is
  ``z = concat([view1, view2])`` (``N = 2B``) with
  ``positive_ids = concat([arange(B), arange(B)])``.
* The loss of an anchor is the mean over its positives; the batch loss is the mean over
  anchors that have at least one positive (and, where the loss needs one, a negative).
  A batch where no anchor qualifies gives 0, not NaN.

Every log-sum-exp over a masked set is computed with ``where`` masks and a shifted
exponential, never ``log(0)``; gradients stay finite for empty sets.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hncl_jax import checks, geometry

BASELINES = ("nt_xent", "supcon", "sincere", "dcl", "dclw", "vicreg", "barlow_twins")
CONTRAST_MODES = ("all", "one")

# Losses of BASELINES that read `labels` (the others read `positive_ids` or split z).
_LABEL_LOSSES = ("supcon", "sincere")
_VIEW_PAIR_LOSSES = ("vicreg", "barlow_twins")


# Argument checks. Shapes are static under jit, so they are always checked; values (a
# temperature, a label range) are checked only when they are concrete, so a traced
# temperature (e.g. a learned one) still works.


def _concrete(x: Any) -> np.ndarray | None:
    """Returns `x` as a NumPy array if it is known at trace time, else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def _check_positive_scalar(value: Any, name: str) -> None:
    v = _concrete(value)
    if v is not None and (v.ndim != 0 or not np.isfinite(v) or v <= 0):
        raise ValueError(
            f"{name} must be a finite scalar > 0, got {value!r}; pass e.g. {name}=0.5."
        )


def _check_nonnegative_scalar(value: Any, name: str) -> None:
    v = _concrete(value)
    if v is not None and (v.ndim != 0 or not np.isfinite(v) or v < 0):
        raise ValueError(f"{name} must be a finite scalar >= 0, got {value!r}.")


def _check_embeddings(z: jax.Array, name: str = "z", min_rows: int = 2) -> None:
    if jnp.ndim(z) != 2:
        raise ValueError(
            f"{name} must have shape [N, d], got shape {jnp.shape(z)}; "
            "reshape it to (batch, features)."
        )
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got shape {z.shape}.")
    if not jnp.issubdtype(z.dtype, jnp.floating):
        raise ValueError(
            f"{name} must be a floating array, got dtype {z.dtype}; cast with .astype."
        )


def _check_ids(ids: jax.Array, n: int, name: str) -> None:
    if jnp.shape(ids) != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) to match z, got shape {jnp.shape(ids)}; "
            "pass one id per row of z."
        )
    if not jnp.issubdtype(jnp.asarray(ids).dtype, jnp.integer):
        raise ValueError(f"{name} must be an integer array, got dtype {jnp.asarray(ids).dtype}.")


def _check_view_pair(z1: jax.Array, z2: jax.Array) -> None:
    _check_embeddings(z1, "z1")
    _check_embeddings(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape [B, d], got {z1.shape} and {z2.shape}; "
            "row i of z1 and row i of z2 must be two views of the same example."
        )


# Shared numerics.


def _cosine_logits(z: jax.Array, temperature: jax.Array | float) -> jax.Array:
    """Returns the [N, N] cosine similarities divided by the temperature."""
    zn = geometry.normalize(z, "unit_sphere")
    return (zn @ zn.T) / temperature


def _masked_logsumexp(logits: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Row-wise log Σ_{k: mask_ik} exp(logits_ik) and whether the row's set is non-empty.

    An empty row gives 0 (not -inf), so callers can drop it with `where` without NaN
    gradients; masked entries enter as exp(-inf) = 0, which has a zero derivative.
    """
    nonempty = jnp.any(mask, axis=-1)
    row_max = jnp.max(jnp.where(mask, logits, -jnp.inf), axis=-1, keepdims=True)
    row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    shifted = jnp.where(mask, logits - row_max, -jnp.inf)
    total = jnp.sum(jnp.exp(shifted), axis=-1)
    lse = jnp.log(jnp.where(nonempty, total, 1.0)) + row_max[..., 0]
    return jnp.where(nonempty, lse, 0.0), nonempty


def _pair_masks(ids: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Returns (positive, negative, not_self) [N, N] boolean masks for integer ids (N,)."""
    same = ids[:, None] == ids[None, :]
    not_self = ~jnp.eye(ids.shape[0], dtype=bool)
    return same & not_self, ~same, not_self


def _mean_over_positives_then_anchors(
    pair_loss: jax.Array, positive: jax.Array, valid_anchor: jax.Array
) -> jax.Array:
    """Mean over each anchor's positives, then over the valid anchors (0 if none)."""
    num_pos = jnp.sum(positive, axis=-1)
    per_anchor = jnp.sum(jnp.where(positive, pair_loss, 0.0), axis=-1) / jnp.maximum(num_pos, 1)
    valid = valid_anchor & (num_pos > 0)
    num_valid = jnp.sum(valid)
    return jnp.sum(jnp.where(valid, per_anchor, 0.0)) / jnp.maximum(num_valid, 1)


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
    log_denominator, _ = _masked_logsumexp(logits, not_self)
    pair_loss = log_denominator[:, None] - logits
    anchors = jnp.ones(ids.shape, bool) if anchors is None else anchors
    return _mean_over_positives_then_anchors(pair_loss, positive, anchors)


# Contrastive baselines.


def nt_xent(
    z: jax.Array, positive_ids: jax.Array, temperature: jax.Array | float = 0.5
) -> jax.Array:
    r"""Normalized temperature-scaled cross entropy (NT-Xent, the SimCLR loss).

    With cosine similarities :math:`s_{ij}` and positives :math:`P(i) = \{j \ne i :
    \mathrm{id}_j = \mathrm{id}_i\}`,

    .. math::
      \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)}
        \log \frac{\exp(s_{ip}/\tau)}{\sum_{k \ne i} \exp(s_{ik}/\tau)},

    averaged over the anchors with :math:`|P(i)| \ge 1`. In the two-view layout each
    anchor has exactly one positive (its other view) and this is SimCLR's loss over all
    :math:`2B` anchors. With several positives per anchor it coincides with
    :func:`supcon` (all other rows, positives included, stay in the denominator); it then
    differs from ``optax.losses.ntxent``, which removes the other positives from each
    denominator (that is :func:`sincere`, up to the averaging).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> views = jax.random.normal(jax.random.key(0), (8, 16))   # 2 views of B = 4
      >>> ids = jnp.concatenate([jnp.arange(4), jnp.arange(4)])
      >>> loss = nt_xent(views, ids, temperature=0.5)

    Args:
      z: embeddings, un-normalized, shape ``[N, d]`` (``N = 2B`` for two views).
      positive_ids: integer ids, shape ``[N]``; rows with equal ids are positives.
      temperature: :math:`\tau > 0`, a scalar.

    Returns:
      A scalar loss.

    References:
      T. Chen et al., `A Simple Framework for Contrastive Learning of Visual
      Representations <https://arxiv.org/abs/2002.05709>`_, ICML 2020, eq. (1).
    """
    _check_embeddings(z)
    _check_ids(positive_ids, z.shape[0], "positive_ids")
    _check_positive_scalar(temperature, "temperature")
    return _softmax_cross_entropy_over_all_others(z, positive_ids, temperature)


def supcon(
    z: jax.Array,
    labels: jax.Array,
    temperature: jax.Array | float = 0.1,
    contrast_mode: str = "all",
    num_views: int = 2,
) -> jax.Array:
    r"""Supervised contrastive loss, the :math:`\mathcal{L}^{sup}_{out}` form.

    .. math::
      \mathcal{L} = \frac{1}{|I'|} \sum_{i \in I'} \frac{-1}{|P(i)|} \sum_{p \in P(i)}
        \log \frac{\exp(s_{ip}/\tau)}{\sum_{a \ne i} \exp(s_{ia}/\tau)},

    with :math:`P(i)` the other rows of anchor :math:`i`'s class and :math:`I'` the
    anchors with at least one positive (anchors alone in their class are dropped). The
    mean over positives is outside the log ("out"), the variant Khosla et al. recommend.
    The reference code's extra factor ``temperature / base_temperature`` is not applied.

    ``contrast_mode`` is the reference code's option: ``"all"`` makes every row an
    anchor; ``"one"`` only the rows of the first view, ``z[: N // num_views]``, which
    still contrast against every row (all views), as ``anchor_feature = features[:, 0]``
    there. With one view (``num_views=1``) the two modes agree.

    Args:
      z: embeddings, un-normalized, shape ``[N, d]`` (all views stacked,
        ``concat([view1, ..., viewV])``).
      labels: integer class labels, shape ``[N]``.
      temperature: :math:`\tau > 0`, a scalar.
      contrast_mode: ``"all"`` or ``"one"``.
      num_views: :math:`V \ge 1`, the number of stacked views (``"one"`` only); ``N``
        must be a multiple of it.

    Returns:
      A scalar loss.

    Raises:
      ValueError: for an unknown ``contrast_mode``, or ``N`` not a multiple of
        ``num_views``.

    References:
      P. Khosla et al., `Supervised Contrastive Learning
      <https://arxiv.org/abs/2004.11362>`_, NeurIPS 2020, eq. (2).
    """
    _check_embeddings(z)
    _check_ids(labels, z.shape[0], "labels")
    _check_positive_scalar(temperature, "temperature")
    if contrast_mode not in CONTRAST_MODES:
        raise ValueError(f"contrast_mode must be one of {CONTRAST_MODES}, got {contrast_mode!r}.")
    if contrast_mode == "all":
        return _softmax_cross_entropy_over_all_others(z, labels, temperature)
    n = z.shape[0]
    bad = isinstance(num_views, bool) or not isinstance(num_views, int | np.integer)
    if bad or num_views < 1 or n % num_views:
        raise ValueError(
            f"num_views={num_views!r} must be a positive int dividing the {n} rows of z "
            "(contrast_mode='one' takes the first N // num_views rows as anchors)."
        )
    anchors = jnp.arange(n) < n // num_views
    return _softmax_cross_entropy_over_all_others(z, labels, temperature, anchors)


def sincere(z: jax.Array, labels: jax.Array, temperature: jax.Array | float = 0.1) -> jax.Array:
    r"""Supervised InfoNCE REvisited (SINCERE) loss.

    Each positive pair is classified against the other classes only:

    .. math::
      \ell_i = \frac{-1}{|P(i)|} \sum_{p \in P(i)} \log
        \frac{\exp(s_{ip}/\tau)}{\exp(s_{ip}/\tau) + \sum_{n: y_n \ne y_i} \exp(s_{in}/\tau)},

    averaged over anchors with at least one positive. Since its denominator is a subset
    of SupCon's, ``sincere <= supcon`` per pair, with equality when every anchor has
    exactly one positive. ``optax.losses.ntxent`` computes the same pair terms but
    averages over all positive pairs at once; both agree when every anchor has the same
    number of positives (balanced classes).

    Args:
      z: embeddings, un-normalized, shape ``[N, d]``.
      labels: integer class labels, shape ``[N]``.
      temperature: :math:`\tau > 0`, a scalar.

    Returns:
      A scalar loss.

    References:
      P. Feeney and M. C. Hughes, `SINCERE: Supervised Information Noise-Contrastive
      Estimation REvisited <https://arxiv.org/abs/2309.14277>`_, 2024.
    """
    _check_embeddings(z)
    _check_ids(labels, z.shape[0], "labels")
    _check_positive_scalar(temperature, "temperature")
    logits = _cosine_logits(z, temperature)
    positive, negative, _ = _pair_masks(labels)
    log_negatives, has_negative = _masked_logsumexp(logits, negative)
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
    log_negatives, has_negative = _masked_logsumexp(logits, negative)
    if sigma is None:
        weight = 1.0
    else:
        # w_ip = 2 - exp(s_ip/σ) / mean_{positive pairs} exp(s/σ) = 2 - M softmax_ip; the
        # gradient flows through w, as in the authors' code.
        num_pairs = jnp.maximum(jnp.sum(positive), 1)
        scaled = cos / sigma
        log_total, _ = _masked_logsumexp(scaled.ravel(), positive.ravel())
        ratio = jnp.exp(jnp.where(positive, scaled - log_total, -jnp.inf))
        weight = 2.0 - num_pairs * ratio
    pair_loss = log_negatives[:, None] - weight * logits
    return _mean_over_positives_then_anchors(pair_loss, positive, has_negative)


def dcl(z: jax.Array, positive_ids: jax.Array, temperature: jax.Array | float = 0.5) -> jax.Array:
    r"""Decoupled contrastive loss (DCL): NT-Xent without the positive in the denominator.

    .. math::
      \ell_i = \frac{1}{|P(i)|} \sum_{p \in P(i)} \Big[ -s_{ip}/\tau +
        \log \sum_{n \notin P(i) \cup \{i\}} \exp(s_{in}/\tau) \Big],

    averaged over anchors with at least one positive and one negative. In the two-view
    layout the mean over all :math:`2B` anchors equals the authors' symmetric loss
    ``(DCL(z1, z2) + DCL(z2, z1)) / 2``. Unlike NT-Xent it can be negative, and
    ``nt_xent - dcl = mean_i softplus(s_ip/τ - LSE_n s_in/τ) > 0`` in the two-view layout.

    Args:
      z: embeddings, un-normalized, shape ``[N, d]``.
      positive_ids: integer ids, shape ``[N]``; rows with equal ids are positives.
      temperature: :math:`\tau > 0`, a scalar.

    Returns:
      A scalar loss.

    References:
      C.-H. Yeh et al., `Decoupled Contrastive Learning
      <https://arxiv.org/abs/2110.06848>`_, ECCV 2022.
    """
    _check_embeddings(z)
    _check_ids(positive_ids, z.shape[0], "positive_ids")
    _check_positive_scalar(temperature, "temperature")
    return _decoupled(z, positive_ids, temperature, None)


def dclw(
    z: jax.Array,
    positive_ids: jax.Array,
    temperature: jax.Array | float = 0.5,
    sigma: jax.Array | float = 0.5,
) -> jax.Array:
    r"""Decoupled contrastive loss with von Mises-Fisher weighting (DCLW).

    As :func:`dcl`, with the positive term :math:`-s_{ip}/\tau` multiplied by

    .. math::
      w_{ip} = 2 - \frac{\exp(s_{ip}/\sigma)}{\frac{1}{M}\sum_{(a,b)} \exp(s_{ab}/\sigma)},

    the mean running over the :math:`M` ordered positive pairs of the batch, so the
    weights average to 1 and harder (less similar) positives weigh more. As
    :math:`\sigma \to \infty`, :math:`w \to 1` and DCLW becomes DCL.

    Args:
      z: embeddings, un-normalized, shape ``[N, d]``.
      positive_ids: integer ids, shape ``[N]``; rows with equal ids are positives.
      temperature: :math:`\tau > 0`, a scalar.
      sigma: :math:`\sigma > 0`, the vMF weighting scale.

    Returns:
      A scalar loss.

    References:
      C.-H. Yeh et al., `Decoupled Contrastive Learning
      <https://arxiv.org/abs/2110.06848>`_, ECCV 2022 (DCLW).
    """
    _check_embeddings(z)
    _check_ids(positive_ids, z.shape[0], "positive_ids")
    _check_positive_scalar(temperature, "temperature")
    _check_positive_scalar(sigma, "sigma")
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
    r"""Variance-Invariance-Covariance Regularization (VICReg) loss.

    .. math::
      \mathcal{L} = \lambda\, s(Z, Z') + \mu\, \tfrac{1}{2}[v(Z) + v(Z')]
        + \nu\, [c(Z) + c(Z')],

    with :math:`s` the mean squared error between the views, :math:`v(Z) = \frac{1}{d}
    \sum_j \max(0, 1 - \sqrt{\mathrm{Var}(z^j) + 10^{-4}})` (unbiased variance over the
    batch) and :math:`c(Z) = \frac{1}{d} \sum_{i \ne j} C(Z)_{ij}^2`, :math:`C` the
    unbiased covariance matrix. The variance term is the *mean* of the two branches as in
    the authors' code (``main_vicreg.py``); the paper's formula sums them, which is the
    same loss with :math:`\mu` doubled.

    Args:
      z1: first-view embeddings, shape ``[B, d]``, ``B >= 2``.
      z2: second-view embeddings, shape ``[B, d]``; row i is a view of the same example.
      sim_weight: :math:`\lambda`, weight of the invariance term.
      var_weight: :math:`\mu`, weight of the variance term.
      cov_weight: :math:`\nu`, weight of the covariance term.

    Returns:
      A scalar loss.

    References:
      A. Bardes, J. Ponce and Y. LeCun, `VICReg: Variance-Invariance-Covariance
      Regularization for Self-Supervised Learning <https://arxiv.org/abs/2105.04906>`_,
      ICLR 2022, §2.
    """
    _check_view_pair(z1, z2)
    weights = {"sim_weight": sim_weight, "var_weight": var_weight, "cov_weight": cov_weight}
    for name, value in weights.items():
        _check_nonnegative_scalar(value, name)
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
    r"""Barlow Twins redundancy-reduction loss.

    .. math::
      \mathcal{L} = \sum_i (1 - \mathcal{C}_{ii})^2 + \lambda \sum_{i \ne j} \mathcal{C}_{ij}^2,
      \qquad \mathcal{C} = \tfrac{1}{B} \hat Z^\top \hat Z',

    where :math:`\hat Z, \hat Z'` are the views standardized over the batch (mean 0,
    biased variance 1 with :math:`\epsilon = 10^{-5}`, i.e. ``BatchNorm`` without affine
    parameters as in the authors' code), so :math:`\mathcal{C}` is the cross-correlation
    matrix.

    Args:
      z1: first-view embeddings, shape ``[B, d]``, ``B >= 2``.
      z2: second-view embeddings, shape ``[B, d]``; row i is a view of the same example.
      off_diagonal_weight: :math:`\lambda \ge 0`, weight of the redundancy term.

    Returns:
      A scalar loss.

    References:
      J. Zbontar et al., `Barlow Twins: Self-Supervised Learning via Redundancy Reduction
      <https://arxiv.org/abs/2103.03230>`_, ICML 2021, eqs. (1)-(2).
    """
    _check_view_pair(z1, z2)
    _check_nonnegative_scalar(off_diagonal_weight, "off_diagonal_weight")

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
    r"""Random orthonormal class prototypes for CLOP.

    The reduced QR decomposition of a ``[dim, num_classes]`` standard Gaussian matrix
    gives ``num_classes`` orthonormal columns; signs are fixed so that ``R`` has a
    positive diagonal, making the result a deterministic function of ``key`` (the Haar
    distribution on the Stiefel manifold). The prototypes are fixed targets, not
    trained; store them with the checkpoint.

    Args:
      key: a ``jax.random`` key.
      num_classes: :math:`C \ge 1`, the number of prototypes.
      dim: :math:`d \ge C`, the embedding dimension.

    Returns:
      Prototypes, float32, shape ``[C, d]``, with ``P @ P.T = I``.

    Raises:
      ValueError: if ``dim < num_classes``: ``C`` orthonormal vectors need ``d >= C``.

    References:
      H. Li, M. Nguyen and D. Pimentel-Alarcón, Preventing Collapse in Contrastive
      Learning with Orthonormal Prototypes (CLOP), 2024, §4 (the paper orthonormalizes
      Gaussian vectors with an SVD; QR gives the same kind of random orthonormal basis).
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
    r"""Simplex equiangular tight frame prototypes (the comparison to CLOP's).

    Unit vectors with pairwise inner products :math:`-1/(C-1)`, from
    :func:`hncl_jax.geometry.simplex_etf`.

    Args:
      num_classes: :math:`C \ge 2`, the number of prototypes.
      dim: :math:`d \ge C - 1`, the embedding dimension.

    Returns:
      Prototypes, float32, shape ``[C, d]``.

    References:
      V. Papyan, X. Y. Han and D. L. Donoho, `Prevalence of neural collapse during the
      terminal phase of deep learning training <https://arxiv.org/abs/2008.08186>`_,
      PNAS 2020.
    """
    _check_class_count(num_classes, dim)
    return geometry.simplex_etf(num_classes, dim)


def clop_loss(
    z: jax.Array, labels: jax.Array, prototypes: jax.Array, weight: jax.Array | float = 1.0
) -> jax.Array:
    r"""CLOP prototype term: pull labelled embeddings to their class prototype.

    .. math::
      \lambda \cdot \frac{1}{|S|} \sum_{i \in S} \big(1 - \cos(z_i, c_{y_i})\big),
      \qquad S = \{i : y_i \ge 0\},

    added to a contrastive loss. Unlabelled rows (label ``-1``) are ignored; a batch with
    no labelled row gives 0 with zero (finite) gradients. The paper writes a sum over
    :math:`S`; the mean keeps :math:`\lambda` independent of the batch size (docs/math.md §9).

    Args:
      z: embeddings, un-normalized, shape ``[N, d]``.
      labels: integer labels in ``[-1, C)``, shape ``[N]``; ``-1`` marks unlabelled rows.
      prototypes: class prototypes, shape ``[C, d]`` (e.g. :func:`orthonormal_prototypes`).
      weight: :math:`\lambda \ge 0`, a scalar.

    Returns:
      A scalar loss.

    Invalid traced inputs: labels known at trace time outside ``[-1, C)`` raise a
    ValueError; traced ones are not inspected: a label ≥ C silently pulls to the last
    prototype (the gather clamps). Under :func:`hncl_jax.checks.checked` they, and
    non-finite embeddings, raise ``InvalidInputError``.

    References:
      H. Li, M. Nguyen and D. Pimentel-Alarcón, Preventing Collapse in Contrastive
      Learning with Orthonormal Prototypes (CLOP), 2024, §4 eq. (4).
    """
    _check_embeddings(z, min_rows=1)
    _check_ids(labels, z.shape[0], "labels")
    if jnp.ndim(prototypes) != 2 or prototypes.shape[1] != z.shape[1]:
        raise ValueError(
            f"prototypes must have shape [C, {z.shape[1]}] to match z's dim, got "
            f"{jnp.shape(prototypes)}; build them with orthonormal_prototypes(key, C, dim)."
        )
    _check_nonnegative_scalar(weight, "weight")
    concrete_labels = _concrete(labels)
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
    """Evaluates the baseline loss ``name`` on a stacked batch of views.

    ``nt_xent``, ``dcl`` and ``dclw`` read ``positive_ids``; ``supcon`` and ``sincere``
    read ``labels``; ``vicreg`` and ``barlow_twins`` split ``z`` into its two halves
    ``(z[:B], z[B:])``, which needs the two-view layout: an even batch and, when
    ``positive_ids`` is given and concrete, ``positive_ids[:B] == positive_ids[B:]``.

    Args:
      name: one of :data:`BASELINES`.
      z: embeddings, shape ``[N, d]``, all views stacked (``concat([view1, view2])``).
      labels: integer class labels, shape ``[N]`` (needed by ``supcon``, ``sincere``).
      positive_ids: integer ids, shape ``[N]`` (needed by ``nt_xent``, ``dcl``, ``dclw``).
      **kwargs: the loss's hyperparameters (``temperature``, ``sigma``, ``sim_weight``, ...).

    Returns:
      A scalar loss.
    """
    if name not in BASELINES:
        raise ValueError(f"name must be one of {BASELINES}, got {name!r}.")
    if name in _VIEW_PAIR_LOSSES:
        _check_embeddings(z)
        n = z.shape[0]
        if n % 2:
            raise ValueError(
                f"{name} needs two views stacked as concat([view1, view2]), so an even batch; "
                f"got z with {n} rows."
            )
        if positive_ids is not None:
            _check_ids(positive_ids, n, "positive_ids")
            ids = _concrete(positive_ids)
            if ids is not None and not np.array_equal(ids[: n // 2], ids[n // 2 :]):
                raise ValueError(
                    f"{name} pairs row i with row i + {n // 2}, but positive_ids is not in the "
                    "views layout concat([arange(B), arange(B)]) "
                    "(positive_ids[:B] != positive_ids[B:])."
                )
        loss_fn = vicreg if name == "vicreg" else barlow_twins
        return loss_fn(z[: n // 2], z[n // 2 :], **kwargs)
    ids, arg = (labels, "labels") if name in _LABEL_LOSSES else (positive_ids, "positive_ids")
    if ids is None:
        raise ValueError(f"{name} needs {arg}; pass {arg}= with one integer per row of z.")
    return {"nt_xent": nt_xent, "supcon": supcon, "sincere": sincere, "dcl": dcl, "dclw": dclw}[
        name
    ](z, ids, **kwargs)
