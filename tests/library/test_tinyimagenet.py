"""Tests for the Tiny-ImageNet builder on miniature archives with the official layout."""

import os
import shutil
import tempfile

import numpy as np
from absl.testing import absltest, parameterized

from hncl_jax import data
from hncl_jax.data import tinyimagenet
from tests.conftest import TRAIN_PER_CLASS, VAL_PER_CLASS, WNIDS, make_archive


def _config(name="mini", **kw):
    counts = dict(
        num_classes=len(WNIDS), train_per_class=TRAIN_PER_CLASS, val_per_class=VAL_PER_CLASS
    )
    return tinyimagenet.TinyImagenetConfig(name=name, **{**counts, **kw})


class TinyImagenetTest(parameterized.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.manual = os.path.join(self.tmp, "manual")
        self.data_dir = os.path.join(self.tmp, "tfds")
        os.makedirs(self.manual)

    @parameterized.parameters(False, True)
    def test_build_and_load(self, extracted):
        make_archive(self.manual, extracted=extracted)
        config = _config()
        train = data.load_dataset(
            "tinyimagenet", "train", data_dir=self.data_dir, manual_dir=self.manual, config=config
        )
        self.assertEqual(train.images.shape, (len(WNIDS) * TRAIN_PER_CLASS, 64, 64, 3))
        self.assertEqual(train.images.dtype, np.uint8)
        self.assertEqual(train.labels.dtype, np.int32)
        self.assertEqual((train.num_classes, train.name), (3, "tinyimagenet"))
        np.testing.assert_array_equal(np.bincount(train.labels), [TRAIN_PER_CLASS] * 3)
        # Labels index the sorted wnids; the colour encodes the class (JPEG: ±few levels).
        red = train.images[:, :, :, 0].mean(axis=(1, 2))
        np.testing.assert_allclose(red, 40 + 60 * train.labels, atol=4)
        self.assertEqual(tinyimagenet.label_names(self.data_dir, config), sorted(WNIDS))

        # Second load: already prepared, no manual_dir needed; "test" is the validation set.
        test = data.load_dataset("tinyimagenet", "test", data_dir=self.data_dir, config=config)
        self.assertEqual(test.images.shape, (len(WNIDS) * VAL_PER_CLASS, 64, 64, 3))
        np.testing.assert_array_equal(np.bincount(test.labels), [VAL_PER_CLASS] * 3)
        red = test.images[:, :, :, 0].mean(axis=(1, 2))
        np.testing.assert_allclose(red, 40 + 60 * test.labels, atol=4)

    def test_grayscale_converted_to_rgb(self):
        make_archive(self.manual, gray="n01_0.JPEG")
        train = tinyimagenet.load(
            "train", data_dir=self.data_dir, manual_dir=self.manual, config=_config()
        )
        # The grey-scale file of class 0 has three equal channels; colour ones do not.
        equal = [
            np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 1], im[..., 2])
            for im in train.images
        ]
        self.assertEqual(sum(equal), 1)

    def test_resize_to_32(self):
        make_archive(self.manual)
        ds = data.load_dataset(
            "tinyimagenet",
            "test",
            data_dir=self.data_dir,
            manual_dir=self.manual,
            config=_config(),
            image_size=32,
        )
        self.assertEqual(ds.images.shape, (len(WNIDS) * VAL_PER_CLASS, 32, 32, 3))
        full = data.load_dataset("tinyimagenet", "test", data_dir=self.data_dir, config=_config())
        area_mean = full.images.reshape(-1, 32, 2, 32, 2, 3).astype(float).mean(axis=(2, 4))
        np.testing.assert_allclose(ds.images, area_mean, atol=1.0)

    def test_corrupt_jpeg_reported_by_name(self):
        make_archive(self.manual, corrupt="n02_3.JPEG")
        with self.assertRaisesRegex(ValueError, "n02/images/n02_3.JPEG"):
            tinyimagenet.load(
                "train", data_dir=self.data_dir, manual_dir=self.manual, config=_config()
            )

    def test_missing_wnids_reported(self):
        make_archive(self.manual, drop="wnids.txt")
        with self.assertRaisesRegex(FileNotFoundError, "wnids.txt"):
            tinyimagenet.prepare(self.data_dir, self.manual, _config())

    def test_missing_val_image_reported(self):
        make_archive(self.manual, drop="val_3.JPEG")
        with self.assertRaisesRegex(FileNotFoundError, "val_3.JPEG"):
            tinyimagenet.prepare(self.data_dir, self.manual, _config())

    def test_wrong_counts_reported(self):
        make_archive(self.manual)
        with self.assertRaisesRegex(ValueError, "lists 3 classes, expected 200"):
            tinyimagenet.prepare(self.data_dir, self.manual, _config("c200", num_classes=200))
        with self.assertRaisesRegex(ValueError, "do not have 500 training images"):
            tinyimagenet.prepare(self.data_dir, self.manual, _config("c500", train_per_class=500))
        with self.assertRaisesRegex(ValueError, "do not have 50 validation images"):
            tinyimagenet.prepare(self.data_dir, self.manual, _config("v50", val_per_class=50))

    def test_not_prepared_without_archive(self):
        with self.assertRaises(data.DatasetNotPreparedError) as ctx:
            data.load_dataset("tinyimagenet", "train", data_dir=self.data_dir, config=_config())
        message = str(ctx.exception)
        self.assertIn(tinyimagenet.ARCHIVE, message)
        self.assertIn("manual_dir", message)
        self.assertIn(os.path.join(self.data_dir, "downloads", "manual"), message)

    def test_default_manual_dir_is_used(self):
        default_manual = os.path.join(self.data_dir, "downloads", "manual")
        os.makedirs(default_manual)
        make_archive(default_manual)
        ds = tinyimagenet.load("test", data_dir=self.data_dir, config=_config())
        self.assertLen(ds, len(WNIDS) * VAL_PER_CLASS)

    def test_bad_split(self):
        with self.assertRaisesRegex(ValueError, "split='validation'"):
            tinyimagenet.load("validation", data_dir=self.data_dir, config=_config())


if __name__ == "__main__":
    absltest.main()
