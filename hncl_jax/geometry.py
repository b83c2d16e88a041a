"""Representation geometry: normalization, simplex ETF, collapse metrics, theoretical minima.

Everything here is either a pure `jax` function (jit-able; integer sizes such as
`num_classes` are static) or a closed-form number computed in float64 `numpy`:

* `normalize` — the three feature normalizations of [HN Algorithm 1] (docs/math.md §1).
* `simplex_etf` — the C unit vectors with pairwise inner products -1/(C-1) (docs/math.md §10).
* `class_means`, `nc_metrics`, `dc_spectrum`, `effective_rank` — Neural-Collapse and
  Dimensional-Collapse diagnostics [HN §5.2-5.3] (docs/math.md §10).
* `papyan_nc`, `rankme`, `per_class_stats` — Papyan et al.'s NC1-NC4, the RankMe
  entropy effective rank and per-class values, beside the paper's metrics.
* `scl_lower_bound`, `ucl_lower_bound`, `ucl_reweighted_limit` — the minima of the
  supervised and unsupervised losses [HN Thm 2, Thm 3] (docs/math.md §11).
* `clop_lr_bound`, `clop_lr_bound_corrected`, `clop_gradient_descent` — the learning-rate
  bound of [CLOP Thm 1] (as printed, and with its proof's algebra redone) and
  the experiment of [CLOP §3.1, Fig. 3] (docs/math.md §9).

References:
  [HN] Jiang et al., "Hard-Negative Sampling for Contrastive Learning: Optimal
  Representation Geometry and Neural- vs Dimensional-Collapse" (earlier version: arXiv:2209.00078).
  [CLOP] "Preventing Collapse in Contrastive Learning with Orthonormal Prototypes"
  (arXiv:2403.18699).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from hncl_jax import _loss_utils as _utils

NORMALIZATIONS = ("unit_ball", "unit_sphere", "none")

# The psi_k names of docs/math.md §2, the tuple `hardening.PSIS` also holds (this module
# depends on no other public hncl_jax module, only on the private `_loss_utils`).
_PSIS = _utils.PSIS


def _safe_norm(x: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """Euclidean norm whose value and gradient are finite (0) at x = 0.

    The double-where trick: sqrt is evaluated on 1 where the squared norm is 0, so the
    backward pass never sees sqrt'(0) = inf (a single `where` would give 0 * inf = nan).
    """
    sq = jnp.sum(jnp.square(x), axis=axis, keepdims=keepdims)
    is_zero = sq == 0
    safe_sq = jnp.where(is_zero, jnp.ones_like(sq), sq)
    return jnp.where(is_zero, jnp.zeros_like(sq), jnp.sqrt(safe_sq))


def normalize(f: ArrayLike, kind: str = "unit_ball") -> jax.Array:
    """Maps raw embeddings f to the representation z used by every loss.

      kind            z
      "unit_ball"     f if ‖f‖ ≤ 1, else f / ‖f‖
      "unit_sphere"   f / ‖f‖ (and 0 at f = 0)
      "none"          f / sqrt(d)

    The norm is computed safely: value and gradient are finite at f = 0.

    Args:
      f: embeddings, shape (..., d); the last axis is the feature axis.
      kind: one of `NORMALIZATIONS`. Static under `jax.jit`.

    Returns:
      z with the shape and dtype of f.

    Raises:
      ValueError: if `kind` is not in `NORMALIZATIONS`.

    Examples:
      >>> import jax.numpy as jnp
      >>> f = jnp.array([[3.0, 4.0], [0.3, 0.4]])
      >>> print(normalize(f, "unit_ball"))
      [[0.6 0.8]
       [0.3 0.4]]
      >>> print(normalize(f, "unit_sphere"))
      [[0.6 0.8]
       [0.6 0.8]]

    References:
      [HN Algorithm 1, lines 5-15]; docs/math.md §1.
    """
    _utils.check_choice("normalize", "kind", kind, NORMALIZATIONS)
    f = jnp.asarray(f)
    if kind == "none":
        return f / jnp.sqrt(jnp.asarray(f.shape[-1], dtype=f.dtype))
    norm = _safe_norm(f, keepdims=True)
    if kind == "unit_sphere":
        return f / jnp.where(norm > 0, norm, jnp.ones_like(norm))
    # unit_ball: divide only when the norm exceeds 1.
    return f / jnp.maximum(norm, jnp.ones_like(norm))


def _check_num_classes(fn: str, num_classes: int) -> None:
    if not isinstance(num_classes, int | np.integer) or num_classes < 2:
        raise ValueError(f"{fn}: num_classes={num_classes!r} must be an integer >= 2.")


def simplex_etf(num_classes: int, dim: int | None = None) -> jax.Array:
    """The simplex equiangular tight frame (ETF): C unit vectors, inner products -1/(C-1).

    The rows of sqrt(C/(C-1)) (I_C - 11ᵀ/C) lie in the (C-1)-dimensional complement of
    the all-ones vector; they are written in the Helmert orthonormal basis of that
    complement (deterministic, no random rotation) and placed in the first C-1
    coordinates of R^d. The rows have unit norm, pairwise inner products -1/(C-1) and
    sum to zero: the class means of Neural Collapse [HN Def. 5].

    Args:
      num_classes: C >= 2.
      dim: d >= C - 1; defaults to C - 1.

    Returns:
      (C, d) float32 array, one ETF vertex per row.

    Raises:
      ValueError: if C < 2 or d < C - 1.

    Examples:
      >>> e = simplex_etf(3)
      >>> e.shape
      (3, 2)
      >>> print((e @ e.T).round(4))
      [[ 1.  -0.5 -0.5]
       [-0.5  1.  -0.5]
       [-0.5 -0.5  1. ]]

    References:
      [HN Thm 2, Def. 5]; docs/math.md §10.
    """
    _check_num_classes("simplex_etf", num_classes)
    c = int(num_classes)
    d = c - 1 if dim is None else dim
    if not isinstance(d, int | np.integer) or d < c - 1:
        raise ValueError(
            f"simplex_etf: dim={dim!r} is too small for num_classes={c}; the simplex ETF needs "
            f"dim >= num_classes - 1 = {c - 1} (pass dim=None for the minimal dimension)."
        )
    # Helmert basis: column j (1..C-1) is (1,..,1,-j,0,..,0)/sqrt(j(j+1)) with j ones; the
    # columns are orthonormal and orthogonal to 1, so U Uᵀ = I - 11ᵀ/C.
    u = np.zeros((c, c - 1), dtype=np.float64)
    for j in range(1, c):
        u[:j, j - 1] = 1.0
        u[j, j - 1] = -float(j)
        u[:, j - 1] /= math.sqrt(j * (j + 1))
    etf = np.zeros((c, int(d)), dtype=np.float64)
    # sqrt(C/(C-1)) (I - 11ᵀ/C) U = sqrt(C/(C-1)) U: the coordinates of the rows in basis U.
    etf[:, : c - 1] = math.sqrt(c / (c - 1)) * u
    return jnp.asarray(etf, dtype=jnp.float32)


def _check_embeddings(fn: str, z: jax.Array, labels: jax.Array) -> None:
    if z.ndim != 2:
        raise ValueError(f"{fn}: z must have shape (N, d); got shape {z.shape}.")
    if labels.shape != (z.shape[0],):
        raise ValueError(
            f"{fn}: labels must have shape (N,) = ({z.shape[0]},) to match z; got {labels.shape}."
        )


def class_means(z: ArrayLike, labels: ArrayLike, num_classes: int) -> jax.Array:
    """Per-class mean of the representations.

    Labels outside [0, C) (e.g. -1 for unlabelled examples) are ignored; a class with no
    example has mean 0.

    Args:
      z: representations, shape (N, d).
      labels: int class of each row, shape (N,).
      num_classes: C, static under `jax.jit`.

    Returns:
      (C, d) array of class means μ_c, in the dtype of z.

    References:
      [HN §5.2]; docs/math.md §10.
    """
    _check_num_classes("class_means", num_classes)
    z = jnp.asarray(z)
    labels = jnp.asarray(labels)
    _check_embeddings("class_means", z, labels)
    # segment_sum drops ids outside [0, num_segments), so invalid labels count nowhere.
    sums = jax.ops.segment_sum(z, labels, num_segments=num_classes)
    counts = jax.ops.segment_sum(jnp.ones_like(labels, dtype=z.dtype), labels, num_classes)
    return sums / jnp.maximum(counts, 1)[:, None]


def nc_metrics(
    z: ArrayLike, labels: ArrayLike, num_classes: int, *, return_absent: bool = False
) -> dict[str, jax.Array]:
    """The Neural-Collapse metrics of [HN §5.2]; all are 0 at NC.

      key                       formula
      "zero_sum"                ‖Σ_c μ_c‖
      "unit_norm"               (1/C) Σ_c |‖μ_c‖ - 1|
      "equal_inner_product"     (1/(C(C-1))) Σ_{j≠l} |μ_j·μ_l + 1/(C-1)|
      "within_class_variance"   (1/N) Σ_i ‖z_i - μ_{y_i}‖²

    Rows with a label outside [0, C) are ignored (N counts the valid rows only). A class
    with no row in the batch has mean 0, which shifts "zero_sum", "unit_norm" and
    "equal_inner_product" (no error: the count may be traced); `return_absent=True`
    adds "absent_classes", the number of such classes, to flag it.

    Args:
      z: representations, shape (N, d), already normalized.
      labels: int class of each row, shape (N,).
      num_classes: C >= 2, static under `jax.jit`.
      return_absent: also return "absent_classes" (int32 scalar).

    Returns:
      dict of four scalar arrays with the keys above (five with `return_absent`).

    Raises:
      ValueError: if `labels` are not integers (e.g. float class ids).

    Examples:
      At Neural Collapse (every example on its class's simplex-ETF vertex) all four
      metrics are 0:

      >>> import jax.numpy as jnp
      >>> labels = jnp.array([0, 1, 2, 0, 1, 2])
      >>> metrics = nc_metrics(simplex_etf(3)[labels], labels, num_classes=3)
      >>> {key: round(float(value), 4) for key, value in metrics.items()}
      {'zero_sum': 0.0, 'unit_norm': 0.0, 'equal_inner_product': 0.0, 'within_class_variance': 0.0}

    References:
      [HN §5.2, Thm 2 conditions (i)-(iv), Def. 6]; docs/math.md §10.
    """
    z = jnp.asarray(z)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"nc_metrics: labels must be integer class ids; got dtype {labels.dtype}. Convert "
            "them with labels.astype(jnp.int32)."
        )
    mu = class_means(z, labels, num_classes)
    c = num_classes
    gram = mu @ mu.T
    off_diagonal = ~jnp.eye(c, dtype=bool)
    equal_ip = jnp.sum(jnp.where(off_diagonal, jnp.abs(gram + 1.0 / (c - 1)), 0.0)) / (c * (c - 1))
    valid = (labels >= 0) & (labels < c)
    residual = z - mu[jnp.clip(labels, 0, c - 1)]
    sq_dev = jnp.where(valid, jnp.sum(jnp.square(residual), axis=-1), 0.0)
    out = {
        "zero_sum": _safe_norm(jnp.sum(mu, axis=0)),
        "unit_norm": jnp.mean(jnp.abs(_safe_norm(mu) - 1.0)),
        "equal_inner_product": equal_ip,
        "within_class_variance": jnp.sum(sq_dev) / jnp.maximum(jnp.sum(valid), 1),
    }
    if return_absent:
        present = jnp.zeros((c,), bool).at[jnp.where(valid, labels, c)].set(True, mode="drop")
        out["absent_classes"] = jnp.sum(~present).astype(jnp.int32)
    return out


def dc_spectrum(z: ArrayLike, labels: ArrayLike, num_classes: int) -> jax.Array:
    """Normalized spectrum of the empirical covariance of the class means (DC diagnostic).

    The covariance (1/C) Σ_c (μ_c - μ̄)(μ_c - μ̄)ᵀ is PSD, so its singular values are its
    eigenvalues s_i² / C, with s_i the singular values of the centred (C, d) mean matrix.
    They are returned sorted descending and divided by the largest. The centred means have
    rank <= C - 1, so with d >= C the last value is ~0 even at Neural Collapse; at NC with
    d = C - 1 all C - 1 values are 1 [HN §5.3]. Dimensional Collapse shows as values
    orders of magnitude below 1 [HN Def. 7].

    Args:
      z: representations, shape (N, d).
      labels: int class of each row, shape (N,); labels outside [0, C) are ignored.
      num_classes: C >= 2, static under `jax.jit`.

    Returns:
      (min(C, d),) array, descending, first entry 1 up to rounding (all zeros if all
      class means coincide).

    References:
      [HN §5.3, Def. 7, Fig. 4]; docs/math.md §10.
    """
    mu = class_means(z, labels, num_classes)
    centred = mu - jnp.mean(mu, axis=0, keepdims=True)
    s = jnp.linalg.svd(centred, compute_uv=False)  # descending
    eig = jnp.square(s)
    return jnp.where(eig[0] > 0, eig / jnp.where(eig[0] > 0, eig[0], 1.0), jnp.zeros_like(eig))


def effective_rank(x: ArrayLike, tol: float = 1e-3) -> jax.Array:
    """Number of singular values of x above tol times the largest.

    Args:
      x: matrix, shape (m, n).
      tol: relative threshold in (0, 1).

    Returns:
      int32 scalar array in [0, min(m, n)].

    References:
      The collapse criterion of [CLOP §3.1, Fig. 3]: complete collapse = rank 1.
    """
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"effective_rank: x must be a matrix (m, n); got shape {x.shape}.")
    s = jnp.linalg.svd(x, compute_uv=False)
    return jnp.sum(s > tol * s[0]).astype(jnp.int32)


# ----------------------------------------------------------------------------------------
# Collapse statistics of Papyan et al. and RankMe, beside the [HN] metrics.

_HIGHEST = jax.lax.Precision.HIGHEST


def papyan_nc(
    z: ArrayLike,
    labels: ArrayLike,
    num_classes: int,
    *,
    ridge: float = 1e-4,
    rcond: float = 1e-6,
) -> dict[str, jax.Array]:
    """The Neural-Collapse statistics NC1-NC4 of Papyan, Han and Donoho; all 0 at NC.

    With class means μ_c, their mean μ_G (over the classes present), centred means
    m_c = μ_c − μ_G, M = [m_c] (C, d), Σ_W = (1/N) Σ_i (z_i − μ_{y_i})(z_i − μ_{y_i})ᵀ and
    Σ_B = (1/C) MᵀM:

      key                 formula
      "nc1"               (1/C) tr(Σ_W Σ_B^†): within-class variability against between-class
      "nc2_equinorm"      std_c ‖m_c‖ / mean_c ‖m_c‖
      "nc2_equiangular"   std_{c≠c'} cos(m_c, m_c')
      "nc2_maxangle"      mean_{c≠c'} |cos(m_c, m_c') + 1/(C−1)|
      "nc3"               ‖W/‖W‖_F − M/‖M‖_F‖_F², W the linear classifier below (self-duality)
      "nc4"               share of rows where the classifier and the nearest class mean disagree

    A contrastive encoder has no classifier of its own, so W (C, d) and b are the
    ridge least-squares fit of the one-hot labels on z (penalty `ridge` times the mean
    feature variance), the closed-form stand-in for the trained last layer of Papyan et
    al. Σ_B^† is the pseudo-inverse on the span of M (singular values above `rcond`
    times the largest), computed in that r ≤ C − 1 dimensional span: O(N d r + d³).
    Classes without a row are left out (C then counts the present ones); rows with a
    label outside [0, C) are ignored.

    Args:
      z: representations, shape (N, d).
      labels: int (N,).
      num_classes: C >= 2, static under `jax.jit`.
      ridge: relative ridge penalty of the classifier, > 0.
      rcond: relative cut-off of Σ_B's pseudo-inverse.

    Returns:
      dict of scalar arrays with the keys above.

    References:
      V. Papyan, X. Y. Han, D. L. Donoho, "Prevalence of neural collapse during the
      terminal phase of deep learning training", PNAS 2020 (arXiv:2008.08186), §3
      and Fig. 6-9.
    """
    z = jnp.asarray(z, jnp.float32)
    labels = jnp.asarray(labels)
    c = num_classes
    mu = class_means(z, labels, c)
    valid = (labels >= 0) & (labels < c)
    safe_labels = jnp.clip(labels, 0, c - 1)
    counts = jax.ops.segment_sum(valid.astype(jnp.float32), safe_labels, num_segments=c)
    present = counts > 0
    num_present = jnp.maximum(jnp.sum(present), 1)
    mu_g = jnp.sum(jnp.where(present[:, None], mu, 0.0), axis=0) / num_present
    m = jnp.where(present[:, None], mu - mu_g, 0.0)
    n = jnp.maximum(jnp.sum(valid), 1)
    resid = jnp.where(valid[:, None], z - mu[safe_labels], 0.0)

    # NC1 = (1/C) Σ_k (C / s_k²) v_kᵀ Σ_W v_k = Σ_k v_kᵀ Σ_W v_k / s_k², M = U S Vᵀ.
    _, sv, vt = jnp.linalg.svd(m, full_matrices=False)
    keep = sv > rcond * sv[0]
    along = jnp.sum(jnp.square(jnp.matmul(resid, vt.T, precision=_HIGHEST)), axis=0) / n
    nc1 = jnp.sum(jnp.where(keep, along / jnp.where(keep, jnp.square(sv), 1.0), 0.0))

    norms = _safe_norm(m)
    mean_norm = jnp.sum(jnp.where(present, norms, 0.0)) / num_present
    var_norm = jnp.sum(jnp.where(present, jnp.square(norms - mean_norm), 0.0)) / num_present
    equinorm = jnp.sqrt(var_norm) / jnp.maximum(mean_norm, 1e-12)
    unit_m = m / jnp.maximum(norms, 1e-12)[:, None]
    cos = jnp.matmul(unit_m, unit_m.T, precision=_HIGHEST)
    pairs = present[:, None] & present[None, :] & ~jnp.eye(c, dtype=bool)
    num_pairs = jnp.maximum(jnp.sum(pairs), 1)
    mean_cos = jnp.sum(jnp.where(pairs, cos, 0.0)) / num_pairs
    equiangular = jnp.sqrt(jnp.sum(jnp.where(pairs, jnp.square(cos - mean_cos), 0.0)) / num_pairs)
    maxangle = (
        jnp.sum(jnp.where(pairs, jnp.abs(cos + 1.0 / jnp.maximum(num_present - 1, 1)), 0.0))
        / num_pairs
    )

    # Ridge least squares: W = Ỹᵀ X̃ (X̃ᵀ X̃ + λ I)⁻¹ on centred rows, b from the means.
    x_mean = jnp.sum(jnp.where(valid[:, None], z, 0.0), axis=0) / n
    xc = jnp.where(valid[:, None], z - x_mean, 0.0)
    onehot = jax.nn.one_hot(safe_labels, c) * valid[:, None]
    y_mean = jnp.sum(onehot, axis=0) / n
    yc = jnp.where(valid[:, None], onehot - y_mean, 0.0)
    gram = jnp.matmul(xc.T, xc, precision=_HIGHEST) / n
    d = z.shape[1]
    penalty = ridge * jnp.maximum(jnp.trace(gram) / d, 1e-12)
    cross = jnp.matmul(yc.T, xc, precision=_HIGHEST) / n  # (C, d)
    w = jnp.linalg.solve(gram + penalty * jnp.eye(d, dtype=z.dtype), cross.T).T
    b = y_mean - w @ x_mean
    w_unit = w / jnp.maximum(jnp.linalg.norm(w), 1e-12)
    m_unit = m / jnp.maximum(jnp.linalg.norm(m), 1e-12)
    nc3 = jnp.sum(jnp.square(w_unit - m_unit))
    scores = jnp.matmul(z, w.T, precision=_HIGHEST) + b
    scores = jnp.where(present[None, :], scores, -jnp.inf)
    dist = jnp.sum(jnp.square(mu), axis=-1) - 2.0 * jnp.matmul(z, mu.T, precision=_HIGHEST)
    dist = jnp.where(present[None, :], dist, jnp.inf)
    disagree = jnp.argmax(scores, axis=-1) != jnp.argmin(dist, axis=-1)
    nc4 = jnp.sum(jnp.where(valid, disagree, False)) / n
    return {
        "nc1": nc1,
        "nc2_equinorm": equinorm,
        "nc2_equiangular": equiangular,
        "nc2_maxangle": maxangle,
        "nc3": nc3,
        "nc4": nc4.astype(jnp.float32),
    }


def rankme(x: ArrayLike, eps: float = 1e-7) -> jax.Array:
    """RankMe, the entropy effective rank exp(−Σ_k p_k log p_k), p_k = σ_k / Σ σ + ε.

    σ_k are the singular values of the (uncentred) representation matrix x, computed
    from the eigenvalues of the (d, d) Gram matrix xᵀx (O(N d² + d³), no (N, N) SVD).
    Between 1 (one direction) and min(N, d) (all singular values equal).

    Args:
      x: representations, shape (N, d).
      eps: the ε of RankMe.

    Returns:
      A float32 scalar array.

    References:
      Q. Garrido, R. Balestriero, L. Najman, Y. LeCun, "RankMe: Assessing the
      downstream performance of pretrained self-supervised representations by their
      rank", ICML 2023 (arXiv:2210.02885), eq. 1.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"rankme: x must be a matrix (N, d); got shape {x.shape}.")
    gram = jnp.matmul(x.T, x, precision=_HIGHEST)
    eig = jnp.linalg.eigvalsh(gram)
    # Eigenvalues of a float32 Gram matrix below d·ε·λ_max are rounding noise; their
    # square roots (~sqrt(ε) σ_max) would count as directions, so they are zeroed.
    noise = x.shape[1] * jnp.finfo(jnp.float32).eps * jnp.max(eig)
    sv = jnp.sqrt(jnp.where(eig > noise, eig, 0.0))
    p = sv / jnp.maximum(jnp.sum(sv), 1e-30) + eps
    return jnp.exp(-jnp.sum(p * jnp.log(p)))


def per_class_stats(z: ArrayLike, labels: ArrayLike, num_classes: int) -> dict[str, jax.Array]:
    """Per-class values of the [HN] metrics: within-class variance and mean norm.

    Args:
      z: representations, shape (N, d).
      labels: int (N,); labels outside [0, C) are ignored.
      num_classes: C >= 2, static under `jax.jit`.

    Returns:
      {"within_class_variance": (C,) (1/n_c) Σ_{y_i = c} ‖z_i − μ_c‖² (0 for an absent
      class), "mean_norm": (C,) ‖μ_c‖, "count": (C,) n_c}.

    References:
      [HN §5.2]; docs/math.md §10.
    """
    z = jnp.asarray(z)
    labels = jnp.asarray(labels)
    mu = class_means(z, labels, num_classes)
    valid = (labels >= 0) & (labels < num_classes)
    safe = jnp.clip(labels, 0, num_classes - 1)
    sq = jnp.where(valid, jnp.sum(jnp.square(z - mu[safe]), axis=-1), 0.0)
    counts = jax.ops.segment_sum(valid.astype(z.dtype), safe, num_segments=num_classes)
    sums = jax.ops.segment_sum(sq, safe, num_segments=num_classes)
    return {
        "within_class_variance": sums / jnp.maximum(counts, 1),
        "mean_norm": _safe_norm(mu),
        "count": counts,
    }


# ----------------------------------------------------------------------------------------
# Theoretical minima [HN Thm 2, Thm 3], exact in float64 numpy.


def _check_bound_args(fn: str, num_classes: int, k: int, psi: str, alpha: float) -> None:
    _check_num_classes(fn, num_classes)
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"{fn}: k={k!r} (number of negatives) must be an integer >= 1.")
    _utils.check_choice(fn, "psi", psi, _PSIS)
    if psi == "infonce_sum" and not alpha > 0:
        raise ValueError(f"{fn}: alpha={alpha!r} must be > 0 for psi='infonce_sum'.")


def _psi_grouped(
    values: np.ndarray, counts: np.ndarray, k: int, psi: str, alpha: float
) -> np.ndarray:
    """ψ_k whose k arguments are values[g] repeated counts[..., g] times (docs/math.md §2).

    `counts` has shape (..., G) and sums to k over its last axis; float64 throughout.
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if psi == "infonce":  # log(1 + (1/k) Σ exp(t))
        return np.log1p(np.sum(counts * np.exp(values), axis=-1) / k)
    if psi == "infonce_sum":  # log(α + Σ exp(t))
        return np.log(alpha + np.sum(counts * np.exp(values), axis=-1))
    # triplet: (1/k) Σ max(t + α, 0)
    return np.sum(counts * np.maximum(values + alpha, 0.0), axis=-1) / k


def scl_lower_bound(num_classes: int, k: int, psi: str = "infonce", alpha: float = 1.0) -> float:
    """Minimum of the SCL and HSCL losses: ψ_k(-C/(C-1), ..., -C/(C-1)).

    With unit-ball representations and equiprobable classes, every anchor-negative
    similarity is at least -1/(C-1) on average and every anchor-positive similarity at
    most 1, so the argument t = s⁻ - s⁺ is at least -C/(C-1); equality iff Neural Collapse
    (for strictly convex, strictly increasing ψ). InfoNCE (mean form):
    log(1 + exp(-C/(C-1))), e.g. 0.20141 for C = 3 and 0.31056 for C = 100.

    Args:
      num_classes: C >= 2.
      k: number of negatives per anchor, >= 1.
      psi: "infonce" (log(1 + mean exp t); alpha unused), "infonce_sum" (log(α + Σ exp t))
        or "triplet" (mean max(t + α, 0)).
      alpha: the α of "infonce_sum" (> 0) and "triplet".

    Returns:
      The bound as a Python float (computed in float64).

    Examples:
      >>> round(scl_lower_bound(num_classes=3, k=256), 5)
      0.20141
      >>> round(scl_lower_bound(num_classes=100, k=256), 5)
      0.31056

    References:
      [HN Thm 2]; docs/math.md §11.
    """
    _check_bound_args("scl_lower_bound", num_classes, k, psi, alpha)
    t = -num_classes / (num_classes - 1)
    return float(_psi_grouped(np.array([t]), np.array([k]), k, psi, alpha))


def ucl_lower_bound(num_classes: int, k: int, psi: str = "infonce", alpha: float = 1.0) -> float:
    """Minimum of the UCL loss: E_B ψ_k(B arguments -C/(C-1), k-B arguments 0).

    With C equiprobable latent classes, each of the k negatives drawn from the whole data
    is of another class with probability p = (C-1)/C, so B ~ Binomial(k, p); at Neural
    Collapse a same-class negative gives t = 0 and another-class one t = -C/(C-1). The
    expectation is the exact sum over b = 0..k with the binomial pmf in log space
    (`math.lgamma`), valid for k up to 1e5 and beyond.

    For InfoNCE, C = 3, k = 256 this is 0.39333. [HN §5] prints 0.3935, which is
    log(1 + p e^{-3/2} + (1 - p)): the expectation taken *inside* the log. By Jensen
    (log is concave) that value is larger than the exact bound; it is the k → ∞ limit
    `ucl_reweighted_limit` (0.39345), which the bound approaches from below as k grows.

    Args:
      num_classes: C >= 2.
      k: number of negatives per anchor, >= 1.
      psi: "infonce", "infonce_sum" or "triplet" (see `scl_lower_bound`).
      alpha: the α of "infonce_sum" (> 0) and "triplet".

    Returns:
      The bound as a Python float (computed in float64).

    Examples:
      >>> round(ucl_lower_bound(num_classes=3, k=256), 5)
      0.39333

    References:
      [HN Thm 3, §5]; docs/math.md §11.
    """
    _check_bound_args("ucl_lower_bound", num_classes, k, psi, alpha)
    k = int(k)
    p = (num_classes - 1) / num_classes
    b = np.arange(k + 1, dtype=np.float64)
    log_factorial = np.array([math.lgamma(i + 1.0) for i in range(k + 1)])
    log_pmf = (
        log_factorial[k]
        - log_factorial
        - log_factorial[::-1]
        + b * math.log(p)
        + (k - b) * math.log1p(-p)
    )
    values = np.array([-num_classes / (num_classes - 1), 0.0])
    counts = np.stack([b, k - b], axis=-1)
    return float(np.sum(np.exp(log_pmf) * _psi_grouped(values, counts, k, psi, alpha)))


def ucl_reweighted_limit(num_classes: int) -> float:
    """The k → ∞ limit of `ucl_lower_bound` for InfoNCE (mean form).

    log(1 + 1/C + ((C-1)/C) e^{-C/(C-1)}): the value of the deterministic `reweighted`
    UCL estimator at Neural Collapse (docs/math.md §6b), e.g. 0.39345 for C = 3.

    Args:
      num_classes: C >= 2.

    Returns:
      The limit as a Python float.

    References:
      [HN Thm 3, §5]; docs/math.md §11.
    """
    _check_num_classes("ucl_reweighted_limit", num_classes)
    c = num_classes
    return math.log1p(1.0 / c + (c - 1) / c * math.exp(-c / (c - 1)))


# ----------------------------------------------------------------------------------------
# CLOP learning-rate bound and its experiment [CLOP §3.1, Thm 1, App. D].


def clop_lr_bound(k: int) -> float:
    """Largest gradient-descent step that keeps the mean of k unit vectors from growing,
    as [CLOP Thm 1] prints it.

    η_max(k) = (2k³ - 5k² + 5k - 2) / (k³ - 3k² + 4k - 2) = 2 + O(1/k); η_max(30) = 2.0333,
    the closed form printed in [CLOP App. D] and used in its text ("2.03"). Kept for
    comparison: `clop_lr_bound_corrected` is the bound the proof gives once its algebra
    is redone, and it is tight.

    Two slips in [CLOP App. D], both checked in tests/library/test_geometry.py:

    * The expansion of E‖x_i⁽¹⁾‖² (eq. 5 with E‖μ⁽⁰⁾‖² = 1/k and E[x_iᵀμ⁽⁰⁾] = 1/k) is
      (1 + η/(k-1))² + kη²/(k-1)² - 2η/(k-1) · (1 + η/(k-1)) = 1 + η²/(k-1): the linear
      terms cancel. The paper simplifies it to 1 + η/(k-1) - 2η/k - 2η²/(k(k-1)) +
      η²k/(k-1)², which is not equal to it, and Theorem 1 is the root of (1 - η)² ≤ that
      expression.
    * Even that root is misprinted: solving the printed inequality gives the denominator
      k³ - 3k² + 3k - 2, i.e. (k-1)(2k² - 3k + 2) / ((k-2)(k² - k + 1)), 2.0358 for
      k = 30 (22/7 vs 2.2 for k = 3). The printed value satisfies the inequality strictly
      and lies below that root.

    Args:
      k: number of class embeddings, >= 2 (the paper assumes k > 2; η_max(2) = 2).

    Returns:
      η_max(k) as a Python float.

    Raises:
      ValueError: if k < 2.

    References:
      [CLOP Thm 1, eq. 2 with ε = 0, App. D]; docs/math.md §9.
    """
    if k < 2:
        raise ValueError(f"clop_lr_bound: k={k!r} must be >= 2 (the number of class embeddings).")
    k = float(k)
    return (2 * k**3 - 5 * k**2 + 5 * k - 2) / (k**3 - 3 * k**2 + 4 * k - 2)


def clop_lr_bound_corrected(k: int) -> float:
    """[CLOP Thm 1] with the algebra of its proof redone: η_max(k) = 2(k-1)/(k-2).

    The proof's own first line gives E‖x_i⁽¹⁾‖² = 1 + η²/(k-1) (see `clop_lr_bound`), so
    with B² = 1 + η²/(k-1) its condition (1 - η)² ≤ B² (ε = 0) reads
    η²(k-2)/(k-1) ≤ 2η, i.e. η ≤ 2(k-1)/(k-2) = 2 + 2/(k-2): 4.0 for k = 3, 2.25 for
    k = 10, 2.0714 for k = 30.

    This bound is tight for the experiment of [CLOP §3.1] (`clop_gradient_descent`):
    the pre-normalization map multiplies the mean by 1 - η and every zero-sum direction
    by 1 + η/(k-1), so the mean direction outgrows the others, and complete collapse sets
    in, exactly when |1 - η| > 1 + η/(k-1), i.e. η > 2(k-1)/(k-2). The bisection of the
    collapse threshold in REPRODUCTION.md (CLOP theory section) measures this value.

    Args:
      k: number of class embeddings, > 2 (for k = 2 the condition holds for every η and
        the bound is infinite).

    Returns:
      η_max(k) as a Python float (`inf` for k = 2).

    Raises:
      ValueError: if k < 2.

    References:
      [CLOP Thm 1, App. D]; docs/math.md §9.
    """
    if k < 2:
        raise ValueError(
            f"clop_lr_bound_corrected: k={k!r} must be >= 2 (the number of class embeddings)."
        )
    if k == 2:
        return float("inf")
    return 2.0 * (k - 1) / (k - 2)


def clop_gradient_descent(x: ArrayLike, lr: ArrayLike, steps: int | jax.Array) -> jax.Array:
    """Projected gradient descent on the total pairwise similarity of k unit vectors.

    Each step moves every column away from the others and renormalizes:
    x_i ← x_i - lr/(k-1) Σ_{j≠i} x_j, then x_i ← x_i / ‖x_i‖ (a zero column stays zero).
    The pre-normalization map is X ↦ X((1 + lr/(k-1)) I - lr/(k-1) 11ᵀ): the mean is
    multiplied by 1 - lr, the rest by 1 + lr/(k-1). With lr = 2.0 and k = 30 the columns
    converge to a zero-sum configuration (rank k - 1: the last singular value vanishes,
    the "dimensional collapse" noted in [CLOP §3.1]); with lr = 2.1 they all become equal
    (complete collapse, rank 1).

    The objective is the total pairwise similarity Σ_{i≠j} [XᵀX]_ij, minimized as the
    text of [CLOP §3.1] says ("minimize the cosine similarity between each vector"); its
    eq. 3 prints it with a minus sign, L_class(X) := -Σ_{i≠j} [XᵀX]_ij, whose descent
    would pull the vectors together instead: a sign typo, and this function follows the
    text.

    Args:
      x: (m, k) matrix whose columns are unit vectors, m >= k >= 2.
      lr: step size η (scalar; may be traced).
      steps: number of steps (Python int or traced int scalar).

    Returns:
      (m, k) matrix after `steps` steps, columns of unit norm.

    References:
      [CLOP §3.1, eq. 3, Fig. 3, App. D]; docs/math.md §9.
    """
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(
            f"clop_gradient_descent: x must have shape (m, k) with k >= 2 unit columns; "
            f"got shape {x.shape}."
        )
    k = x.shape[1]
    step_size = jnp.asarray(lr, dtype=x.dtype) / (k - 1)

    def body(_, x):
        others = jnp.sum(x, axis=1, keepdims=True) - x
        x = x - step_size * others
        norm = _safe_norm(x, axis=0, keepdims=True)
        return x / jnp.where(norm > 0, norm, jnp.ones_like(norm))

    return jax.lax.fori_loop(0, steps, body, x)
