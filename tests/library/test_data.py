"""Tests for hncl_jax.data: synthetic sets, digits, CIFAR through TFDS mocks, masks, views."""

import math
import subprocess
import sys
import tempfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from hncl_jax import data
from hncl_jax.data import augment, synthetic


class SyntheticTest(parameterized.TestCase):
    def test_hn_synthetic_shapes_balance_and_seed(self):
        ds = data.load_dataset("hn_synthetic", "train", seed=3)
        self.assertEqual(ds.images.shape, (300, 3072))
        self.assertEqual(ds.images.dtype, np.float32)
        self.assertEqual(ds.labels.dtype, np.int32)
        self.assertEqual((ds.num_classes, ds.name), (3, "hn_synthetic"))
        np.testing.assert_array_equal(np.bincount(ds.labels), [100, 100, 100])
        again = data.load_dataset("hn_synthetic", "train", seed=3)
        np.testing.assert_array_equal(ds.images, again.images)
        other = data.load_dataset("hn_synthetic", "train", seed=4)
        self.assertFalse(np.allclose(ds.images, other.images))

    def test_hn_synthetic_distribution(self):
        # x | y ~ N(μ_y, I) with μ_y ~ U[-1, 1]^D; train and test share the means.
        train = data.load_dataset("hn_synthetic", "train", seed=0, dim=2000)
        test = data.load_dataset("hn_synthetic", "test", seed=0, dim=2000)
        self.assertFalse(np.allclose(train.images, test.images))
        for c in range(3):
            a, b = train.images[train.labels == c], test.images[test.labels == c]
            mean_a, mean_b = a.mean(0), b.mean(0)
            # Estimated means correlate across splits: var(μ) = 1/3 vs. estimate noise 1/100.
            self.assertGreater(np.corrcoef(mean_a, mean_b)[0, 1], 0.9)
            self.assertAlmostEqual(float(mean_a.var()), 1 / 3 + 1 / 100, delta=0.05)
            self.assertAlmostEqual(float((a - mean_a).var(axis=0).mean()), 1.0, delta=0.05)
        other = data.load_dataset("hn_synthetic", "test", seed=1, dim=2000)
        self.assertLess(
            np.corrcoef(train.images[:100].mean(0), other.images[:100].mean(0))[0, 1], 0.2
        )

    def test_hn_synthetic_options(self):
        ds = data.load_dataset(
            "hn_synthetic", "test", num_classes=4, per_class=5, image_shape=(32, 32, 3)
        )
        self.assertEqual(ds.images.shape, (20, 32, 32, 3))
        np.testing.assert_array_equal(np.bincount(ds.labels), [5] * 4)
        with self.assertRaisesRegex(ValueError, "image_shape"):
            data.load_dataset("hn_synthetic", "train", image_shape=(8, 8, 3))
        with self.assertRaisesRegex(ValueError, "per_class"):
            data.load_dataset("hn_synthetic", "train", per_class=0)

    def test_clop_synthetic_lines(self):
        ds = data.load_dataset("clop_synthetic", "train", seed=2)
        self.assertEqual(ds.images.shape, (500, 3))
        self.assertEqual(ds.images.dtype, np.float32)
        np.testing.assert_array_equal(np.bincount(ds.labels), [167, 167, 166])
        directions = synthetic.clop_directions(seed=2)
        np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, rtol=1e-6)
        for c in range(3):
            x = ds.images[ds.labels == c].astype(np.float64)
            u = directions[c]
            # Off-line residual: 2 of the 3 noise dimensions, variance 0.05 each.
            residual = x - np.outer(x @ u, u)
            self.assertAlmostEqual(float((residual**2).sum(1).mean()), 2 * 0.05, delta=0.02)
            # The principal axis of the (uncentred) class is its line.
            top = np.linalg.svd(x, full_matrices=False)[2][0]
            self.assertGreater(abs(float(top @ u)), 0.97)
        # Both signs of t: lines through the origin, the class mean near 0.
        self.assertLess(float(np.abs(ds.images.mean(0)).max()), 0.15)
        test = data.load_dataset("clop_synthetic", "test", seed=2)
        self.assertFalse(np.allclose(ds.images, test.images))
        np.testing.assert_array_equal(
            data.load_dataset("clop_synthetic", "train", seed=2).images, ds.images
        )

    def test_clop_synthetic_directions(self):
        for kind in synthetic.DIRECTIONS:
            u = synthetic.clop_directions(seed=4, kind=kind)
            self.assertEqual(u.shape, (3, 3))
            np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-6)
            ds = data.load_dataset(
                "clop_synthetic", "train", seed=4, directions=kind, radius=10.0, noise_std=0.0
            )
            # Noise-free points lie on their own line: the nearest line is their class's.
            self.assertEqual(synthetic.nearest_line_accuracy(ds.images, ds.labels, u), 1.0)
        for kind in ("orthogonal", "axes"):
            u = synthetic.clop_directions(seed=4, kind=kind)
            np.testing.assert_allclose(u @ u.T, np.eye(3), atol=1e-12)
        np.testing.assert_array_equal(synthetic.clop_directions(kind="axes"), np.eye(3))
        planar = synthetic.clop_directions(seed=9, kind="planar")
        np.testing.assert_allclose(planar[:, 2], 0.0)
        cos = planar @ planar.T
        np.testing.assert_allclose(np.abs(cos[~np.eye(3, dtype=bool)]), 0.5, atol=1e-12)
        np.testing.assert_array_equal(planar, synthetic.clop_directions(seed=1, kind="planar"))
        self.assertFalse(
            np.allclose(
                synthetic.clop_directions(0, kind="orthogonal"),
                synthetic.clop_directions(1, kind="orthogonal"),
            )
        )
        # The default ("random", variance 0.05) is the generator of the earlier versions.
        np.testing.assert_array_equal(
            data.load_dataset("clop_synthetic", "train", seed=2).images,
            data.load_dataset(
                "clop_synthetic", "train", seed=2, directions="random", noise_variance=0.05
            ).images,
        )

    def test_clop_synthetic_noise_as_variance_or_std(self):
        kw = dict(seed=1, directions="axes", radius=1.0, num_points=3000)
        by_var = data.load_dataset("clop_synthetic", "train", noise_variance=0.04, **kw)
        by_std = data.load_dataset("clop_synthetic", "train", noise_std=0.2, **kw)
        np.testing.assert_allclose(by_var.images, by_std.images, rtol=1e-6)
        # Off-line residual of class 0 (line e_1): the other two coordinates, σ = 0.2.
        x = by_std.images[by_std.labels == 0]
        self.assertAlmostEqual(float(x[:, 1:].std()), 0.2, delta=0.01)
        self.assertAlmostEqual(synthetic.clop_noise_std(), math.sqrt(0.05))
        self.assertAlmostEqual(synthetic.clop_noise_std(noise_std=0.05), 0.05)

    @parameterized.parameters(
        (dict(noise_variance=0.05, noise_std=0.05), "both set"),
        (dict(noise_std=-1.0), r"noise_std=-1.0 must be a number >= 0"),
        (dict(noise_variance=float("nan")), "noise_variance=nan must be"),
        (dict(radius=0.0), r"radius=0.0 must be a number > 0"),
        (dict(directions="diagonal"), "directions='diagonal' must be one of"),
        (dict(directions="orthogonal", dim=2), "needs dim >= num_classes"),
        (dict(directions="planar", num_classes=7), "at most 6 classes"),
        (dict(num_points=2), "num_points=2 must be >= num_classes=3"),
    )
    def test_clop_synthetic_bad_options(self, kw, match):
        with self.assertRaisesRegex(ValueError, match):
            data.load_dataset("clop_synthetic", "train", **kw)
        with self.assertRaisesRegex(ValueError, match):
            synthetic.check_clop_options(**kw)

    def test_clop_synthetic_config_fields_are_validated(self):
        from hncl_jax.configs import clop_synthetic
        from hncl_jax.train import validation

        c = clop_synthetic.get_config()
        validation.validate_config(c)
        for field, bad, match in (
            ("radius", -3.0, "config.dataset_kwargs.radius=-3.0 must be a number > 0"),
            ("directions", "diag", "config.dataset_kwargs.directions='diag' must be one of"),
            ("noise_std", -0.1, "config.dataset_kwargs.noise_std=-0.1 must be"),
        ):
            bad_config = clop_synthetic.get_config()
            bad_config.dataset_kwargs[field] = bad
            with self.assertRaisesRegex(validation.ConfigError, match):
                validation.validate_config(bad_config)
        both = clop_synthetic.get_config()
        both.dataset_kwargs.noise_variance, both.dataset_kwargs.noise_std = 0.05, 0.05
        with self.assertRaisesRegex(validation.ConfigError, "config.dataset_kwargs.noise_var"):
            validation.validate_config(both)

    def test_clop_synthetic_earlier_default_is_reachable_by_config_fields(self):
        from hncl_jax import configs, train

        # --config=clop_synthetic:variance (the noise by the paper's words, variance 0.05)
        # --config.dataset_kwargs.radius=3 --config.dataset_kwargs.directions=random
        c = configs.load("clop_synthetic:variance")
        self.assertIsNone(c.dataset_kwargs.noise_std)
        c.dataset_kwargs.radius, c.dataset_kwargs.directions = 3.0, "random"
        train_ds, _ = train.load_data(c)
        earlier = synthetic.clop_synthetic("train", seed=c.seed, radius=3.0)
        np.testing.assert_array_equal(train_ds.images, earlier.images)

    def test_digits_stratified_split(self):
        train = data.load_dataset("digits", "train", seed=0)
        test = data.load_dataset("digits", "test", seed=0)
        self.assertEqual(train.images.shape[1:], (8, 8, 1))
        self.assertEqual(train.images.dtype, np.uint8)
        self.assertEqual(len(train) + len(test), 1797)
        self.assertEqual(int(train.images.max()), 255)
        self.assertEqual(train.num_classes, 10)
        full = np.bincount(np.concatenate([train.labels, test.labels]), minlength=10)
        np.testing.assert_allclose(np.bincount(test.labels, minlength=10), 0.2 * full, atol=1)
        again = data.load_dataset("digits", "test", seed=0)
        np.testing.assert_array_equal(again.images, test.images)
        other = data.load_dataset("digits", "test", seed=1)
        self.assertFalse(np.array_equal(other.images, test.images))
        resized = data.load_dataset("digits", "test", seed=0, image_size=16)
        self.assertEqual(resized.images.shape, (len(test), 16, 16, 1))

    def test_load_dataset_errors(self):
        with self.assertRaisesRegex(ValueError, "hn_synthetic.*cifar100.*tinyimagenet"):
            data.load_dataset("mnist", "train")
        with self.assertRaisesRegex(ValueError, "split='val'"):
            data.load_dataset("hn_synthetic", "val")
        with self.assertRaisesRegex(ValueError, "image_size"):
            data.load_dataset("clop_synthetic", "train", image_size=32)
        with self.assertRaisesRegex(ValueError, "bogus.*noise_variance"):
            data.load_dataset("clop_synthetic", "train", bogus=1)

    def test_resize_images_box_filter_is_area_mean(self):
        x = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
        out = data.resize_images(x, 4)
        expected = x.reshape(3, 4, 2, 4, 2, 3).astype(np.float64).mean(axis=(2, 4))
        np.testing.assert_allclose(out, expected, atol=1.0)


class LabelledMaskTest(parameterized.TestCase):
    @parameterized.parameters((100, 0.1, 10), (500, 0.1, 50), (7, 1.0, 7), (10, 0.25, 3))
    def test_count(self, n, fraction, count):
        mask = data.labelled_mask(n, fraction, seed=0)
        self.assertEqual(mask.dtype, bool)
        self.assertEqual(mask.shape, (n,))
        self.assertEqual(int(mask.sum()), count)

    def test_seeded(self):
        a = data.labelled_mask(1000, 0.1, seed=5)
        np.testing.assert_array_equal(a, data.labelled_mask(1000, 0.1, seed=5))
        self.assertFalse(np.array_equal(a, data.labelled_mask(1000, 0.1, seed=6)))

    @parameterized.parameters(0.0, -0.1, 1.5)
    def test_bad_fraction(self, fraction):
        with self.assertRaisesRegex(ValueError, "fraction"):
            data.labelled_mask(10, fraction, seed=0)


class TfdsSourceTest(parameterized.TestCase):
    @parameterized.parameters(("cifar10", 10), ("cifar100", 100))
    def test_cifar_through_mock_data(self, name, num_classes):
        import tensorflow_datasets as tfds

        with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
            ds = data.load_dataset(name, "train", data_dir="/nonexistent/tfds")
            small = data.load_dataset(name, "test", data_dir="/nonexistent/tfds", image_size=16)
        self.assertEqual(ds.images.shape, (6, 32, 32, 3))
        self.assertEqual(ds.images.dtype, np.uint8)
        self.assertEqual(ds.labels.dtype, np.int32)
        self.assertEqual((ds.num_classes, ds.name), (num_classes, name))
        self.assertTrue(((ds.labels >= 0) & (ds.labels < num_classes)).all())
        self.assertEqual(small.images.shape, (6, 16, 16, 3))

    def test_not_prepared_message(self):
        tmp = self.enterContext(tempfile.TemporaryDirectory())
        with self.assertRaises(data.DatasetNotPreparedError) as ctx:
            data.load_dataset("cifar10", "train", data_dir=tmp)
        message = str(ctx.exception)
        for part in ("download_and_prepare", "array_record", "pip install", tmp):
            self.assertIn(part, message)
        self.assertIsInstance(ctx.exception, ValueError)

    def test_import_needs_no_tfds(self):
        code = (
            "import sys, hncl_jax.data; "
            "assert 'tensorflow_datasets' not in sys.modules; assert 'sklearn' not in sys.modules"
        )
        subprocess.run([sys.executable, "-c", code], check=True)


def _images(b=4, size=16, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.integers(0, 256, (b, size, size, channels)), jnp.uint8)


class PreprocessTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_uint8_to_unit_and_normalize(self):
        x = _images()
        out = self.variant(augment.preprocess)(x)
        chex.assert_type(out, jnp.float32)
        np.testing.assert_allclose(out, np.asarray(x) / 255.0, rtol=1e-6)
        mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
        norm = self.variant(lambda x: augment.preprocess(x, mean=mean, std=std))(x)
        np.testing.assert_allclose(
            norm, (np.asarray(x) / 255.0 - np.array(mean)) / np.array(std), rtol=1e-5, atol=1e-6
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_float_passes_through(self):
        v = jnp.linspace(-3.0, 3.0, 12).reshape(4, 3)
        np.testing.assert_array_equal(self.variant(augment.preprocess)(v), v)

    def test_bad_std(self):
        with self.assertRaisesRegex(ValueError, "std"):
            augment.preprocess(_images(), mean=0.5, std=0.0)


class SimclrTest(chex.TestCase):
    def test_views_shape_range_determinism(self):
        # jit only: the eager vmapped pipeline is slow on CPU and computes the same.
        chex.clear_trace_counter()
        x = _images()
        views = jax.jit(
            chex.assert_max_traces(lambda k, x: augment.make_views(k, x, "simclr"), n=1)
        )
        a = views(jax.random.key(0), x)
        chex.assert_shape(a, (8, 16, 16, 3))
        chex.assert_type(a, jnp.float32)
        self.assertGreaterEqual(float(a.min()), 0.0)
        self.assertLessEqual(float(a.max()), 1.0)
        np.testing.assert_array_equal(a, views(jax.random.key(0), x))
        b = views(jax.random.key(1), x)
        self.assertFalse(np.allclose(a, b))
        self.assertFalse(np.allclose(a[:4], a[4:]))  # the two views of an example differ

    def test_grayscale_single_channel(self):
        x = _images(channels=1)
        out = jax.jit(lambda k, x: augment.simclr_augment(k, x))(jax.random.key(0), x)
        chex.assert_shape(out, x.shape)
        with self.assertRaisesRegex(ValueError, "noise"):
            augment.simclr_augment(jax.random.key(0), jnp.zeros((2, 10)))

    def test_identity_settings_give_identity(self):
        # Full-image crop, no jitter: only the flip and grey-scale switches act.
        x = augment.to_unit_range(_images())

        @jax.jit
        def aug(flip_prob, gray_prob):
            return augment.simclr_augment(
                jax.random.key(0),
                x,
                crop_scale=(1.0, 1.0),
                jitter_prob=0.0,
                gray_prob=gray_prob,
                flip_prob=flip_prob,
            )

        np.testing.assert_allclose(aug(0.0, 0.0), x, atol=1e-6)
        np.testing.assert_allclose(aug(1.0, 0.0), x[:, :, ::-1], atol=1e-6)
        gray = aug(0.0, 1.0)
        luma = (np.asarray(x) * np.array([0.299, 0.587, 0.114])).sum(-1)
        for c in range(3):
            np.testing.assert_allclose(gray[..., c], luma, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_crop_and_resize_matches_resize_of_slice(self):
        img = augment.to_unit_range(_images(b=1)[0])
        out = self.variant(augment.crop_and_resize)(img, 3.0, 1.0, 12.0, 6.0)
        ref = jax.image.resize(img[3:15, 1:7], (16, 16, 3), "linear")
        # Interior pixels (the border samples the neighbours just outside the box).
        np.testing.assert_allclose(out[1:-1, 2:-2], ref[1:-1, 2:-2], atol=1e-5)

    def test_crop_boxes_obey_scale_and_ratio(self):
        keys = jax.random.split(jax.random.key(0), 2000)
        top, left, h, w = jax.vmap(
            lambda k: augment._crop_box(k, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3))
        )(keys)
        top, left, h, w = map(np.asarray, (top, left, h, w))
        self.assertTrue(((top >= 0) & (left >= 0) & (top + h <= 32) & (left + w <= 32)).all())
        area = h * w / 1024
        self.assertTrue(((area > 0.05) & (area <= 1.0)).all())  # 0.08 up to rounding
        ratio = w / h
        self.assertTrue(((ratio > 0.6) & (ratio < 1.6)).all())
        self.assertGreater(len(np.unique(top)), 10)

    def test_color_jitter_zero_strength_is_identity(self):
        x = augment.to_unit_range(_images(b=1)[0])
        out = augment.color_jitter(jax.random.key(0), x, 0.0, 0.0, 0.0, 0.0)
        np.testing.assert_allclose(out, x, atol=1e-5)
        moved = augment.color_jitter(jax.random.key(0), x)
        self.assertFalse(np.allclose(moved, x, atol=1e-3))

    def test_hsv_round_trip(self):
        import colorsys

        x = np.asarray(augment.to_unit_range(_images(b=1, size=4)[0])).reshape(-1, 3)
        hsv = np.asarray(augment._rgb_to_hsv(jnp.asarray(x)))
        np.testing.assert_allclose(hsv, [colorsys.rgb_to_hsv(*p) for p in x], atol=1e-5)
        np.testing.assert_allclose(augment._hsv_to_rgb(jnp.asarray(hsv)), x, atol=1e-5)


class VectorViewsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_noise_views(self):
        x = jnp.asarray(np.random.default_rng(0).normal(size=(400, 50)), jnp.float32)
        views = self.variant(lambda k, x: augment.make_views(k, x, "noise", std=0.1))
        v = views(jax.random.key(0), x)
        chex.assert_shape(v, (800, 50))
        noise = np.concatenate([v[:400] - x, v[400:] - x])
        self.assertAlmostEqual(float(noise.std()), 0.1, delta=0.005)
        self.assertAlmostEqual(float(noise.mean()), 0.0, delta=0.005)
        np.testing.assert_array_equal(v, views(jax.random.key(0), x))
        self.assertFalse(np.allclose(v[:400], v[400:]))

    @chex.variants(with_jit=True, without_jit=True)
    def test_clop_views(self):
        x = jnp.asarray(np.random.default_rng(0).uniform(1.0, 2.0, size=(2000, 3)), jnp.float32)
        v = self.variant(lambda k, x: augment.make_views(k, x, "clop"))(jax.random.key(0), x)
        chex.assert_shape(v, (4000, 3))
        ref = jnp.concatenate([x, x])
        sign = np.sign(np.sum(np.asarray(v) * np.asarray(ref), axis=1))
        self.assertAlmostEqual(float((sign < 0).mean()), 0.5, delta=0.04)
        noise = np.asarray(v) * sign[:, None] - np.asarray(ref)
        self.assertAlmostEqual(float(noise.var()), 0.05, delta=0.005)
        # A view flips the whole example, never single coordinates.
        per_coord = np.sign(np.asarray(v) * np.asarray(ref))
        agree = (per_coord == sign[:, None]).mean()
        self.assertGreater(agree, 0.99)

    def test_bad_kind(self):
        with self.assertRaisesRegex(ValueError, "simclr.*noise.*clop"):
            augment.make_views(jax.random.key(0), jnp.zeros((2, 3)), "mixup")


@pytest.mark.parametrize("kind", ["noise", "clop"])
def test_make_views_traces_once(kind):
    chex.clear_trace_counter()
    x = jnp.ones((4, 3))
    fn = jax.jit(chex.assert_max_traces(lambda k, x: augment.make_views(k, x, kind), n=1))
    for seed in range(3):
        out = fn(jax.random.key(seed), x)
    assert out.shape[0] == 2 * x.shape[0]
    assert math.isfinite(float(out.sum()))
