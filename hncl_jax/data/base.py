"""The `Dataset` container, the not-prepared error, and small shared helpers.

A `Dataset` is a whole split held as host numpy arrays: the trainer copies it to the
device once (CIFAR is 150 MB) and slices batches there, so nothing here streams.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

SPLITS = ("train", "test")


class DatasetNotPreparedError(ValueError):
    """A TFDS-backed dataset has not been downloaded and prepared in `data_dir`."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One split of a dataset, held in host memory.

    Attributes:
      images: (N, H, W, C) uint8 for image sets, (N, D) float32 for vector sets.
      labels: (N,) int32 class indices in [0, num_classes).
      num_classes: C.
      name: the dataset's name in `DATASETS`.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"images and labels disagree in length: {len(self.images)} vs {len(self.labels)}."
            )

    def __len__(self) -> int:
        return len(self.labels)


def check_split(split: str, name: str) -> str:
    """Returns `split` if it is "train" or "test", else raises a ValueError."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not available for {name!r}; use one of {SPLITS}.")
    return split


def labelled_mask(num_examples: int, fraction: float, seed: int) -> np.ndarray:
    """A fixed, seeded subset of the training set whose labels stay visible (CLOP).

    Args:
      num_examples: N, the size of the training set.
      fraction: the share of labelled examples, in (0, 1].
      seed: the subset is a function of (N, fraction, seed) only.

    Returns:
      (N,) bool mask with max(1, round_half_up(fraction · N)) True entries.

    References:
      CLOP §5: 10 %, 50 % and 100 % of the labels.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got fraction={fraction!r}.")
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1, got num_examples={num_examples!r}.")
    count = max(1, min(num_examples, math.floor(fraction * num_examples + 0.5)))
    chosen = np.random.default_rng(seed).permutation(num_examples)[:count]
    mask = np.zeros(num_examples, dtype=bool)
    mask[chosen] = True
    return mask


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resizes square uint8 images (N, H, W, C) to (N, size, size, C) with Pillow.

    Shrinking uses the box filter (area averaging: an exact 2×2 mean for 64 → 32);
    enlarging uses bilinear interpolation.
    """
    from PIL import Image

    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(
            f"image_size needs uint8 images (N, H, W, C), got {images.dtype} {images.shape}."
        )
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"image_size must be a positive int, got image_size={size!r}.")
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    method = Image.Resampling.BOX if size <= min(h, w) else Image.Resampling.BILINEAR
    out = np.empty((n, size, size, c), np.uint8)
    for i in range(n):
        img = images[i, :, :, 0] if c == 1 else images[i]
        resized = np.asarray(Image.fromarray(img).resize((size, size), method))
        out[i] = resized.reshape(size, size, c)
    return out
