"""Tests for hncl_jax.evaluation: features, NCM, kNN, linear probe, collapse report.

The public functions return Python floats (they jit internally and loop over chunks on
the host), so they are tested directly rather than under `chex.variants`.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from hncl_jax import evaluation, geometry


def _blobs(seed: int, num_classes: int, dim: int, per_class: int, spread: float):
    """Gaussian blobs around a scaled simplex ETF (classes well apart for spread << 1)."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * np.asarray(geometry.simplex_etf(num_classes, dim))
    y = np.repeat(np.arange(num_classes), per_class).astype(np.int32)
    x = centres[y] + spread * rng.standard_normal((y.size, dim))
    perm = rng.permutation(y.size)
    return x[perm].astype(np.float32), y[perm]


def _knn_reference(train_x, train_y, test_x, num_classes, k, weighted, temperature=0.07):
    """Brute-force numpy kNN with the documented tie-break."""
    preds = []
    for q in test_x:
        if weighted:
            a = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
            s = a @ (q / np.linalg.norm(q))
            order = np.argsort(-s, kind="stable")[:k]
            w = np.exp(s[order] / temperature)
        else:
            dist = np.sum((train_x - q) ** 2, axis=1)
            order = np.argsort(dist, kind="stable")[:k]
            w = np.ones(k)
        votes = np.zeros(num_classes)
        np.add.at(votes, train_y[order], w)
        tied = np.flatnonzero(np.isclose(votes, votes.max(), rtol=1e-6, atol=0))
        first = {c: int(np.flatnonzero(train_y[order] == c)[0]) for c in tied}
        preds.append(min(tied, key=lambda c: first[c]))
    return np.asarray(preds)


class FeaturesTest(chex.TestCase):
    @parameterized.parameters((np.asarray,), (jnp.asarray,))
    def test_extract_features_pads_last_batch(self, to_array):
        images = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
        traces = []

        @jax.jit
        def features_fn(batch):
            traces.append(batch.shape)
            flat = batch.reshape(batch.shape[0], -1)
            return jnp.sum(flat, axis=1, keepdims=True), 2.0 * flat

        h, z = evaluation.extract_features(features_fn, to_array(images), batch_size=4)
        self.assertEqual(traces, [(4, 2, 3)])  # one compiled shape for 4 + 4 + 2 rows
        flat = images.reshape(10, -1)
        np.testing.assert_allclose(h, flat.sum(axis=1, keepdims=True))
        np.testing.assert_allclose(z, 2.0 * flat)
        self.assertIsInstance(h, np.ndarray)

    def test_extract_features_smaller_than_one_batch(self):
        images = np.ones((3, 5), np.float32)
        h, z = evaluation.extract_features(jax.jit(lambda b: (b, b[:, :2])), images, 8)
        self.assertEqual((h.shape, z.shape), ((3, 5), (3, 2)))

    def test_extract_features_bad_batch_size(self):
        with self.assertRaisesRegex(ValueError, "batch_size"):
            evaluation.extract_features(lambda b: (b, b), np.ones((3, 2)), 0)


class NCMTest(chex.TestCase):
    def test_separable_blobs(self):
        x, y = _blobs(0, num_classes=4, dim=6, per_class=20, spread=0.1)
        tx, ty = _blobs(1, num_classes=4, dim=6, per_class=10, spread=0.1)
        self.assertEqual(evaluation.ncm_accuracy(x, y, tx, ty, 4), 1.0)

    def test_hand_computed_case(self):
        # Means: class 0 at (1, 0), class 1 at (5, 0); class 2 has no train example.
        train_x = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [6.0, 0.0]])
        train_y = np.array([0, 0, 1, 1])
        # (2.9, 0) -> 0; (3.1, 0) -> 1; (0, 10) -> 0 (dist² 101 vs 125), labelled 1: wrong;
        # the origin would be nearest to an all-zero mean of the empty class 2: predicted 0.
        test_x = np.array([[2.9, 0.0], [3.1, 0.0], [0.0, 10.0], [0.0, 0.0]])
        test_y = np.array([0, 1, 1, 0])
        self.assertAlmostEqual(evaluation.ncm_accuracy(train_x, train_y, test_x, test_y, 3), 3 / 4)
        pred = evaluation._ncm_predict(
            jnp.asarray(train_x, jnp.float32),
            jnp.asarray(train_y),
            jnp.asarray(test_x),
            num_classes=3,
        )
        np.testing.assert_array_equal(pred, [0, 1, 0, 0])

    def test_bad_shapes(self):
        with self.assertRaisesRegex(ValueError, "train_y must be"):
            evaluation.ncm_accuracy(np.ones((4, 2)), np.zeros(3), np.ones((2, 2)), np.zeros(2), 2)
        with self.assertRaisesRegex(ValueError, "feature dimension"):
            evaluation.ncm_accuracy(np.ones((4, 2)), np.zeros(4), np.ones((2, 3)), np.zeros(2), 2)
        with self.assertRaisesRegex(ValueError, "num_classes"):
            evaluation.ncm_accuracy(np.ones((4, 2)), np.zeros(4), np.ones((2, 2)), np.zeros(2), 1)


class KNNTest(chex.TestCase):
    @parameterized.parameters((False, 5), (True, 200))
    def test_separable_blobs(self, weighted, k):
        x, y = _blobs(2, num_classes=3, dim=4, per_class=30, spread=0.1)
        tx, ty = _blobs(3, num_classes=3, dim=4, per_class=10, spread=0.1)
        acc = evaluation.knn_accuracy(x, y, tx, ty, 3, k=min(k, 25), weighted=weighted)
        self.assertEqual(acc, 1.0)

    def test_hand_computed_majority_and_tie(self):
        train_x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
        train_y = np.array([0, 0, 1, 1, 1])
        cases = [
            # (query, k, expected): 0.4 with k=3 -> votes 0,0,1 -> 0; k=5 -> 2 vs 3 -> 1.
            (0.4, 3, 0),
            (0.4, 5, 1),
            # k=2 at 1.6: neighbours 2.0 (class 1) and 1.0 (class 0) tie 1-1; the nearest
            # (class 1) wins. At 1.4 the nearest is 1.0, class 0.
            (1.6, 2, 1),
            (1.4, 2, 0),
        ]
        for query, k, expected in cases:
            for label, want in ((expected, 1.0), (1 - expected, 0.0)):
                acc = evaluation.knn_accuracy(train_x, train_y, [[query]], [label], 2, k=k)
                self.assertEqual(acc, want, msg=f"query {query}, k {k}, label {label}")

    def test_weights_override_majority(self):
        # One class-0 neighbour at the query's direction, two class-1 neighbours at ±60°.
        angles = np.deg2rad([0.0, 60.0, -60.0])
        train_x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        train_y = np.array([0, 1, 1])
        query, label = np.array([[1.0, 0.0]]), np.array([0])
        plain = evaluation.knn_accuracy(train_x, train_y, query, label, 2, k=3)
        weighted = evaluation.knn_accuracy(train_x, train_y, query, label, 2, k=3, weighted=True)
        self.assertEqual((plain, weighted), (0.0, 1.0))  # e^{1/τ} > 2 e^{0.5/τ}

    def test_weighted_exact_tie_goes_to_nearest_then_lower_train_index(self):
        # Class 1 at +30°, class 0 at -30°, query at 0°: equal weights; the first listed
        # neighbour (class 1, lower train index) wins, not the lower class id.
        angles = np.deg2rad([30.0, -30.0])
        train_x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        train_y = np.array([1, 0])
        query = np.array([[1.0, 0.0]])
        for label, want in ((1, 1.0), (0, 0.0)):
            acc = evaluation.knn_accuracy(train_x, train_y, query, [label], 2, k=2, weighted=True)
            self.assertEqual(acc, want)

    @parameterized.parameters((False, 7), (True, 20))
    def test_matches_brute_force_with_chunks(self, weighted, k):
        rng = np.random.default_rng(4)
        train_x = rng.standard_normal((60, 5)).astype(np.float32)
        train_y = rng.integers(0, 4, 60)
        test_x = rng.standard_normal((23, 5)).astype(np.float32)
        test_y = rng.integers(0, 4, 23)
        want = _knn_reference(train_x, train_y, test_x, 4, k, weighted)
        acc = evaluation.knn_accuracy(
            train_x, train_y, test_x, test_y, 4, k=k, weighted=weighted, chunk_size=8
        )
        self.assertAlmostEqual(acc, float(np.mean(want == test_y)))

    def test_k_larger_than_train_set_uses_all(self):
        acc = evaluation.knn_accuracy([[0.0], [1.0], [5.0]], [0, 0, 1], [[4.0]], [0], 2, k=200)
        self.assertEqual(acc, 1.0)  # all 3 neighbours: class 0 has 2 votes

    def test_bad_k(self):
        with self.assertRaisesRegex(ValueError, "k must be >= 1"):
            evaluation.knn_accuracy([[0.0]], [0], [[0.0]], [0], 2, k=0)


class LinearProbeTest(chex.TestCase):
    def test_separable_blobs(self):
        x, y = _blobs(5, num_classes=4, dim=8, per_class=50, spread=0.5)
        tx, ty = _blobs(6, num_classes=4, dim=8, per_class=25, spread=0.5)
        result = evaluation.linear_probe(
            x, y, tx, ty, 4, epochs=30, batch_size=32, learning_rate=1e-2, weight_decay=1e-4, seed=0
        )
        self.assertGreater(result["top1"], 0.95)
        self.assertEqual(result["top5"], 1.0)  # C = 4 <= 5: top-4 holds every class

    def test_top5_between_top1_and_one_with_many_classes(self):
        x, y = _blobs(7, num_classes=10, dim=12, per_class=10, spread=2.0)
        tx, ty = _blobs(8, num_classes=10, dim=12, per_class=10, spread=2.0)
        result = evaluation.linear_probe(x, y, tx, ty, 10, epochs=5, batch_size=50, seed=1)
        self.assertLessEqual(result["top1"], result["top5"])
        self.assertLess(result["top5"], 1.0 + 1e-9)
        self.assertGreater(result["top5"], result["top1"] - 1e-9)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "epochs"):
            evaluation.linear_probe([[0.0], [1.0]], [0, 1], [[0.0]], [0], 2, epochs=0)
        with self.assertRaisesRegex(ValueError, "learning_rate"):
            evaluation.linear_probe([[0.0], [1.0]], [0, 1], [[0.0]], [0], 2, learning_rate=0.0)


class CollapseReportTest(chex.TestCase):
    @parameterized.parameters((4, 3), (4, 6))
    def test_exact_simplex_etf_is_collapsed(self, num_classes, dim):
        etf = np.asarray(geometry.simplex_etf(num_classes, dim))
        labels = np.repeat(np.arange(num_classes), 5)
        report, spectrum = evaluation.collapse_report(etf[labels], labels, num_classes, "nc/x/")
        for name in evaluation.NC_METRICS:
            self.assertLess(abs(report[f"nc/x/{name}"]), 1e-5, msg=name)
        self.assertEqual(report["nc/x/dc_rank"], num_classes - 1)
        self.assertEqual(spectrum.shape, (min(num_classes, dim),))
        np.testing.assert_allclose(spectrum[: num_classes - 1], 1.0, atol=1e-5)
        self.assertEqual(set(report), {f"nc/x/{n}" for n in (*evaluation.NC_METRICS, "dc_rank")})

    def test_matches_numpy_formulas(self):
        rng = np.random.default_rng(9)
        z = np.asarray(geometry.normalize(rng.standard_normal((30, 3)), "unit_sphere"))
        y = rng.integers(0, 3, 30)
        report, _ = evaluation.collapse_report(z, y, 3)
        mu = np.stack([z[y == c].mean(axis=0) for c in range(3)])
        gram = mu @ mu.T
        off = ~np.eye(3, dtype=bool)
        self.assertAlmostEqual(report["zero_sum"], np.linalg.norm(mu.sum(0)), places=5)
        self.assertAlmostEqual(
            report["unit_norm"], np.mean(np.abs(np.linalg.norm(mu, axis=1) - 1)), places=5
        )
        self.assertAlmostEqual(
            report["equal_inner_product"], np.abs(gram + 0.5)[off].sum() / 6, places=5
        )
        self.assertAlmostEqual(
            report["within_class_variance"], np.mean(np.sum((z - mu[y]) ** 2, axis=1)), places=5
        )

    def test_dimensional_collapse_lowers_rank(self):
        etf = np.array(geometry.simplex_etf(4, 3))
        etf[:, 2] = 0.0  # means confined to a plane: one direction collapsed
        labels = np.repeat(np.arange(4), 3)
        report, _ = evaluation.collapse_report(etf[labels], labels, 4)
        self.assertEqual(report["dc_rank"], 2.0)


class EvaluateRepresentationsTest(chex.TestCase):
    def test_keys_and_consistency(self):
        x, y = _blobs(10, num_classes=3, dim=5, per_class=12, spread=0.2)
        tx, ty = _blobs(11, num_classes=3, dim=5, per_class=6, spread=0.2)
        z, tz = (np.asarray(geometry.normalize(a, "unit_sphere")) for a in (x, tx))
        scalars, spectra = evaluation.evaluate_representations(
            x, z, y, tx, tz, ty, 3, linear_probe=True, probe_kwargs={"epochs": 3, "batch_size": 8}
        )
        expected = set()
        for split in ("train", "test"):
            expected |= {f"nc/{split}/z/{n}" for n in (*evaluation.NC_METRICS, "dc_rank")}
            expected |= {f"nc/{split}/h/dc_rank"}
            expected |= {f"eval/{split}/{rep}/ncm_acc" for rep in ("h", "z")}
        for rep in ("h", "z"):
            expected |= {f"eval/test/{rep}/{m}" for m in ("knn5_acc", "knn200_acc")}
            expected |= {f"eval/test/{rep}/probe_top1", f"eval/test/{rep}/probe_top5"}
        self.assertEqual(set(scalars), expected)
        self.assertEqual(set(spectra), {"train/h", "train/z", "test/h", "test/z"})
        self.assertTrue(all(isinstance(v, float) for v in scalars.values()))
        self.assertEqual(scalars["eval/test/h/ncm_acc"], evaluation.ncm_accuracy(x, y, tx, ty, 3))
        self.assertEqual(
            scalars["eval/test/z/knn200_acc"],
            evaluation.knn_accuracy(z, y, tz, ty, 3, k=200, weighted=True),
        )
        report, spectrum = evaluation.collapse_report(tz, ty, 3, "nc/test/z/")
        for key, value in report.items():
            self.assertAlmostEqual(scalars[key], value, places=6)
        np.testing.assert_allclose(spectra["test/z"], spectrum, rtol=1e-6)

    def test_z_only_and_custom_knn(self):
        z, y = _blobs(12, num_classes=3, dim=2, per_class=5, spread=0.1)
        scalars, spectra = evaluation.evaluate_representations(
            None, z, y, None, z, y, 3, knn_k=(1, 3), knn_weighted=(False, False)
        )
        self.assertFalse(any("/h/" in k for k in scalars))
        self.assertEqual(scalars["eval/test/z/knn1_acc"], 1.0)  # test = train: itself
        self.assertEqual(set(spectra), {"train/z", "test/z"})

    def test_bad_arguments(self):
        z, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
        with self.assertRaisesRegex(ValueError, "train_h and test_h"):
            evaluation.evaluate_representations(z, z, y, None, z, y, 2)
        with self.assertRaisesRegex(ValueError, "knn_weighted"):
            evaluation.evaluate_representations(None, z, y, None, z, y, 2, knn_k=(5,))
        with self.assertRaisesRegex(ValueError, "repeats"):
            evaluation.evaluate_representations(
                None, z, y, None, z, y, 2, knn_k=(5, 5), knn_weighted=(False, True)
            )


if __name__ == "__main__":
    absltest.main()
