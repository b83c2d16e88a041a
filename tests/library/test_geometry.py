"""Tests of hncl_jax.geometry: normalization, simplex ETF, NC/DC metrics, bounds, CLOP GD."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from hncl_jax import geometry

# ----------------------------------------------------------------------------------------
# normalize


class NormalizeTest(chex.TestCase):
    def _features(self):
        # Rows of norm 0.3, 1.0 (boundary), 2.5 and 7 in R^4.
        direction = jax.random.normal(jax.random.key(0), (4, 4))
        direction = direction / jnp.linalg.norm(direction, axis=-1, keepdims=True)
        return direction * jnp.array([0.3, 1.0, 2.5, 7.0])[:, None]

    @chex.variants(with_jit=True, without_jit=True)
    def test_unit_ball(self):
        f = self._features()
        z = self.variant(functools.partial(geometry.normalize, kind="unit_ball"))(f)
        norms = jnp.linalg.norm(z, axis=-1)
        self.assertTrue(bool(jnp.all(norms <= 1.0 + 1e-6)))
        # Identity inside the ball, projection onto the sphere outside.
        np.testing.assert_allclose(z[:2], f[:2], rtol=1e-6)
        np.testing.assert_allclose(norms[2:], 1.0, rtol=1e-6)
        np.testing.assert_allclose(z[2:] * jnp.array([2.5, 7.0])[:, None], f[2:], rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_unit_sphere(self):
        f = self._features()
        z = self.variant(functools.partial(geometry.normalize, kind="unit_sphere"))(f)
        np.testing.assert_allclose(jnp.linalg.norm(z, axis=-1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(z * jnp.linalg.norm(f, axis=-1, keepdims=True), f, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_none_scales_by_sqrt_d(self):
        f = jax.random.normal(jax.random.key(1), (2, 3, 16))
        z = self.variant(functools.partial(geometry.normalize, kind="none"))(f)
        np.testing.assert_allclose(z, f / 4.0, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*geometry.NORMALIZATIONS)
    def test_value_and_grad_finite_at_zero(self, kind):
        w = jnp.array([0.5, -1.0, 2.0])

        def objective(f):
            return jnp.sum(geometry.normalize(f, kind) * w)

        value, grad = self.variant(jax.value_and_grad(objective))(jnp.zeros(3))
        self.assertEqual(float(value), 0.0)
        self.assertTrue(bool(jnp.all(jnp.isfinite(grad))))
        if kind == "unit_ball":  # the identity map near 0
            np.testing.assert_allclose(grad, w)

    @parameterized.parameters("unit_ball", "unit_sphere")
    def test_grads_match_finite_differences(self, kind):
        f = jnp.array([[0.3, -0.2, 0.1], [1.5, 2.0, -0.5]])  # inside and outside the ball
        jax.test_util.check_grads(
            lambda f: geometry.normalize(f, kind), (f,), order=1, modes=["rev"], atol=1e-2
        )

    def test_bad_kind(self):
        with self.assertRaisesRegex(ValueError, "unit_ball.*unit_sphere.*none"):
            geometry.normalize(jnp.ones(3), kind="l2")


# ----------------------------------------------------------------------------------------
# simplex_etf


class SimplexETFTest(parameterized.TestCase):
    @parameterized.parameters((2, None), (3, None), (3, 2), (3, 7), (10, None), (10, 16), (64, 64))
    def test_properties(self, num_classes, dim):
        c = num_classes
        etf = geometry.simplex_etf(c, dim)
        d = c - 1 if dim is None else dim
        self.assertEqual(etf.shape, (c, d))
        self.assertEqual(etf.dtype, jnp.float32)
        etf = np.asarray(etf, dtype=np.float64)
        gram = etf @ etf.T
        expected = np.where(np.eye(c, dtype=bool), 1.0, -1.0 / (c - 1))
        np.testing.assert_allclose(gram, expected, atol=1e-6)
        np.testing.assert_allclose(etf.sum(axis=0), 0.0, atol=1e-6)
        np.testing.assert_array_equal(etf[:, c - 1 :], 0.0)  # embedded in the first C-1 axes
        self.assertEqual(np.linalg.matrix_rank(etf, tol=1e-5), c - 1)

    def test_dim_too_small(self):
        with self.assertRaisesRegex(ValueError, r"dim=3.*num_classes - 1 = 4"):
            geometry.simplex_etf(5, dim=3)

    def test_too_few_classes(self):
        with self.assertRaisesRegex(ValueError, "num_classes=1"):
            geometry.simplex_etf(1)


# ----------------------------------------------------------------------------------------
# class_means, nc_metrics, dc_spectrum


def _etf_batch(num_classes, dim, repeats):
    """Every ETF vertex repeated `repeats` times: exact NC with zero within-class variance."""
    etf = geometry.simplex_etf(num_classes, dim)
    labels = jnp.repeat(jnp.arange(num_classes), repeats)
    return etf[labels], labels


# Three classes in R^2 (hand example): means (0.8, 0.4), (0, -1), (-0.75, 0).
_Z_HAND = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.0, -1.0], [-1.0, 0.0], [-0.5, 0.0]])
_Y_HAND = jnp.array([0, 0, 1, 2, 2])


class CollapseMetricsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_class_means(self):
        z = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [9.0, 9.0]])
        labels = jnp.array([0, 0, 2, -1])  # class 1 empty, the last row unlabelled
        mu = self.variant(geometry.class_means, static_argnames="num_classes")(z, labels, 3)
        np.testing.assert_allclose(mu, [[2.0, 3.0], [0.0, 0.0], [5.0, 6.0]])

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters((3, 2), (3, 5), (10, 9), (10, 12))
    def test_nc_metrics_vanish_at_etf(self, num_classes, dim):
        z, labels = _etf_batch(num_classes, dim, repeats=4)
        metrics = self.variant(geometry.nc_metrics, static_argnames="num_classes")(
            z, labels, num_classes
        )
        self.assertEqual(
            set(metrics), {"zero_sum", "unit_norm", "equal_inner_product", "within_class_variance"}
        )
        for name, value in metrics.items():
            self.assertLess(float(value), 1e-6, msg=name)

    @chex.variants(with_jit=True, without_jit=True)
    def test_nc_metrics_hand_example(self):
        metrics = self.variant(geometry.nc_metrics, static_argnames="num_classes")(
            _Z_HAND, _Y_HAND, 3
        )
        # Sum of means (0.05, -0.6); mean norms sqrt(0.8), 1, 0.75; pairwise inner
        # products -0.4, -0.6, 0 against -1/(C-1) = -0.5; squared deviations from the
        # means 0.2, 0.2, 0, 0.0625, 0.0625.
        expected = {
            "zero_sum": math.sqrt(0.05**2 + 0.6**2),
            "unit_norm": (abs(math.sqrt(0.8) - 1.0) + 0.0 + 0.25) / 3,
            "equal_inner_product": 2 * (0.1 + 0.1 + 0.5) / (3 * 2),
            "within_class_variance": (0.2 + 0.2 + 0.0 + 0.0625 + 0.0625) / 5,
        }
        for name, value in expected.items():
            self.assertAlmostEqual(float(metrics[name]), value, places=6, msg=name)

    def test_nc_metrics_ignore_unlabelled_rows(self):
        z = jnp.concatenate([_Z_HAND, jnp.array([[3.0, 3.0]])])
        labels = jnp.concatenate([_Y_HAND, jnp.array([-1])])
        with_extra = geometry.nc_metrics(z, labels, 3)
        reference = geometry.nc_metrics(_Z_HAND, _Y_HAND, 3)
        for name in reference:
            self.assertAlmostEqual(float(with_extra[name]), float(reference[name]), places=6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(3, 10)
    def test_dc_spectrum_at_etf(self, num_classes):
        spectrum_fn = self.variant(geometry.dc_spectrum, static_argnames="num_classes")
        c = num_classes
        # d = C - 1: C - 1 values, all 1 (no dimensional collapse at NC).
        spectrum = spectrum_fn(*_etf_batch(c, c - 1, repeats=3), c)
        self.assertEqual(spectrum.shape, (c - 1,))
        np.testing.assert_allclose(spectrum, 1.0, atol=1e-5)
        # d > C - 1: min(C, d) = C values, C - 1 ones and a trailing ~0.
        spectrum = spectrum_fn(*_etf_batch(c, c + 4, repeats=3), c)
        self.assertEqual(spectrum.shape, (c,))
        np.testing.assert_allclose(spectrum[: c - 1], 1.0, atol=1e-5)
        self.assertLess(float(spectrum[-1]), 1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_dc_spectrum_matches_numpy_covariance(self):
        key_z, key_y = jax.random.split(jax.random.key(2))
        z = jax.random.normal(key_z, (40, 6))
        labels = jax.random.randint(key_y, (40,), 0, 4)
        spectrum = self.variant(geometry.dc_spectrum, static_argnames="num_classes")(z, labels, 4)
        mu = np.stack([np.asarray(z)[np.asarray(labels) == c].mean(axis=0) for c in range(4)])
        eig = np.sort(np.linalg.eigvalsh(np.cov(mu.T, bias=True)))[::-1][:4]
        np.testing.assert_allclose(spectrum, eig / eig[0], atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_effective_rank(self):
        x = jnp.diag(jnp.array([1.0, 0.5, 2e-3, 5e-4]))
        rank = self.variant(geometry.effective_rank)(x)
        self.assertEqual(int(rank), 3)
        self.assertEqual(int(geometry.effective_rank(x, tol=1e-2)), 2)


# ----------------------------------------------------------------------------------------
# Theoretical minima [HN Thm 2, Thm 3]


def _psi_direct(t, psi, alpha):
    """ψ_k of docs/math.md §2 on an explicit list of arguments (float64, for reference values)."""
    t = np.asarray(t, dtype=np.float64)
    if psi == "infonce":
        return math.log(1.0 + np.mean(np.exp(t)))
    if psi == "infonce_sum":
        return math.log(alpha + np.sum(np.exp(t)))
    return float(np.mean(np.maximum(t + alpha, 0.0)))


_PSI_CASES = [("infonce", 1.0), ("infonce_sum", 1.0), ("infonce_sum", 0.3), ("triplet", 1.0)]
_PSI_CASES += [("triplet", 2.0)]


class BoundsTest(parameterized.TestCase):
    def test_known_values(self):
        self.assertAlmostEqual(geometry.scl_lower_bound(3, 256), 0.20141, places=5)
        self.assertAlmostEqual(geometry.scl_lower_bound(100, 256), 0.31056, places=5)
        self.assertAlmostEqual(geometry.ucl_lower_bound(3, 256), 0.39333, places=5)
        self.assertAlmostEqual(geometry.ucl_reweighted_limit(3), 0.39345, places=5)
        self.assertAlmostEqual(geometry.clop_lr_bound(30), 2.0333, places=4)

    def test_paper_ucl_value_is_the_reweighted_limit(self):
        # [HN §5] prints 0.3935 = log(1 + p e^{-3/2} + (1 - p)): the expectation inside the
        # log, i.e. the k -> inf limit, which is above the exact k = 256 bound (Jensen).
        p = 2 / 3
        inside_log = math.log(1 + p * math.exp(-1.5) + (1 - p))
        self.assertAlmostEqual(inside_log, geometry.ucl_reweighted_limit(3), places=12)
        self.assertAlmostEqual(inside_log, 0.3935, places=4)
        self.assertGreater(inside_log - geometry.ucl_lower_bound(3, 256), 1e-4)

    @parameterized.parameters(*_PSI_CASES)
    def test_scl_bound_is_psi_at_minus_c_over_c_minus_1(self, psi, alpha):
        for c in (2, 3, 10):
            for k in (1, 7, 256):
                t = [-c / (c - 1)] * k
                bound = geometry.scl_lower_bound(c, k, psi, alpha)
                self.assertAlmostEqual(bound, _psi_direct(t, psi, alpha), places=12)

    @parameterized.parameters(*_PSI_CASES)
    def test_ucl_bound_k1(self, psi, alpha):
        for c in (2, 3, 10):
            a = -c / (c - 1)
            direct = _psi_direct([0.0], psi, alpha) / c + (c - 1) / c * _psi_direct([a], psi, alpha)
            self.assertAlmostEqual(geometry.ucl_lower_bound(c, 1, psi, alpha), direct, places=12)

    @parameterized.parameters(*_PSI_CASES)
    def test_ucl_bound_matches_exact_enumeration(self, psi, alpha):
        k = 6
        for c in (2, 3, 10):
            p, a = (c - 1) / c, -c / (c - 1)
            expected = sum(
                math.comb(k, b)
                * p**b
                * (1 - p) ** (k - b)
                * _psi_direct([a] * b + [0.0] * (k - b), psi, alpha)
                for b in range(k + 1)
            )
            self.assertAlmostEqual(geometry.ucl_lower_bound(c, k, psi, alpha), expected, places=12)

    @parameterized.parameters(1.0, 2.0)
    def test_ucl_triplet_is_linear_in_b(self, alpha):
        # The mean-form triplet loss is linear in the counts, so E_B is exact at E[B] = kp.
        c, k = 3, 1000
        p, a = (c - 1) / c, -c / (c - 1)
        expected = p * max(a + alpha, 0.0) + (1 - p) * max(alpha, 0.0)
        self.assertAlmostEqual(geometry.ucl_lower_bound(c, k, "triplet", alpha), expected, places=9)

    @parameterized.parameters(2, 3, 100)
    def test_ucl_bound_increases_to_reweighted_limit(self, num_classes):
        limit = geometry.ucl_reweighted_limit(num_classes)
        values = [geometry.ucl_lower_bound(num_classes, k) for k in (1, 2, 8, 64, 1024, 100_000)]
        self.assertTrue(all(a < b for a, b in zip(values, values[1:], strict=False)), values)
        self.assertLess(values[-1], limit)
        self.assertLess(limit - values[-1], 1e-5)

    def test_ucl_above_scl(self):
        # Same-class negatives (t = 0) make the unsupervised minimum larger.
        for c in (2, 3, 100):
            self.assertGreater(geometry.ucl_lower_bound(c, 64), geometry.scl_lower_bound(c, 64))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "psi='hinge'.*infonce"):
            geometry.scl_lower_bound(3, 8, psi="hinge")
        with self.assertRaisesRegex(ValueError, "k=0"):
            geometry.ucl_lower_bound(3, 0)
        with self.assertRaisesRegex(ValueError, "num_classes=1"):
            geometry.ucl_lower_bound(1, 8)
        with self.assertRaisesRegex(ValueError, "alpha=0.0"):
            geometry.ucl_lower_bound(3, 8, psi="infonce_sum", alpha=0.0)
        with self.assertRaisesRegex(ValueError, "num_classes=1"):
            geometry.ucl_reweighted_limit(1)


# ----------------------------------------------------------------------------------------
# CLOP learning-rate bound and the gradient-descent experiment [CLOP §3.1, App. D]


def _random_unit_columns(seed, m, k):
    x = jax.random.normal(jax.random.key(seed), (m, k))
    return x / jnp.linalg.norm(x, axis=0, keepdims=True)


def _collapse_threshold(k):
    """Linear-stability threshold of the CLOP GD map: |1 - lr| = 1 + lr / (k - 1)."""
    return 2 * (k - 1) / (k - 2)


def _printed_sq_norm(eta, k):
    """[CLOP App. D]'s simplification of E‖x_i⁽¹⁾‖² (the expression Thm 1 solves)."""
    return 1 + eta / (k - 1) - 2 * eta / k - 2 * eta**2 / (k * (k - 1)) + eta**2 * k / (k - 1) ** 2


class ClopTest(chex.TestCase):
    def test_lr_bound_values(self):
        self.assertEqual(geometry.clop_lr_bound(2), 2.0)
        self.assertAlmostEqual(geometry.clop_lr_bound(10_000), 2.0, places=3)
        self.assertTrue(all(geometry.clop_lr_bound(k) > 2.0 for k in (3, 10, 30, 1000)))
        with self.assertRaisesRegex(ValueError, "k=1"):
            geometry.clop_lr_bound(1)

    def test_lr_bound_satisfies_eq2(self):
        # [CLOP eq. 2], ε = 0: (1 - η)² <= B(η)². The printed closed form is not the root of
        # eq. 2 (its denominator should read k³ - 3k² + 3k - 2; see the docstring): it
        # satisfies eq. 2 strictly and lies below the exact root, so it is a safe bound.
        for k in (3, 10, 30, 1000):
            eta = geometry.clop_lr_bound(k)

            def gap(e, k=k):
                b2 = 1 + e / (k - 1) - 2 * e / k
                b2 += -2 * e**2 / (k * (k - 1)) + e**2 * k / (k - 1) ** 2
                return (1 - e) ** 2 - b2

            root = (2 + 1 / (k - 1) - 2 / k) / (1 + 2 / (k * (k - 1)) - k / (k - 1) ** 2)
            self.assertAlmostEqual(gap(root), 0.0, places=10)
            self.assertLess(gap(eta), 0.0)
            self.assertLess(eta, root)

    def test_expected_norm_after_one_step_is_one_plus_eta2_over_k_minus_1(self):
        # [CLOP App. D] eq. 5 for k independent uniform unit vectors: the expectation is
        # 1 + η²/(k-1), not the printed simplification. Monte Carlo over 20,000 draws,
        # compared within 5 standard errors of the sample mean.
        k, m, eta, n = 5, 7, 1.5, 20_000
        x = jax.random.normal(jax.random.key(0), (n, m, k), dtype=jnp.float32)
        x = np.asarray(x / jnp.linalg.norm(x, axis=1, keepdims=True), dtype=np.float64)
        mu = x.mean(axis=2, keepdims=True)
        x1 = (1 + eta / (k - 1)) * x - eta * k / (k - 1) * mu
        sq = (x1[:, :, 0] ** 2).sum(axis=1)
        se = sq.std() / np.sqrt(n)
        exact = 1 + eta**2 / (k - 1)
        self.assertLess(abs(sq.mean() - exact), 5 * se)
        self.assertGreater(abs(_printed_sq_norm(eta, k) - exact), 50 * se)

    def test_corrected_bound_solves_the_theorem_condition(self):
        # (1 - η)² = 1 + η²/(k-1) at η = 2(k-1)/(k-2), the corrected bound, and that is
        # the collapse threshold of the GD map; the printed bound lies below it.
        self.assertEqual(geometry.clop_lr_bound_corrected(3), 4.0)
        self.assertAlmostEqual(geometry.clop_lr_bound_corrected(30), 2.0714, places=4)
        self.assertEqual(geometry.clop_lr_bound_corrected(2), float("inf"))
        with self.assertRaisesRegex(ValueError, "k=1"):
            geometry.clop_lr_bound_corrected(1)
        for k in (3, 10, 30, 1000):
            eta = geometry.clop_lr_bound_corrected(k)
            self.assertAlmostEqual((1 - eta) ** 2, 1 + eta**2 / (k - 1), places=10)
            self.assertAlmostEqual(eta, _collapse_threshold(k), places=12)
            self.assertLess(geometry.clop_lr_bound(k), eta)

    @chex.variants(with_jit=True, without_jit=True)
    def test_one_step_matches_update_rule(self):
        x = _random_unit_columns(3, 5, 4)
        lr = 0.7
        got = self.variant(geometry.clop_gradient_descent)(x, lr, 1)
        xn = np.asarray(x, dtype=np.float64)
        expected = np.empty_like(xn)
        for i in range(4):
            others = sum(xn[:, j] for j in range(4) if j != i)
            step = xn[:, i] - lr / 3 * others
            expected[:, i] = step / np.linalg.norm(step)
        np.testing.assert_allclose(got, expected, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_simplex_etf_is_a_fixed_point(self):
        x = geometry.simplex_etf(6).T  # (5, 6): six unit columns summing to zero
        got = self.variant(geometry.clop_gradient_descent)(x, 3.0, 20)
        np.testing.assert_allclose(got, x, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_paper_experiment_lr_2_0_vs_2_1(self):
        # [CLOP §3.1, Fig. 3]: k = 30 unit vectors in R^100; lr = 2.0 does not collapse,
        # lr = 2.1 collapses completely. Observed: at lr = 2.0 the vectors converge to a
        # zero-sum configuration, so exactly the last singular value vanishes (rank k - 1,
        # the "dimensional collapse" the paper notes); at lr = 2.1 they all become equal
        # (rank 1). 500 steps put both limits 2-3 orders of magnitude past tol = 1e-3.
        k = 30
        x = _random_unit_columns(0, 100, k)
        descend = self.variant(geometry.clop_gradient_descent, static_argnames="steps")

        ok = descend(x, 2.0, steps=500)
        s = jnp.linalg.svd(ok, compute_uv=False)
        self.assertEqual(int(geometry.effective_rank(ok)), k - 1)
        self.assertGreater(float(s[k - 2] / s[0]), 0.1)  # the other k - 1 are well spread
        self.assertLess(float(jnp.linalg.norm(ok.sum(axis=1))), 1e-3)
        np.testing.assert_allclose(jnp.linalg.norm(ok, axis=0), 1.0, atol=1e-5)

        collapsed = descend(x, 2.1, steps=500)
        self.assertEqual(int(geometry.effective_rank(collapsed)), 1)
        self.assertAlmostEqual(float(jnp.linalg.norm(collapsed.sum(axis=1))), k, places=3)
        np.testing.assert_allclose(collapsed, jnp.tile(collapsed[:, :1], (1, k)), atol=1e-4)

    @parameterized.parameters(10, 30)
    def test_collapse_threshold_is_above_the_bound(self, k):
        # The observed threshold is the corrected bound 2(k-1)/(k-2) (2.25 for k = 10,
        # 2.0714 for k = 30), not Thm 1's printed 2.0976 / 2.0333: the corrected bound is
        # tight, the printed one safe but loose. Check both sides.
        threshold = geometry.clop_lr_bound_corrected(k)
        below, above = threshold - 0.03, threshold + 0.03
        self.assertLess(geometry.clop_lr_bound(k), below)
        descend = jax.jit(geometry.clop_gradient_descent, static_argnames="steps")
        for seed in (0, 1):
            x = _random_unit_columns(seed, 2 * k, k)
            self.assertEqual(int(geometry.effective_rank(descend(x, below, steps=2000))), k - 1)
            self.assertEqual(int(geometry.effective_rank(descend(x, above, steps=2000))), 1)


if __name__ == "__main__":
    absltest.main()
