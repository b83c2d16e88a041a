"""Tiny-ImageNet as a TFDS builder of this project, built with Pillow (no TensorFlow).

Tiny-ImageNet is not in the TFDS catalog. `TinyImagenetHncl` reads the official archive
`tiny-imagenet-200.zip` (or its extracted folder) from the manual directory and writes
ArrayRecord files that `load` reads back as numpy arrays:

    tiny-imagenet-200/wnids.txt                       200 class ids (n01443537, ...)
    tiny-imagenet-200/train/<wnid>/images/<wnid>_<i>.JPEG   500 per class
    tiny-imagenet-200/val/images/val_<i>.JPEG          10 000 images
    tiny-imagenet-200/val/val_annotations.txt          file \\t wnid \\t x \\t y \\t w \\t h

Splits: "train" (100 000) and "validation" (10 000, the labelled validation set, used
as this project's test split; the official test images carry no labels and are
skipped). Labels index the sorted wnids. Images are 64×64×3; the original JPEG bytes
are stored unchanged, and the few grey-scale (or CMYK) files are converted to RGB and
stored as lossless PNG.

Why this works without TensorFlow: TFDS encodes an `Image` feature with TensorFlow only
when given a numpy array; given encoded bytes it stores them as they are, and the
ArrayRecord writer and the numpy data source are TensorFlow-free.

The layout is checked before anything is written (wnids.txt present, the expected
number of classes, images per class, every annotated validation file present), and a
file Pillow cannot decode is reported by its name. The expected counts live in
`TinyImagenetConfig`, so tests can build a miniature archive with the real layout.

References:
  Le & Yang, "Tiny ImageNet Visual Recognition Challenge", CS231N 2015.
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from collections.abc import Iterator
from typing import Any

import tensorflow_datasets as tfds
from etils import epath

from hncl_jax.data.base import (
    Dataset,
    DatasetNotPreparedError,
    check_split,
    resize_images,
)
from hncl_jax.data.sources import read_source

ARCHIVE = "tiny-imagenet-200.zip"
ROOT = "tiny-imagenet-200"
IMAGE_SIZE = 64
# This project's split names -> the builder's split names.
SPLIT_NAMES = {"train": "train", "test": "validation"}

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download {ARCHIVE} (about 240 MB) from http://cs231n.stanford.edu/{ARCHIVE} and place the
zip file (or its extracted folder {ROOT}/) in the manual directory, e.g.
`<data_dir>/downloads/manual/` or the folder given as `--config.manual_dir=<folder>`.
"""


class TinyImagenetConfig(tfds.core.BuilderConfig):
    """Expected archive contents; the defaults are the official Tiny-ImageNet counts."""

    def __init__(
        self,
        *,
        num_classes: int = 200,
        train_per_class: int = 500,
        val_per_class: int = 50,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.train_per_class = train_per_class
        self.val_per_class = val_per_class


@dataclasses.dataclass(frozen=True)
class Layout:
    """What `scan_layout` found: sorted wnids and (member, label) lists per split."""

    wnids: tuple[str, ...]
    train: tuple[tuple[str, int], ...]
    validation: tuple[tuple[str, int], ...]


class _Archive:
    """Read access to the zip file or to the extracted folder, by member name."""

    def __init__(self, manual_dir: str):
        manual_dir = os.fspath(manual_dir)
        zip_path = os.path.join(manual_dir, ARCHIVE)
        folder = os.path.join(manual_dir, ROOT)
        self._zip: zipfile.ZipFile | None = None
        if os.path.isfile(zip_path):
            self.path = zip_path
            try:
                self._zip = zipfile.ZipFile(zip_path)
            except zipfile.BadZipFile as e:
                raise ValueError(f"{zip_path} is not a readable zip file ({e}).") from e
            self.names = frozenset(n for n in self._zip.namelist() if not n.endswith("/"))
        elif os.path.isdir(folder):
            self.path = folder
            names = []
            for dirpath, _, files in os.walk(folder):
                rel = os.path.relpath(dirpath, manual_dir).replace(os.sep, "/")
                names.extend(f"{rel}/{f}" for f in files)
            self.names = frozenset(names)
        else:
            raise FileNotFoundError(
                f"Neither {zip_path} nor {folder}/ exists.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        self._dir = manual_dir

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        with open(os.path.join(self._dir, name), "rb") as f:
            return f.read()

    def text(self, name: str) -> list[str]:
        if name not in self.names:
            raise FileNotFoundError(
                f"{name} is missing from {self.path}; expected the official Tiny-ImageNet layout "
                f"({ROOT}/wnids.txt, {ROOT}/train/<wnid>/images/, {ROOT}/val/val_annotations.txt)."
            )
        return self.read(name).decode("utf-8").splitlines()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def scan_layout(archive: _Archive, config: TinyImagenetConfig) -> Layout:
    """Checks the archive against the expected layout and counts; lists the examples.

    Raises:
      FileNotFoundError: wnids.txt, val_annotations.txt or an annotated image is missing.
      ValueError: wrong number of classes or of images per class, duplicate or unknown wnid.
    """
    wnids = [w.strip() for w in archive.text(f"{ROOT}/wnids.txt") if w.strip()]
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{ROOT}/wnids.txt in {archive.path} lists a wnid twice.")
    if len(wnids) != config.num_classes:
        raise ValueError(
            f"{ROOT}/wnids.txt in {archive.path} lists {len(wnids)} classes, expected "
            f"{config.num_classes}; is the archive complete?"
        )
    wnids = sorted(wnids)
    label_of = {w: i for i, w in enumerate(wnids)}

    by_class: dict[str, list[str]] = {w: [] for w in wnids}
    for name in archive.names:
        parts = name.split("/")
        if (
            len(parts) == 5
            and parts[1] == "train"
            and parts[3] == "images"
            and parts[4].lower().endswith(".jpeg")
            and parts[2] in by_class
        ):
            by_class[parts[2]].append(name)
    wrong = {w: len(f) for w, f in by_class.items() if len(f) != config.train_per_class}
    if wrong:
        shown = dict(list(sorted(wrong.items()))[:5])
        raise ValueError(
            f"{len(wrong)} classes of {archive.path} do not have {config.train_per_class} "
            f"training images in {ROOT}/train/<wnid>/images/, e.g. {shown}."
        )
    train = tuple((f, label_of[w]) for w in wnids for f in sorted(by_class[w]))

    validation = []
    val_counts = dict.fromkeys(wnids, 0)
    for line_no, line in enumerate(archive.text(f"{ROOT}/val/val_annotations.txt"), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            raise ValueError(
                f"{ROOT}/val/val_annotations.txt line {line_no} ({line!r}) does not name a "
                "file and a wnid of wnids.txt."
            )
        member = f"{ROOT}/val/images/{fields[0]}"
        if member not in archive.names:
            raise FileNotFoundError(f"{member}, listed in val_annotations.txt, is missing.")
        validation.append((member, label_of[fields[1]]))
        val_counts[fields[1]] += 1
    wrong = {w: c for w, c in val_counts.items() if c != config.val_per_class}
    if wrong:
        shown = dict(list(sorted(wrong.items()))[:5])
        raise ValueError(
            f"{len(wrong)} classes do not have {config.val_per_class} validation images in "
            f"{ROOT}/val/val_annotations.txt, e.g. {shown}."
        )
    return Layout(wnids=tuple(wnids), train=train, validation=tuple(sorted(validation)))


def encode_checked(data: bytes, name: str) -> bytes:
    """Returns storable bytes of one image after decoding it fully with Pillow.

    RGB files keep their original bytes; other modes are converted to RGB and stored as
    PNG. Raises a ValueError naming the file if it cannot be decoded or is not 64×64.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.size != (IMAGE_SIZE, IMAGE_SIZE):
                raise ValueError(f"size {img.size}, expected ({IMAGE_SIZE}, {IMAGE_SIZE})")
            if img.mode == "RGB":
                return data
            buffer = io.BytesIO()
            img.convert("RGB").save(buffer, format="PNG")
            return buffer.getvalue()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"corrupt or unexpected image {name}: {e}") from e


class TinyImagenetHncl(tfds.core.GeneratorBasedBuilder):
    """Tiny-ImageNet-200 from the manually downloaded archive (see module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "train (100k) and validation (10k), 64×64×3, sorted wnids."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [TinyImagenetConfig(name="default", description="Tiny-ImageNet-200.")]
    # TFDS 4.9 derives `code_path` through `importlib_resources`, which is not installed
    # on Python >= 3.9 and makes download_and_prepare fail; this file is the code path.
    code_path = epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Tiny-ImageNet-200: 200 ImageNet classes at 64×64.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(IMAGE_SIZE, IMAGE_SIZE, 3), encoding_format="jpeg"
                    ),
                    "label": tfds.features.ClassLabel(num_classes=self.builder_config.num_classes),
                    "file_name": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        manual_dir = os.fspath(dl_manager.manual_dir)
        archive = _Archive(manual_dir)
        try:
            layout = scan_layout(archive, self.builder_config)
        finally:
            archive.close()
        self.info.features["label"].names = list(layout.wnids)
        return {
            "train": self._generate_examples(manual_dir, layout.train),
            "validation": self._generate_examples(manual_dir, layout.validation),
        }

    def _generate_examples(
        self, manual_dir: str, items: tuple[tuple[str, int], ...]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        archive = _Archive(manual_dir)
        try:
            for name, label in items:
                image = encode_checked(archive.read(name), name)
                file_name = name.rsplit("/", 1)[-1]
                yield file_name, {"image": image, "label": label, "file_name": file_name}
        finally:
            archive.close()


def _default_manual_dir(data_dir: str | None) -> str:
    root = (
        data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")
    )
    return os.path.join(root, "downloads", "manual")


def _has_archive(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, ARCHIVE)) or os.path.isdir(
        os.path.join(folder, ROOT)
    )


def prepare(
    data_dir: str | None = None,
    manual_dir: str | None = None,
    config: TinyImagenetConfig | str = "default",
) -> TinyImagenetHncl:
    """Builds the ArrayRecord files (once) and returns the prepared builder.

    Args:
      data_dir: TFDS data dir (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
      manual_dir: folder holding tiny-imagenet-200.zip (None: <data_dir>/downloads/manual).
      config: a `TinyImagenetConfig` (tests) or the name "default".

    Raises:
      DatasetNotPreparedError: not prepared and no archive in the manual directory.
    """
    builder = TinyImagenetHncl(data_dir=data_dir, config=config, file_format="array_record")
    if builder.is_prepared():
        return builder
    manual_dir = os.fspath(manual_dir) if manual_dir else _default_manual_dir(data_dir)
    if not _has_archive(manual_dir):
        raise DatasetNotPreparedError(
            f"tinyimagenet is not prepared in data_dir={data_dir!r} and {manual_dir} holds no "
            f"{ARCHIVE}.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}Then rerun with "
            "--config.manual_dir=<that folder> (from Python: load_dataset('tinyimagenet', "
            "split, manual_dir=<that folder>)); the first run builds the data set with Pillow "
            "(no TensorFlow needed)."
        )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return builder


def load(
    split: str,
    *,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    image_size: int | None = None,
    config: TinyImagenetConfig | str = "default",
) -> Dataset:
    """Tiny-ImageNet as numpy arrays, building it first if needed.

    Args:
      split: "train" (100 000 images) or "test" (the 10 000 validation images).
      data_dir: TFDS data dir.
      manual_dir: folder with tiny-imagenet-200.zip, used only if not yet prepared.
      image_size: resize to image_size × image_size (e.g. 32 as in the HN paper) with
        Pillow's box filter (area average); None keeps 64×64.
      config: as in `prepare`.

    Returns:
      Dataset with images (N, S, S, 3) uint8 and int32 labels (200 classes by default).
    """
    check_split(split, "tinyimagenet")
    builder = prepare(data_dir, manual_dir, config)
    source = builder.as_data_source(split=SPLIT_NAMES[split])
    images, labels = read_source(source)
    if image_size is not None:
        images = resize_images(images, image_size)
    num_classes = builder.info.features["label"].num_classes
    return Dataset(images=images, labels=labels, num_classes=num_classes, name="tinyimagenet")


def label_names(data_dir: str | None = None, config: TinyImagenetConfig | str = "default") -> list:
    """The wnids of the prepared data set, in label order."""
    builder = TinyImagenetHncl(data_dir=data_dir, config=config, file_format="array_record")
    return list(builder.info.features["label"].names)


__all__ = [
    "TinyImagenetConfig",
    "TinyImagenetHncl",
    "Layout",
    "scan_layout",
    "encode_checked",
    "prepare",
    "load",
    "label_names",
]
