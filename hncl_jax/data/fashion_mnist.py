"""Fashion-MNIST: TFDS when it is prepared, otherwise the four IDX files.

Fashion-MNIST (Xiao, Rasul and Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms", arXiv:1708.07747) holds 60,000 training and
10,000 test grayscale 28×28 images of 10 balanced clothing classes. Two sources give the
same arrays:

1. TFDS (`tfds.data_source("fashion_mnist")`), when the set is prepared as ArrayRecord
   files in the TFDS data dir (`data_dir`, else $TFDS_DATA_DIR or ~/tensorflow_datasets):
   the Colab path.
2. The original IDX files `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` in
   `data_dir` or, by default, `DEBIAN_DIR`, where Debian's `dataset-fashion-mnist`
   package installs them (`apt-get install dataset-fashion-mnist`).

The IDX header is checked (magic number 2051 for images, 2049 for labels, the 28×28
shape, the split's count), then the content against the published files' SHA-256
(`IDX_SHA256`, of the decompressed bytes, so any recompression passes), so another set's
files in their place (MNIST digits) are refused; a missing or damaged file is an error
that names the file and says how to get it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib

import numpy as np

from hncl_jax.data.base import Dataset, DatasetNotPreparedError, check_split

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
TFDS_NAME = "fashion_mnist"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
COUNTS = {"train": 60_000, "test": 10_000}
# SHA-256 of the original files' decompressed bytes (the .gz files of the Fashion-MNIST
# repository, zalandoresearch/fashion-mnist, whose decompressed MD5s are f4a8712d...,
# 9018921c..., 8181f547... and 15d48437...).
IDX_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
SOURCES = ("auto", "tfds", "idx")
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
_PREFIX = {"train": "train", "test": "t10k"}

HOW_TO_GET = """\
Get Fashion-MNIST in one of two ways:
  - Debian/Ubuntu: `apt-get install dataset-fashion-mnist` (installs the IDX files in
    {debian}), or copy the four *-ubyte.gz files into a folder and pass
    --config.data_dir=<folder>;
  - TFDS (needs TensorFlow once, e.g. on Colab): python -c "import tensorflow_datasets as \
tfds; tfds.builder('fashion_mnist', data_dir=<dir>, file_format='array_record')\
.download_and_prepare()" and pass --config.data_dir=<dir>."""


class DamagedFileError(ValueError):
    """An IDX file exists but its header, size or contents are not Fashion-MNIST's."""


def idx_paths(split: str, folder: str) -> tuple[str, str]:
    """The (images, labels) IDX paths of `split` in `folder` (.gz preferred, else raw)."""
    out = []
    for kind in ("images-idx3", "labels-idx1"):
        base = os.path.join(folder, f"{_PREFIX[split]}-{kind}-ubyte")
        out.append(
            base + ".gz" if os.path.exists(base + ".gz") or not os.path.exists(base) else base
        )
    return out[0], out[1]


def _read_bytes(path: str) -> bytes:
    if not os.path.exists(path):
        raise DatasetNotPreparedError(
            f"Fashion-MNIST file {path} is missing.\n" + HOW_TO_GET.format(debian=DEBIAN_DIR)
        )
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        with open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DamagedFileError(
            f"Fashion-MNIST file {path} is damaged ({type(e).__name__}: {e}); reinstall it "
            "(`apt-get install --reinstall dataset-fashion-mnist`) or download it again.\n"
            + HOW_TO_GET.format(debian=DEBIAN_DIR)
        ) from e


def read_idx(
    path: str, *, magic: int, shape: tuple[int, ...], sha256: str | None = None
) -> np.ndarray:
    """Reads one IDX file of unsigned bytes and checks its header.

    Args:
      path: the file (gzip-compressed if it ends in .gz).
      magic: the expected magic number (2051 images, 2049 labels).
      shape: the expected array shape, (N, 28, 28) or (N,).
      sha256: the expected SHA-256 of the decompressed bytes (None: not checked),
        compared once the header is found right.

    Returns:
      The uint8 array of `shape`.

    Raises:
      DatasetNotPreparedError: the file is missing.
      DamagedFileError: bad compression, magic number, dimensions, length or content.
    """
    raw = _read_bytes(path)
    ndim = len(shape)
    header = 4 + 4 * ndim

    def damaged(what: str) -> DamagedFileError:
        return DamagedFileError(
            f"Fashion-MNIST file {path} is damaged: {what}. Reinstall it "
            "(`apt-get install --reinstall dataset-fashion-mnist`) or download it again."
        )

    if len(raw) < header:
        raise damaged(f"{len(raw)} bytes, shorter than its {header}-byte header")
    (got_magic,) = struct.unpack(">i", raw[:4])
    if got_magic != magic:
        raise damaged(f"magic number {got_magic}, expected {magic}")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    if tuple(dims) != tuple(shape):
        raise damaged(f"dimensions {tuple(dims)}, expected {tuple(shape)}")
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise damaged(f"{len(raw) - header} bytes of data, expected {size}")
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise DamagedFileError(
            f"Fashion-MNIST file {path} has a valid header but not the published file's "
            "content (its SHA-256 differs): another data set's file (MNIST digits?) or a "
            "damaged copy. Reinstall it (`apt-get install --reinstall dataset-fashion-mnist`) "
            "or download it again."
        )
    return np.frombuffer(raw, np.uint8, count=size, offset=header).reshape(shape)


def _published(path: str) -> str | None:
    return IDX_SHA256.get(os.path.basename(path).removesuffix(".gz"))


def load_idx(split: str, folder: str) -> Dataset:
    """One split from the IDX files in `folder`: images (N, 28, 28, 1) uint8, labels int32."""
    check_split(split, "fashion_mnist")
    n = COUNTS[split]
    images_path, labels_path = idx_paths(split, folder)
    images = read_idx(
        images_path, magic=_IMAGES_MAGIC, shape=(n, *IMAGE_SHAPE), sha256=_published(images_path)
    )
    labels = read_idx(labels_path, magic=_LABELS_MAGIC, shape=(n,), sha256=_published(labels_path))
    if labels.max() >= NUM_CLASSES:
        raise DamagedFileError(
            f"Fashion-MNIST file {labels_path} is damaged: label {labels.max()} is not in "
            f"[0, {NUM_CLASSES}). Reinstall it or download it again."
        )
    return Dataset(
        images=images[..., None].copy(),
        labels=labels.astype(np.int32),
        num_classes=NUM_CLASSES,
        name="fashion_mnist",
    )


def tfds_dir(data_dir: str | None) -> str:
    """The TFDS data dir: `data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    if data_dir:
        return os.path.expanduser(data_dir)
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def tfds_prepared(data_dir: str | None) -> bool:
    """Whether some version of fashion_mnist is prepared (has dataset_info.json) there."""
    root = os.path.join(tfds_dir(data_dir), TFDS_NAME)
    if not os.path.isdir(root):
        return False
    for dirpath, _, files in os.walk(root):
        if "dataset_info.json" in files and any(".array_record" in f for f in files):
            return True
        if dirpath.count(os.sep) - root.count(os.sep) > 3:
            break
    return False


def load_tfds(split: str, data_dir: str | None) -> Dataset:
    """One split through `tfds.data_source` (ArrayRecord files; no TensorFlow needed)."""
    from hncl_jax.data.sources import read_source, tfds_source

    check_split(split, "fashion_mnist")
    try:
        images, labels = read_source(tfds_source(TFDS_NAME, split, tfds_dir(data_dir)))
    except DatasetNotPreparedError:
        raise
    except Exception as e:  # TFDS and array_record raise many types on damaged folders
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise DamagedFileError(
            f"the TFDS fashion_mnist in {os.path.join(tfds_dir(data_dir), TFDS_NAME)} cannot "
            f"be read ({type(e).__name__}{': ' + first if first else ''}): it is damaged or "
            "was not written by TFDS. Prepare it again (tfds.builder('fashion_mnist', "
            "file_format='array_record').download_and_prepare()) after removing it, or read "
            "the IDX files instead: --config.dataset_kwargs.source=idx."
        ) from e
    if images.shape[1:] != (*IMAGE_SHAPE, 1) or labels.max() >= NUM_CLASSES:
        raise DamagedFileError(
            f"the TFDS fashion_mnist in {tfds_dir(data_dir)} holds images {images.shape[1:]} "
            f"and labels up to {labels.max()}, not Fashion-MNIST's (28, 28, 1) and [0, 10)."
        )
    return Dataset(images=images, labels=labels, num_classes=NUM_CLASSES, name="fashion_mnist")


def load(split: str, *, data_dir: str | None = None, source: str = "auto") -> Dataset:
    """Loads one split of Fashion-MNIST into memory.

    Args:
      split: "train" (60,000 images) or "test" (10,000).
      data_dir: a TFDS data dir holding a prepared `fashion_mnist`, or a folder holding
        the IDX files; None: the TFDS default dir, then `DEBIAN_DIR`.
      source: "auto" (TFDS when prepared, else IDX), "tfds" or "idx".

    Returns:
      Dataset with images (N, 28, 28, 1) uint8 and int32 labels in [0, 10).

    Raises:
      DatasetNotPreparedError: neither source has the files (the message says how).
      DamagedFileError: a file is present but damaged (named in the message).
    """
    check_split(split, "fashion_mnist")
    if source not in SOURCES:
        raise ValueError(f"unknown Fashion-MNIST source={source!r}; expected one of {SOURCES}.")
    if source == "tfds" or (source == "auto" and tfds_prepared(data_dir)):
        return load_tfds(split, data_dir)
    folder = os.path.expanduser(data_dir) if data_dir else DEBIAN_DIR
    return load_idx(split, folder)
