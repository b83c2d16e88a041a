"""Tests of hncl_jax.hardening: ψ_k, log h, the tilted distribution and its samplers.

Values are checked against float64 NumPy formulas written from docs/math.md §2 and §5; the
samplers against `tilted_probs` with a chi-square test on many draws (fixed keys, so
the tests are deterministic).
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from scipy import stats

from hncl_jax import hardening

# A 5 x 6 anchor-candidate problem: row 0 has no candidate, row 1 two candidates, the
# rest five; similarities in [-1, 1] as for unit-ball embeddings.
SIMS = np.random.default_rng(0).uniform(-1.0, 1.0, size=(5, 6)).astype(np.float32)
MASK = np.ones((5, 6), bool)
MASK[0] = False
MASK[1] = [True, False, False, True, False, False]
MASK[2:, 2] = False


def _np_tilted(sims, mask, kind, beta=0.0, epsilon=1.0):
    """q_i(m) ∝ h(s_im) 1[m candidate], float64; h = 0 everywhere -> uniform candidates."""
    sims = np.asarray(sims, np.float64)
    if kind == "exponential":
        h = np.exp(beta * (sims - sims.max(axis=1, keepdims=True)))
    elif kind == "polynomial":
        h = np.maximum(sims + 1.0, 0.0) ** epsilon
    else:
        h = np.ones_like(sims)
    h = np.where(mask, h, 0.0)
    h = np.where((h.sum(1, keepdims=True) == 0) & mask.any(1, keepdims=True), mask, h)
    h = np.where(mask.any(1, keepdims=True), h, 1.0)
    return h / h.sum(1, keepdims=True)


def _chi2_pvalue(idx, probs):
    """Pearson chi-square p-value of the draws idx (n,) against probs (M,)."""
    counts = np.bincount(np.asarray(idx).ravel(), minlength=len(probs))
    support = probs > 0
    assert counts[~support].sum() == 0, "a zero-probability column was drawn"
    expected = probs[support] * counts.sum()
    return stats.chisquare(counts[support], expected).pvalue


class PsiTest(chex.TestCase):
    T = np.array([[-1.5, 0.3, -0.2], [0.0, -2.0, 1.0]], np.float32)

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_definition(self):
        alpha = 0.7

        def all_psis(t):
            return [hardening.psi(t, name, alpha) for name in hardening.PSIS]

        got = dict(zip(hardening.PSIS, self.variant(all_psis)(self.T), strict=True))
        t = self.T.astype(np.float64)
        want = {
            "infonce": np.log1p(np.mean(np.exp(t), axis=-1)),
            "infonce_sum": np.log(alpha + np.sum(np.exp(t), axis=-1)),
            "triplet": np.mean(np.maximum(t + alpha, 0.0), axis=-1),
        }
        for name in hardening.PSIS:
            chex.assert_shape(got[name], (2,))
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)

    @chex.variants(with_jit=True, without_jit=True)
    def test_no_overflow(self):
        t = jnp.array([[500.0, -500.0], [-1e4, -1e4]])

        def values_and_grads(t):
            return [
                jax.value_and_grad(lambda t, n=name: jnp.sum(hardening.psi(t, n)))(t)
                for name in hardening.PSIS
            ]

        out = self.variant(values_and_grads)(t)
        # Large arguments: ψ ≈ max t − log k (InfoNCE mean form) / max t (sum form).
        want0 = {"infonce": 500.0 - math.log(2), "infonce_sum": 500.0, "triplet": 250.5}
        for name, (value, grad) in zip(hardening.PSIS, out, strict=True):
            self.assertTrue(bool(jnp.isfinite(value)), name)
            self.assertTrue(bool(jnp.all(jnp.isfinite(grad))), name)
            np.testing.assert_allclose(hardening.psi(t, name)[0], want0[name], rtol=1e-6)

    def test_monotone_and_convex_along_a_line(self):
        # Definition 1: argument-wise non-decreasing and convex.
        for name in hardening.PSIS:
            ts = jnp.linspace(-3.0, 3.0, 61)[:, None] * jnp.array([1.0, 0.5, 0.0])
            v = np.asarray(hardening.psi(ts + 0.1, name))
            self.assertTrue(np.all(np.diff(v) >= -1e-6), name)
            self.assertTrue(np.all(np.diff(v, 2) >= -1e-5), name)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, r"psi.*infonce.*infonce_sum.*triplet"):
            hardening.psi(self.T, "nce")
        with self.assertRaisesRegex(ValueError, "alpha"):
            hardening.psi(self.T, "infonce_sum", alpha=0.0)
        with self.assertRaisesRegex(ValueError, "alpha"):
            hardening.psi(self.T, "triplet", alpha=-1.0)
        with self.assertRaisesRegex(ValueError, r"t must have shape"):
            hardening.psi(1.0)


class LogHardeningTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_values(self):
        t = jnp.array([-2.0, -1.0, -0.5, 0.0, 0.7])
        none = self.variant(functools.partial(hardening.log_hardening, name="none"))(t)
        np.testing.assert_array_equal(none, np.zeros(5))
        expo = self.variant(
            functools.partial(hardening.log_hardening, name="exponential", beta=3.0)
        )(t)
        np.testing.assert_allclose(expo, 3.0 * np.asarray(t), rtol=1e-6)
        poly = self.variant(
            functools.partial(hardening.log_hardening, name="polynomial", epsilon=2.5)
        )(t)
        self.assertTrue(bool(jnp.all(poly[:2] == -jnp.inf)))  # h = 0 at t <= -1
        np.testing.assert_allclose(poly[2:], 2.5 * np.log(np.array([0.5, 1.0, 1.7])), rtol=1e-6)

    def test_polynomial_gradient_finite_where_h_is_zero(self):
        grad = jax.grad(
            lambda t: jnp.sum(
                jnp.where(t > -1, hardening.log_hardening(t, "polynomial", epsilon=3.0), 0.0)
            )
        )(jnp.array([-3.0, -1.0, 0.0]))
        np.testing.assert_allclose(grad, [0.0, 0.0, 3.0])

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, r"hardening.*none.*exponential.*polynomial"):
            hardening.log_hardening(jnp.zeros(2), "cubic")
        with self.assertRaisesRegex(ValueError, "beta"):
            hardening.log_hardening(jnp.zeros(2), "exponential", beta=-1.0)
        with self.assertRaisesRegex(ValueError, "epsilon"):
            hardening.log_hardening(jnp.zeros(2), "polynomial", epsilon=0.0)
        with self.assertRaisesRegex(ValueError, "beta"):
            hardening.log_hardening(jnp.zeros(2), "exponential", beta=float("nan"))


class TiltedProbsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy(self):
        cases = (
            ("none", 0.0, 1.0),
            ("exponential", 2.0, 1.0),
            ("exponential", 1000.0, 1.0),
            ("polynomial", 0.0, 3.0),
        )

        def all_cases(sims, mask):
            return [
                hardening.tilted_probs(sims, mask, hardening=kind, beta=beta, epsilon=epsilon)
                for kind, beta, epsilon in cases
            ]

        for q, case in zip(self.variant(all_cases)(SIMS, MASK), cases, strict=True):
            np.testing.assert_allclose(q, _np_tilted(SIMS, MASK, *case), atol=1e-6, err_msg=case)
            np.testing.assert_allclose(jnp.sum(q, axis=1), 1.0, rtol=1e-6)
            self.assertTrue(bool(jnp.all(jnp.where(MASK[1:], True, q[1:] == 0))))

    def test_fallback_when_all_h_zero(self):
        sims = jnp.array([[-1.0, -1.2, 0.5], [0.2, 0.3, -1.0]])
        mask = jnp.array([[True, True, False], [True, True, True]])
        log_q, fallback = hardening.tilted_log_probs(
            sims, mask, hardening="polynomial", epsilon=2.0
        )
        np.testing.assert_array_equal(fallback, [True, False])
        np.testing.assert_allclose(jnp.exp(log_q[0]), [0.5, 0.5, 0.0])
        np.testing.assert_allclose(jnp.exp(log_q[1]), _np_tilted(sims, mask, "polynomial", 0, 2)[1])

    def test_no_gradient(self):
        grad = jax.grad(
            lambda s: jnp.sum(hardening.tilted_probs(s, MASK, beta=3.0) * jnp.arange(6.0))
        )(jnp.asarray(SIMS))
        np.testing.assert_array_equal(grad, np.zeros_like(SIMS))

    def test_shape_errors(self):
        with self.assertRaisesRegex(ValueError, "candidate_mask"):
            hardening.tilted_probs(SIMS, MASK[:, :3])
        with self.assertRaisesRegex(ValueError, "sims"):
            hardening.tilted_probs(SIMS[0], MASK[0])


class SampleNegativesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*hardening.SAMPLERS)
    def test_frequencies_match_tilted_probs(self, method):
        cases = (("none", 0.0, 1.0), ("exponential", 3.0, 1.0), ("polynomial", 0.0, 4.0))
        draws = 20_000

        def all_cases(key, sims, mask):
            return [
                hardening.sample_negatives(
                    key,
                    sims,
                    mask,
                    draws,
                    hardening=kind,
                    beta=beta,
                    epsilon=epsilon,
                    method=method,
                )  # fmt: skip
                for kind, beta, epsilon in cases
            ]

        out = self.variant(all_cases)(jax.random.key(1), SIMS, MASK)
        for (idx, num_fallback), case in zip(out, cases, strict=True):
            chex.assert_shape(idx, (5, draws))
            self.assertEqual(int(num_fallback), 0)
            q = _np_tilted(SIMS, MASK, *case)
            for row in range(1, 5):
                # Fixed key: deterministic; a correct sampler fails with probability 1e-4.
                self.assertGreater(_chi2_pvalue(idx[row], q[row]), 1e-4, (method, case, row))

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*hardening.SAMPLERS)
    def test_fallback_counted_and_uniform(self, method):
        # Polynomial h vanishes at s <= -1: rows 0 and 1 have no candidate with h > 0.
        sims = jnp.array(
            [[-1.0, -1.5, 0.9, -1.0], [-1.0, -1.0, -1.0, -1.0], [-1.0, 0.5, 0.0, -2.0]]
        )
        mask = jnp.array([[1, 1, 0, 1], [1, 1, 1, 1], [1, 1, 1, 1]], bool)
        fn = functools.partial(
            hardening.sample_negatives, k=6000, hardening="polynomial", epsilon=2.0, method=method
        )
        idx, num_fallback = self.variant(fn)(jax.random.key(2), sims, mask)
        self.assertEqual(int(num_fallback), 2)
        self.assertGreater(_chi2_pvalue(idx[0], np.array([1, 1, 0, 1]) / 3), 1e-4)
        self.assertGreater(_chi2_pvalue(idx[1], np.full(4, 0.25)), 1e-4)
        self.assertGreater(
            _chi2_pvalue(idx[2], _np_tilted(sims, mask, "polynomial", 0, 2)[2]), 1e-4
        )

    def test_num_tuples_shape_and_independence(self):
        idx, _ = hardening.sample_negatives(
            jax.random.key(3), SIMS, MASK, 4, beta=1.0, num_tuples=2500
        )
        chex.assert_shape(idx, (5, 2500, 4))
        q = _np_tilted(SIMS, MASK, "exponential", 1.0)
        self.assertGreater(_chi2_pvalue(idx[3], q[3]), 1e-4)
        # Independent tuples: the pair (first, second) draw has the product distribution.
        pairs = np.asarray(idx[3, :, 0] * 6 + idx[3, :, 1])
        self.assertGreater(_chi2_pvalue(pairs, np.outer(q[3], q[3]).ravel()), 1e-4)

    def test_beta_zero_is_the_reference_draw(self):
        a, _ = hardening.sample_negatives(jax.random.key(4), SIMS, MASK, 16, hardening="none")
        b, _ = hardening.sample_negatives(jax.random.key(4), SIMS, MASK, 16, beta=0.0)
        np.testing.assert_array_equal(a, b)

    def test_one_trace_under_jit(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def draw(key, sims):
            return hardening.sample_negatives(key, sims, MASK, 8, beta=5.0)

        for seed in range(3):
            draw(jax.random.key(seed), SIMS + seed)

    def test_bad_arguments(self):
        key = jax.random.key(0)
        with self.assertRaisesRegex(ValueError, "k=0"):
            hardening.sample_negatives(key, SIMS, MASK, 0)
        with self.assertRaisesRegex(ValueError, "k=2.5"):
            hardening.sample_negatives(key, SIMS, MASK, 2.5)
        with self.assertRaisesRegex(ValueError, "method"):
            hardening.sample_negatives(key, SIMS, MASK, 2, method="alias")
        with self.assertRaisesRegex(ValueError, "beta"):
            hardening.sample_negatives(key, SIMS, MASK, 2, beta=-0.5)
        with self.assertRaisesRegex(ValueError, "candidate_mask"):
            hardening.sample_negatives(key, SIMS, MASK.T, 2)


class SIRTest(chex.TestCase):
    def test_separable_non_separable_and_fallback(self):
        beta = 2.0

        def separable(t):  # log η = β Σ t: the SIR marginal tends to q (bias O(1/R))
            return beta * jnp.sum(t, axis=-1)

        def indicator(t):  # log of η = 1[max_m t_m > 0.5]: not a product over m
            return jnp.where(jnp.max(t, axis=-1) > 0.5, 0.0, -jnp.inf)

        def zero(t):  # η = 0 everywhere
            return jnp.full(t.shape[:-1], -jnp.inf)

        @jax.jit
        def draw(key, sims, mask):
            k1, k2, k3 = jax.random.split(key, 3)
            return (
                hardening.sir_sample(k1, sims, mask, 2, separable, 128, num_tuples=2000),
                hardening.sir_sample(k2, sims, mask, 2, indicator, 64, num_tuples=200),
                hardening.sir_sample(k3, sims, mask, 2, zero, 8, num_tuples=5),
            )

        (idx_s, fallback_s), (idx, fallback), (idx0, fallback0) = draw(
            jax.random.key(5), SIMS, MASK
        )
        chex.assert_shape(idx_s, (5, 2000, 2))
        self.assertEqual(int(fallback_s), 0)
        q = _np_tilted(SIMS, MASK, "exponential", beta)
        for row in range(1, 5):
            freq = np.bincount(np.asarray(idx_s[row]).ravel(), minlength=6) / idx_s[row].size
            np.testing.assert_allclose(freq, q[row], atol=0.02)
        # Every kept pair of a row that has a candidate above 0.5 contains one.
        kept = np.take_along_axis(SIMS, np.asarray(idx).reshape(5, -1), 1).reshape(5, 200, 2)
        hard_rows = [r for r in range(1, 5) if np.any(SIMS[r][MASK[r]] > 0.5)]
        self.assertNotEmpty(hard_rows)
        for row in hard_rows:
            self.assertTrue(np.all(kept[row].max(-1) > 0.5), row)
        # Rows with candidates but none above 0.5 have η = 0 on every proposal.
        self.assertEqual(int(fallback), 200 * (4 - len(hard_rows)))
        # η = 0 everywhere: every tuple of rows 1-4 falls back, still to candidates only.
        self.assertEqual(int(fallback0), 4 * 5)
        rows = np.arange(1, 5)[:, None]
        self.assertTrue(np.all(MASK[rows, np.asarray(idx0[1:]).reshape(4, -1)]))

    def test_bad_eta(self):
        with self.assertRaisesRegex(ValueError, "eta_fn"):
            hardening.sir_sample(jax.random.key(0), SIMS, MASK, 2, lambda t: t, 4)
        with self.assertRaisesRegex(ValueError, "eta_fn"):
            hardening.sir_sample(jax.random.key(0), SIMS, MASK, 2, "exp", 4)
        with self.assertRaisesRegex(ValueError, "num_proposals"):
            hardening.sir_sample(jax.random.key(0), SIMS, MASK, 2, jnp.sum, 0)
