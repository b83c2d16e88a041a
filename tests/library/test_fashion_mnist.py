"""Fashion-MNIST: the IDX reader and its errors, the TFDS path, the new augmentations and
the small CNN, and a short training on the real files.

The tests that read the real IDX files (Debian's `dataset-fashion-mnist`) skip with the
install command when the files are absent, except in CI (`CI=true`), where they fail.
"""

import gzip
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hncl_jax import data, models, train
from hncl_jax.data import augment, fashion_mnist
from hncl_jax.train import reporting


def write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


# --------------------------------------------------------------------------- IDX reader
def test_read_idx_round_trip_and_header_checks(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    path = str(tmp_path / "x-images-idx3-ubyte.gz")
    write_idx(path, images, 2051)
    np.testing.assert_array_equal(
        fashion_mnist.read_idx(path, magic=2051, shape=(5, 28, 28)), images
    )
    with pytest.raises(fashion_mnist.DamagedFileError, match="magic number 2051, expected 2049"):
        fashion_mnist.read_idx(path, magic=2049, shape=(5, 28, 28))
    with pytest.raises(fashion_mnist.DamagedFileError, match=r"dimensions \(5, 28, 28\)"):
        fashion_mnist.read_idx(path, magic=2051, shape=(60000, 28, 28))


def test_truncated_and_garbled_files_name_the_file(tmp_path):
    images = np.zeros((4, 28, 28), np.uint8)
    path = str(tmp_path / "t-images-idx3-ubyte.gz")
    write_idx(path, images, 2051)
    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as fh:
        fh.write(raw[:-10])
    with pytest.raises(fashion_mnist.DamagedFileError, match="bytes of data, expected 3136") as e:
        fashion_mnist.read_idx(path, magic=2051, shape=(4, 28, 28))
    assert path in str(e.value) and "reinstall" in str(e.value).lower()
    with open(path, "wb") as fh:
        fh.write(b"\x1f\x8b garbage that is not gzip")
    with pytest.raises(fashion_mnist.DamagedFileError, match="is damaged") as e:
        fashion_mnist.read_idx(path, magic=2051, shape=(4, 28, 28))
    assert path in str(e.value)


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(data.DatasetNotPreparedError) as e:
        data.load_dataset("fashion_mnist", "test", data_dir=str(tmp_path))
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte" in msg and str(tmp_path) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "download_and_prepare" in msg
    assert "--config.data_dir" in msg


def test_bad_source_and_option_are_refused():
    with pytest.raises(ValueError, match="source="):
        fashion_mnist.load("train", source="npz")
    with pytest.raises(ValueError, match="unknown option"):
        data.load_dataset("fashion_mnist", "train", test_fraction=0.5)


def test_tfds_prepared_detection(tmp_path):
    assert not fashion_mnist.tfds_prepared(str(tmp_path))
    version = tmp_path / "fashion_mnist" / "3.0.1"
    version.mkdir(parents=True)
    (version / "dataset_info.json").write_text("{}")
    assert not fashion_mnist.tfds_prepared(str(tmp_path))  # no ArrayRecord files yet
    (version / "fashion_mnist-train.array_record-00000-of-00001").write_bytes(b"")
    assert fashion_mnist.tfds_prepared(str(tmp_path))


@pytest.mark.slow
def test_tfds_source_through_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = data.load_dataset("fashion_mnist", "train", data_dir=str(tmp_path), source="tfds")
    assert ds.images.shape == (12, 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int32 and ds.num_classes == 10


# --------------------------------------------------------------------------- real files
def test_real_files_load_with_the_known_contents(fashion_mnist_files):
    train_ds = data.load_dataset("fashion_mnist", "train")
    test_ds = data.load_dataset("fashion_mnist", "test")
    assert train_ds.images.shape == (60000, 28, 28, 1) and test_ds.images.shape == (
        10000,
        28,
        28,
        1,
    )
    assert train_ds.images.dtype == np.uint8 and train_ds.labels.dtype == np.int32
    # The first training labels of Fashion-MNIST and its balanced classes.
    np.testing.assert_array_equal(train_ds.labels[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    np.testing.assert_array_equal(np.bincount(train_ds.labels), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test_ds.labels), [1000] * 10)


def test_damaged_copy_of_the_real_files_is_reported(fashion_mnist_files, tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(os.path.join(fashion_mnist.DEBIAN_DIR, name), tmp_path / name)
    assert len(data.load_dataset("fashion_mnist", "test", data_dir=str(tmp_path))) == 10000
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.open(labels).read())
    raw[3] = 3  # magic 2049 -> 2051
    with gzip.open(labels, "wb") as fh:
        fh.write(bytes(raw))
    with pytest.raises(fashion_mnist.DamagedFileError, match="magic number 2051, expected 2049"):
        data.load_dataset("fashion_mnist", "test", data_dir=str(tmp_path))


@pytest.mark.slow
def test_training_on_the_real_files_beats_chance(fashion_mnist_files, tmp_path):
    """A few hundred steps of HSCL with the small CNN on 2,000 real images."""
    from hncl_jax.configs import fashion_mnist as fm_config

    c = fm_config.get_config()
    c.model_kwargs.width = 8
    c.dataset_kwargs.max_examples = 2000
    c.batch_size = 100
    c.num_epochs = 10  # 200 steps
    c.loss.k = 64
    c.eval_every_epochs = 10
    c.checkpoint_every_epochs = 10
    c.probe_epochs = 10
    c.plots = False
    train.train_and_evaluate(c, str(tmp_path / "run"))
    last = reporting.read_metrics(str(tmp_path / "run"))[-1]
    assert last["step"] == 200
    # Chance is 0.1 (raw-pixel kNN-5 on the full set: 0.855); 200 steps of a width-8
    # model on 2,000 images reach about 0.6-0.7, far above chance.
    assert last["eval/test/z/knn5_acc"] > 0.5
    assert last["eval/test/h/probe_top1"] > 0.5


# --------------------------------------------------------------------------- views
def test_crop_flip_and_translate_views():
    x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1)), jnp.uint8)
    for kind in ("crop_flip", "translate"):
        v = augment.make_views(jax.random.key(0), x, kind)
        assert v.shape == (12, 28, 28, 1) and v.dtype == jnp.float32
        assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
        np.testing.assert_array_equal(v, augment.make_views(jax.random.key(0), x, kind))
        assert not np.array_equal(v[:6], v[6:])  # the two views differ
    unit = x.astype(jnp.float32) / 255.0
    np.testing.assert_array_equal(
        augment.translate_augment(jax.random.key(1), x, max_shift=0), unit
    )
    flipped = augment.translate_augment(jax.random.key(1), x, max_shift=0, flip_prob=1.0)
    np.testing.assert_array_equal(flipped, unit[:, :, ::-1])
    full = augment.crop_flip_augment(jax.random.key(2), x, crop_scale=(1.0, 1.0), flip_prob=0.0)
    np.testing.assert_allclose(full, unit, atol=1e-6)


def test_translate_moves_a_pixel_by_at_most_max_shift():
    x = np.zeros((50, 9, 9, 1), np.uint8)
    x[:, 4, 4, 0] = 255
    v = np.asarray(augment.translate_augment(jax.random.key(3), jnp.asarray(x), max_shift=2))
    rows, cols = np.nonzero(v[..., 0].max(axis=0))
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(np.argmax(v.reshape(50, -1), axis=1))) > 5  # the offsets vary


def test_image_views_are_refused_on_vectors():
    with pytest.raises(ValueError, match="crop_flip views need images"):
        augment.make_views(jax.random.key(0), jnp.zeros((4, 3)), "crop_flip")


# --------------------------------------------------------------------------- the encoder
@pytest.mark.parametrize(
    "depth, params, mac_count, doc_text",
    [
        (1, 92_896, 7_468_672, "depth 1: 93 k backbone parameters and 7.5 M multiply-adds"),
        (2, 286_880, 29_144_704, "depth 2: 287 k and 29 M"),
    ],
)
def test_small_cnn_sizes_match_its_docstring(depth, params, mac_count, doc_text):
    m = models.create_model("small_cnn", embed_dim=9, depth=depth)
    variables = m.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)), train=False)
    backbone = sum(
        x.size
        for name, tree in variables["params"].items()
        if name != "ProjectionHead_0"
        for x in jax.tree.leaves(tree)
    )
    assert len(variables["params"]) == 3 * depth * 2 + 1  # conv_i, bn_i and the head
    macs = models.model_macs("small_cnn", (28, 28, 1), 9, depth=depth)
    assert backbone == params and macs == mac_count
    doc = " ".join(models.SmallCNN.__doc__.split())
    assert doc_text in doc
    resnet18 = models.model_macs("resnet18", (32, 32, 3), 9)
    if depth == 1:
        assert f"{resnet18 / macs:.0f}× fewer than ResNet-18" in doc
    # XLA's own count of the forward pass agrees with the analytic one (2 FLOPs a MAC;
    # XLA leaves out the padded border's products).
    x = jnp.zeros((1, 28, 28, 1))
    cost = jax.jit(lambda v, x: m.apply(v, x, train=False)).lower(variables, x).compile()
    flops = cost.cost_analysis()
    flops = flops[0]["flops"] if isinstance(flops, list) else flops["flops"]
    assert 0.85 < flops / models.model_flops("small_cnn", (28, 28, 1), 9, depth=depth) < 1.0


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (7, 7, 1)])
def test_small_cnn_takes_8_to_32_pixel_images(fast_compile, shape):
    m = models.create_model("small_cnn", embed_dim=9, width=4)
    x = jnp.ones((3, *shape))
    variables = m.init(jax.random.key(0), x, train=False)
    (h, f), _ = m.apply(variables, x, train=True, mutable=["batch_stats"])
    assert h.shape == (3, 16) and f.shape == (3, 9)
    with pytest.raises(ValueError, match="unknown option"):
        models.create_model("small_cnn", embed_dim=9, hidden_sizes=(3,))


def test_shipped_real_data_configs_use_the_small_cnn():
    from hncl_jax.configs import clop_fashion_mnist, digits
    from hncl_jax.configs import fashion_mnist as fm_config

    for module in (digits, fm_config, clop_fashion_mnist):
        c = module.get_config()
        assert c.model == "small_cnn", module.__name__
        assert module.get_config("smoke").model == "tiny_cnn"
    assert fm_config.get_config().augment and digits.get_config().views == "translate"
    c = clop_fashion_mnist.get_config("50pct")
    assert c.label_fraction == 0.5 and c.clop.weight == 1.0 and c.embed_dim >= 10
