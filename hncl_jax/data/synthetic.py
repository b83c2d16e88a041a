"""The synthetic data sets of both papers, generated from a seed (numpy only).

- `hn_synthetic` [HN §5]: C Gaussian classes in R^3072, means i.i.d. U[−1, 1], identity
  covariance; the train and test splits are independent draws around the same means.
- `clop_synthetic` [CLOP §5]: points in R^3 on C lines through the origin (one direction
  per class: random, a random orthonormal set, the coordinate axes or three coplanar
  lines 60° apart), plus Gaussian noise (variance 0.05, or standard deviation 0.05).

Every random stream is a child of `np.random.SeedSequence(seed)`, so a split depends on
the seed only (not on which split was made first), and both splits share the class
means / directions.
"""

from __future__ import annotations

import numpy as np

from hncl_jax.data.base import Dataset, check_split

# Children of SeedSequence(seed): 0 = class means / directions, 1 = train draws, 2 = test.
_STREAM = {"train": 1, "test": 2}


def _rngs(seed: int, split: str) -> tuple[np.random.Generator, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(children[0]), np.random.default_rng(children[_STREAM[split]])


def hn_synthetic(
    split: str,
    *,
    seed: int = 0,
    num_classes: int = 3,
    per_class: int = 100,
    dim: int = 3072,
    image_shape: tuple[int, ...] | None = None,
) -> Dataset:
    """The hard-negative paper's Gaussian classes.

    Args:
      split: "train" or "test" (fresh draws around the same class means).
      seed: seeds the class means and both splits.
      num_classes: C (3 in the paper).
      per_class: examples per class (100 in the paper).
      dim: data dimension (3072 = 32·32·3 in the paper).
      image_shape: optional shape to reshape each example to, e.g. (32, 32, 3) to feed
        a ResNet as the paper does; its product must equal `dim`.

    Returns:
      Dataset with images (C·per_class, dim) float32 (or (N, *image_shape)), labels
      sorted by class: example i has label i // per_class.

    References:
      HN §5 "Synthetic dataset": x | y ~ N(μ_y, I), μ_y i.i.d. U[−1, 1]^3072.
    """
    check_split(split, "hn_synthetic")
    for arg, value in (("num_classes", num_classes), ("per_class", per_class), ("dim", dim)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive int, got {arg}={value!r}.")
    if image_shape is not None and int(np.prod(image_shape)) != dim:
        raise ValueError(f"image_shape={tuple(image_shape)} does not hold dim={dim} values.")
    mean_rng, rng = _rngs(seed, split)
    means = mean_rng.uniform(-1.0, 1.0, size=(num_classes, dim))
    labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
    x = means[labels] + rng.standard_normal((len(labels), dim))
    x = x.astype(np.float32)
    if image_shape is not None:
        x = x.reshape((len(labels), *image_shape))
    return Dataset(images=x, labels=labels, num_classes=num_classes, name="hn_synthetic")


# The line directions `clop_synthetic` can use (see `clop_directions`).
DIRECTIONS = ("random", "orthogonal", "axes", "planar")
# [CLOP §5]: "Gaussian noise (mean 0, variance 0.05)".
PAPER_NOISE_VARIANCE = 0.05


def check_clop_options(
    *,
    num_classes: int = 3,
    num_points: int = 500,
    dim: int = 3,
    noise_variance: float | None = None,
    noise_std: float | None = None,
    radius: float = 1.0,
    directions: str = "random",
) -> None:
    """Checks `clop_synthetic`'s options without drawing anything.

    Raises:
      ValueError: naming the option (as `dataset_kwargs` spells it) and its bad value.
    """
    for arg, value in (("num_classes", num_classes), ("num_points", num_points), ("dim", dim)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg}={value!r} must be a positive int.")
    if num_points < num_classes:
        raise ValueError(f"num_points={num_points} must be >= num_classes={num_classes}.")
    if noise_variance is not None and noise_std is not None:
        raise ValueError(
            f"noise_variance={noise_variance!r} and noise_std={noise_std!r} are both set; "
            "set one of them (the other stays unset)."
        )
    for arg, value in (("noise_variance", noise_variance), ("noise_std", noise_std)):
        if value is not None and not (_finite_number(value) and value >= 0):
            raise ValueError(f"{arg}={value!r} must be a number >= 0.")
    if not (_finite_number(radius) and radius > 0):
        raise ValueError(f"radius={radius!r} must be a number > 0.")
    if directions not in DIRECTIONS:
        raise ValueError(f"directions={directions!r} must be one of {DIRECTIONS}.")
    if directions in ("orthogonal", "axes") and dim < num_classes:
        raise ValueError(
            f"directions={directions!r} needs dim >= num_classes, got dim={dim} and "
            f"num_classes={num_classes}."
        )
    if directions == "planar" and (dim < 2 or num_classes > 6):
        raise ValueError(
            f"directions='planar' needs dim >= 2 and at most 6 classes, got dim={dim} and "
            f"num_classes={num_classes}."
        )


def _finite_number(value) -> bool:
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and bool(np.isfinite(value))
    )


def clop_synthetic(
    split: str,
    *,
    seed: int = 0,
    num_classes: int = 3,
    num_points: int = 500,
    dim: int = 3,
    noise_variance: float | None = None,
    noise_std: float | None = None,
    radius: float = 1.0,
    directions: str = "random",
) -> Dataset:
    """CLOP's lines through the origin.

    Class c has a unit direction u_c (`clop_directions`); a point is t · u_c + ε with
    t ~ U[−radius, radius] (both signs, so the sign-flip augmentation keeps a point on
    its line) and ε ~ N(0, σ² I). The paper gives neither the extent of the points along
    their lines nor the directions, and writes the noise as "variance 0.05"; these are
    the options below. Near the origin the classes overlap, which caps any classifier
    (`nearest_line_accuracy`); the cap rises with the radius and falls with the noise
    (REPRODUCTION.md explores the choices and `configs/clop_synthetic.py` holds the one
    used).

    Args:
      split: "train" or "test" (fresh points on the same lines).
      seed: seeds the directions ("random", "orthogonal") and both splits.
      num_classes: C (3 in the paper).
      num_points: points in the split (500 in the paper); class of point i is i mod C.
      dim: ambient dimension (3 in the paper).
      noise_variance: σ², the noise's variance (unset: 0.05, the paper's words).
      noise_std: σ, the noise's standard deviation, instead of `noise_variance`.
      radius: half-length of the segment of each line the points are drawn from.
      directions: "random" (i.i.d. Gaussian directions, seeded), "orthogonal" (a seeded
        random orthonormal set), "axes" (the first C coordinate axes) or "planar" (C
        lines in the plane of the first two axes, 180°/C apart; 60° for C = 3).

    Returns:
      Dataset with images (num_points, dim) float32 and int32 labels.

    Raises:
      ValueError: a bad split or option (`check_clop_options`).

    References:
      CLOP §5 "synthetic data": 500 samples in R^3, three classes each in its own linear
      subspace, Gaussian noise (mean 0, variance 0.05).
    """
    check_split(split, "clop_synthetic")
    check_clop_options(
        num_classes=num_classes,
        num_points=num_points,
        dim=dim,
        noise_variance=noise_variance,
        noise_std=noise_std,
        radius=radius,
        directions=directions,
    )
    std = clop_noise_std(noise_variance, noise_std)
    u = clop_directions(seed, num_classes, dim, kind=directions)
    _, rng = _rngs(seed, split)
    labels = (np.arange(num_points) % num_classes).astype(np.int32)
    t = rng.uniform(-radius, radius, size=(num_points, 1))
    noise = std * rng.standard_normal((num_points, dim))
    x = (t * u[labels] + noise).astype(np.float32)
    return Dataset(images=x, labels=labels, num_classes=num_classes, name="clop_synthetic")


def clop_noise_std(noise_variance: float | None = None, noise_std: float | None = None) -> float:
    """σ of `clop_synthetic`'s noise: `noise_std`, else √`noise_variance`, else √0.05."""
    if noise_std is not None:
        return float(noise_std)
    return float(np.sqrt(PAPER_NOISE_VARIANCE if noise_variance is None else noise_variance))


def clop_directions(
    seed: int = 0, num_classes: int = 3, dim: int = 3, *, kind: str = "random"
) -> np.ndarray:
    """The unit line directions (C, dim) that `clop_synthetic` uses for `seed` and `kind`
    (see `clop_synthetic`'s `directions`)."""
    if kind not in DIRECTIONS:
        raise ValueError(f"directions={kind!r} must be one of {DIRECTIONS}.")
    dir_rng, _ = _rngs(seed, "train")
    if kind == "random":
        directions = dir_rng.standard_normal((num_classes, dim))
        return directions / np.linalg.norm(directions, axis=1, keepdims=True)
    if kind == "orthogonal":
        q, r = np.linalg.qr(dir_rng.standard_normal((dim, num_classes)))
        return (q * np.sign(np.diag(r))).T  # (C, dim) orthonormal rows
    if kind == "axes":
        return np.eye(dim)[:num_classes]
    angles = np.pi * np.arange(num_classes) / num_classes
    out = np.zeros((num_classes, dim))
    out[:, 0], out[:, 1] = np.cos(angles), np.sin(angles)
    return out


def nearest_line_accuracy(x: np.ndarray, labels: np.ndarray, directions: np.ndarray) -> float:
    """Accuracy of the rule "the class of the nearest true line" (it knows the lines).

    The distance from x to the line through 0 along unit u is √(‖x‖² − (x·u)²), so the
    nearest line is the one with the largest |x · u|. The rule is the Bayes classifier
    when the points' positions along the lines are uniform on an unbounded segment and
    the noise is isotropic; near the origin, where the lines meet, no rule does much
    better, so this is the cap the data set puts on any classifier.
    """
    pred = np.argmax(np.abs(np.asarray(x, np.float64) @ np.asarray(directions).T), axis=1)
    return float(np.mean(pred == np.asarray(labels)))
