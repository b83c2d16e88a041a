"""The synthetic data sets of both papers, generated from a seed (numpy only).

- `hn_synthetic` [HN §5]: C Gaussian classes in R^3072, means i.i.d. U[−1, 1], identity
  covariance; the train and test splits are independent draws around the same means.
- `clop_synthetic` [CLOP §5]: points in R^3 on C lines through the origin (one random
  direction per class), plus Gaussian noise of variance 0.05.

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


def clop_synthetic(
    split: str,
    *,
    seed: int = 0,
    num_classes: int = 3,
    num_points: int = 500,
    dim: int = 3,
    noise_variance: float = 0.05,
    radius: float = 1.0,
) -> Dataset:
    """CLOP's lines through the origin.

    Class c has a random unit direction u_c (seeded); a point is t · u_c + ε with
    t ~ U[−radius, radius] (both signs, so the sign-flip augmentation keeps a point on
    its line) and ε ~ N(0, noise_variance · I). The paper does not give the extent of
    the points along their lines; with radius 1 and noise variance 0.05 a third of the
    points lie within the noise of the origin, where the classes cannot be told apart
    (kNN on the sign-invariant features u uᵀ of the clean inputs reaches ~63 %), so the
    configs use radius 3 (see REPRODUCTION.md).

    Args:
      split: "train" or "test" (fresh points on the same lines).
      seed: seeds the directions and both splits.
      num_classes: C (3 in the paper).
      num_points: points in the split (500 in the paper); class of point i is i mod C.
      dim: ambient dimension (3 in the paper).
      noise_variance: variance of the Gaussian noise (0.05 in the paper).
      radius: half-length of the segment of each line the points are drawn from.

    Returns:
      Dataset with images (num_points, dim) float32 and int32 labels.

    References:
      CLOP §5 "synthetic data": 500 samples in R^3, three classes each in its own linear
      subspace, Gaussian noise (mean 0, variance 0.05).
    """
    check_split(split, "clop_synthetic")
    if num_points < num_classes:
        raise ValueError(f"num_points={num_points} must be >= num_classes={num_classes}.")
    if noise_variance < 0:
        raise ValueError(f"noise_variance must be >= 0, got noise_variance={noise_variance}.")
    directions = clop_directions(seed, num_classes, dim)
    _, rng = _rngs(seed, split)
    labels = (np.arange(num_points) % num_classes).astype(np.int32)
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got radius={radius}.")
    t = rng.uniform(-radius, radius, size=(num_points, 1))
    noise = np.sqrt(noise_variance) * rng.standard_normal((num_points, dim))
    x = (t * directions[labels] + noise).astype(np.float32)
    return Dataset(images=x, labels=labels, num_classes=num_classes, name="clop_synthetic")


def clop_directions(seed: int = 0, num_classes: int = 3, dim: int = 3) -> np.ndarray:
    """The unit line directions (C, dim) that `clop_synthetic` uses for `seed`."""
    dir_rng, _ = _rngs(seed, "train")
    directions = dir_rng.standard_normal((num_classes, dim))
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)
