"""Fashion-MNIST IDX files are checked against the published files' content.

Files with valid headers and counts but other content (another data set's images in
Fashion-MNIST's place) were trained on without a word.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hncl_jax import data
from hncl_jax.data import fashion_mnist

# Real data (Debian's IDX files) through the command line: the slow tier.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


def _copy_with_other_images(tmp_path) -> str:
    """The four files, the test images replaced by others of the same header and size."""
    for name in NAMES:
        shutil.copy(os.path.join(fashion_mnist.DEBIAN_DIR, name), tmp_path / name)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.open(images).read())
    pixels = np.frombuffer(bytes(raw[16:]), np.uint8).reshape(10000, 28, 28)
    raw[16:] = np.ascontiguousarray(pixels.transpose(0, 2, 1)).tobytes()  # other pictures
    with gzip.open(images, "wb") as fh:
        fh.write(bytes(raw))
    return str(images)


def test_the_published_files_pass_and_other_content_is_named(fashion_mnist_files, tmp_path):
    images = _copy_with_other_images(tmp_path)
    assert len(data.load_dataset("fashion_mnist", "train", data_dir=str(tmp_path))) == 60000
    with pytest.raises(fashion_mnist.DamagedFileError) as info:
        data.load_dataset("fashion_mnist", "test", data_dir=str(tmp_path))
    message = str(info.value)
    assert message.startswith(f"Fashion-MNIST file {images} has a valid header but not")
    assert "SHA-256 differs" in message and "\n" not in message
    # Uncompressed copies are checked the same way (the digest is of the content).
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in NAMES[2:]:
        (raw / name.removesuffix(".gz")).write_bytes(gzip.open(tmp_path / name).read())
    with pytest.raises(fashion_mnist.DamagedFileError, match="t10k-images-idx3-ubyte has a valid"):
        fashion_mnist.load_idx("test", str(raw))


def test_other_content_fails_the_command_in_one_line(fashion_mnist_files, tmp_path):
    images = _copy_with_other_images(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hncl_jax.main",
            "--config=fashion_mnist:smoke",
            f"--config.data_dir={tmp_path}",
            f"--workdir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and f"{images} has a valid header" in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_fake_tfds_folder_fails_the_command_in_one_line(tmp_path):
    """A raw TFDS AssertionError traceback before."""
    version = tmp_path / "tfds" / "fashion_mnist" / "3.0.1"
    version.mkdir(parents=True)
    (version / "dataset_info.json").write_text('{"name": "fashion_mnist"}')
    for split in ("train", "test"):
        (version / f"fashion_mnist-{split}.array_record-00000-of-00001").write_bytes(
            bytes(range(256)) * 4
        )
    assert fashion_mnist.tfds_prepared(str(tmp_path / "tfds"))
    with pytest.raises(fashion_mnist.DamagedFileError, match="cannot be read"):
        data.load_dataset("fashion_mnist", "test", data_dir=str(tmp_path / "tfds"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hncl_jax.main",
            "--config=fashion_mnist:smoke",
            f"--config.data_dir={tmp_path / 'tfds'}",
            f"--workdir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"the TFDS fashion_mnist in {tmp_path / 'tfds' / 'fashion_mnist'} cannot" in lines[0]
    assert "--config.dataset_kwargs.source=idx" in lines[0]
