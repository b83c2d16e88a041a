"""Data sets as host numpy arrays, and on-device augmentation (`hncl_jax.data.augment`).

    ds = load_dataset("cifar100", "train", data_dir="~/tensorflow_datasets")
    ds.images  # (50000, 32, 32, 3) uint8;  ds.labels (50000,) int32;  ds.num_classes 100

| name | images | C | options (**kw) |
| --- | --- | --- | --- |
| hn_synthetic [HN §5] | (300, 3072) float32 | 3 | num_classes, per_class, dim, image_shape |
| clop_synthetic [CLOP §5] | (500, 3) float32 | 3 | `DATASET_OPTIONS` (`synthetic.clop_synthetic`) |
| digits (scikit-learn) | (N, 8, 8, 1) uint8 | 10 | test_fraction |
| fashion_mnist (TFDS or IDX files) | (N, 28, 28, 1) uint8 | 10 | source |
| cifar10 / cifar100 (TFDS) | (N, 32, 32, 3) uint8 | 10 / 100 | — |
| tinyimagenet (own builder) | (N, 64, 64, 3) uint8 | 200 | manual_dir, config |

TFDS, scikit-learn and Pillow are imported only when a data set that needs them is
loaded, so importing this package needs none of them.
"""

from __future__ import annotations

from typing import Any

from hncl_jax.data import augment
from hncl_jax.data.base import (
    SPLITS,
    Dataset,
    DatasetNotPreparedError,
    check_split,
    labelled_mask,
    resize_images,
)

DATASETS = (
    "hn_synthetic",
    "clop_synthetic",
    "digits",
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "tinyimagenet",
)

# Data sets of vectors, not images (never resized or cropped).
VECTOR_DATASETS = ("hn_synthetic", "clop_synthetic")
# The per-data-set keyword options load_dataset passes on.
DATASET_OPTIONS = {
    "hn_synthetic": ("num_classes", "per_class", "dim", "image_shape"),
    "clop_synthetic": (
        "num_classes",
        "num_points",
        "dim",
        "noise_variance",
        "noise_std",
        "radius",
        "directions",
    ),
    "digits": ("test_fraction",),
    "fashion_mnist": ("source",),
    "cifar10": (),
    "cifar100": (),
    "tinyimagenet": ("manual_dir", "config"),
}


def load_dataset(
    name: str,
    split: str,
    *,
    data_dir: str | None = None,
    seed: int = 0,
    image_size: int | None = None,
    **kw: Any,
) -> Dataset:
    """Loads one split of a data set into host memory.

    Args:
      name: one of `DATASETS`.
      split: "train" or "test" (Tiny-ImageNet's "test" is its labelled validation set;
        CIFAR also accepts TFDS slicing such as "train[:10%]").
      data_dir: TFDS data dir for cifar10 / cifar100 / tinyimagenet (None: TFDS default).
      seed: seeds the synthetic sets and the digits split; ignored by the TFDS sets.
      image_size: resize images to image_size × image_size with Pillow (image sets only).
      **kw: per-data-set options (see the module table); `manual_dir` for tinyimagenet.

    Returns:
      `Dataset(images, labels, num_classes, name)`.

    Raises:
      ValueError: unknown name, split or option.
      DatasetNotPreparedError: a TFDS set is not prepared (the message says how).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset name={name!r}; expected one of {DATASETS}.")
    if name in VECTOR_DATASETS and image_size is not None:
        raise ValueError(f"image_size={image_size} applies to image sets only, not {name!r}.")
    bad = set(kw) - set(DATASET_OPTIONS[name])
    if bad:
        raise ValueError(
            f"unknown option(s) {sorted(bad)} for dataset {name!r}; "
            f"allowed: {DATASET_OPTIONS[name]}."
        )
    if name == "hn_synthetic":
        from hncl_jax.data.synthetic import hn_synthetic

        return hn_synthetic(split, seed=seed, **kw)
    if name == "clop_synthetic":
        from hncl_jax.data.synthetic import clop_synthetic

        return clop_synthetic(split, seed=seed, **kw)
    if name == "tinyimagenet":
        from hncl_jax.data import tinyimagenet

        return tinyimagenet.load(split, data_dir=data_dir, image_size=image_size, **kw)
    if name == "digits":
        from hncl_jax.data.sources import digits

        ds = digits(split, seed=seed, **kw)
    elif name == "fashion_mnist":
        from hncl_jax.data import fashion_mnist

        ds = fashion_mnist.load(split, data_dir=data_dir, **kw)
    else:
        from hncl_jax.data.sources import cifar

        ds = cifar(name, split, data_dir=data_dir)
    if image_size is not None:
        ds = Dataset(resize_images(ds.images, image_size), ds.labels, ds.num_classes, ds.name)
    return ds


__all__ = [
    "DATASETS",
    "SPLITS",
    "VECTOR_DATASETS",
    "Dataset",
    "DatasetNotPreparedError",
    "augment",
    "check_split",
    "labelled_mask",
    "load_dataset",
    "resize_images",
]
