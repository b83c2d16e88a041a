"""Real data sets read whole into numpy: scikit-learn's digits and CIFAR via TFDS.

CIFAR-10/100 are read with `tfds.data_source` from ArrayRecord files, which needs no
TensorFlow. *Preparing* them (downloading and writing those files) does need
TensorFlow once, on any machine: see `CIFAR_PREPARE_HINT`. TFDS and scikit-learn are
imported inside the functions so that `import hncl_jax.data` stays light.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from hncl_jax.data.base import Dataset, DatasetNotPreparedError, check_split


def _no_variant_warning(record: logging.LogRecord) -> bool:
    return "has no dataset_info.json" not in record.getMessage()


# On a folder that is not (fully) prepared TFDS warns "Variant folder ... has no
# dataset_info.json" before failing; the DatasetNotPreparedError raised then says what to
# do instead, so the warning is only confusing.
logging.getLogger("absl").addFilter(_no_variant_warning)

TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100"}

CIFAR_PREPARE_HINT = """\
{name} is not prepared in data_dir={data_dir!r} (ArrayRecord format).
Prepare it once (needs TensorFlow: `pip install ".[prepare]"` for tensorflow-cpu, plus
`pip install importlib_resources`, which TFDS 4.9 needs to build; or use a Colab runtime),
then copy the folder {name}/ into your data_dir if you prepared it elsewhere:

    python -c "import tensorflow_datasets as tfds; tfds.builder('{name}', \
data_dir={data_dir!r}, file_format='array_record').download_and_prepare()"

Reading the prepared files afterwards needs no TensorFlow. data_dir=None means the TFDS
default (~/tensorflow_datasets, or $TFDS_DATA_DIR)."""


def digits(split: str, *, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8×8 handwritten digits as uint8 images with a stratified split.

    Args:
      split: "train" or "test".
      seed: seeds the stratified split.
      test_fraction: share of each class put in the test split.

    Returns:
      Dataset with images (N, 8, 8, 1) uint8 (the 17 grey levels 0..16 scaled to 0..255)
      and 10 classes.

    References:
      UCI optical recognition of handwritten digits; sklearn.datasets.load_digits.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check_split(split, "digits")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got test_fraction={test_fraction}.")
    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int32)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
    )
    idx = np.sort(train_idx if split == "train" else test_idx)
    return Dataset(images=images[idx], labels=labels[idx], num_classes=10, name="digits")


def _split_base(split: str) -> str:
    """'train[:10%]' -> 'train' (TFDS slicing syntax is allowed after the split name)."""
    return re.split(r"[\[+]", split, maxsplit=1)[0]


def read_source(
    source: Sequence[dict[str, Any]], image_key: str = "image", label_key: str = "label"
) -> tuple[np.ndarray, np.ndarray]:
    """Reads a random-access source of {image, label} records into stacked numpy arrays."""
    n = len(source)
    if n == 0:
        raise ValueError("the data source is empty.")
    first = source[0]
    images = np.empty((n, *np.shape(first[image_key])), np.uint8)
    labels = np.empty((n,), np.int32)
    for i in range(n):
        record = first if i == 0 else source[i]
        images[i] = record[image_key]
        labels[i] = record[label_key]
    return images, labels


def tfds_source(name: str, split: str, data_dir: str | None) -> Any:
    """Opens a prepared TFDS dataset as a random-access ArrayRecord data source.

    Raises:
      DatasetNotPreparedError: when `name` has no prepared ArrayRecord files in data_dir.
    """
    import tensorflow_datasets as tfds

    try:
        return tfds.data_source(
            name,
            split=split,
            data_dir=data_dir,
            download=False,
            builder_kwargs={"file_format": "array_record"},
        )
    # TFDS signals "not generated" with a KeyError on the empty split dict, missing files
    # with FileNotFoundError, and data prepared only as TFRecord with NotImplementedError.
    except (KeyError, FileNotFoundError, NotImplementedError) as e:
        raise DatasetNotPreparedError(
            CIFAR_PREPARE_HINT.format(name=name, data_dir=data_dir) + f"\n(TFDS said: {e})"
        ) from e


def cifar(name: str, split: str, *, data_dir: str | None = None) -> Dataset:
    """CIFAR-10 or CIFAR-100 (fine labels) from TFDS ArrayRecord files, fully in memory.

    Args:
      name: "cifar10" or "cifar100".
      split: "train" or "test", optionally with TFDS slicing, e.g. "train[:10%]".
      data_dir: the TFDS data dir (None: TFDS default).

    Returns:
      Dataset with images (N, 32, 32, 3) uint8 and int32 labels (10 or 100 classes).

    Raises:
      DatasetNotPreparedError: with the command that prepares the data set.

    References:
      Krizhevsky 2009; TFDS `cifar10` / `cifar100` (label = fine label).
    """
    if name not in TFDS_NAMES:
        raise ValueError(f"name={name!r} is not a TFDS-backed set; use one of {tuple(TFDS_NAMES)}.")
    check_split(_split_base(split), name)
    source = tfds_source(TFDS_NAMES[name], split, data_dir)
    images, labels = read_source(source)
    num_classes = 10 if name == "cifar10" else 100
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"{name} labels out of range [0, {num_classes}): min {labels.min()}, "
            f"max {labels.max()}; is data_dir holding another data set?"
        )
    return Dataset(images=images, labels=labels, num_classes=num_classes, name=name)
