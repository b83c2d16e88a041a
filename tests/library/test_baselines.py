"""Tests of hncl_jax.baselines against loop transcriptions of the papers' formulas.

Each contrastive loss is checked against a slow float64 NumPy loop written directly from
its paper's formula, against identities between the losses (derived in the docstrings
of the tests), and against optax / the authors' reference code where conventions match.
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import parameterized
from jax.test_util import check_grads

from hncl_jax import baselines

B, D = 4, 6  # examples per view, embedding dim: N = 2B = 8 rows in the views layout.
VIEW_IDS = np.concatenate([np.arange(B), np.arange(B)]).astype(np.int32)
# Unbalanced supervised labels: class 0 has 3 rows, class 1 has 4, class 2 a single row
# (an anchor with no positive, dropped from the mean).
LABELS = np.array([0, 1, 0, 1, 1, 2, 0, 1], np.int32)


def _random(seed, shape=(2 * B, D)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---- float64 loop transcriptions of the papers' formulas ---------------------------------


def _np_cos(z):
    z = np.asarray(z, np.float64)
    s = np.zeros((len(z), len(z)))
    for i in range(len(z)):
        for j in range(len(z)):
            ni, nj = np.linalg.norm(z[i]), np.linalg.norm(z[j])
            s[i, j] = 0.0 if ni == 0 or nj == 0 else z[i] @ z[j] / (ni * nj)
    return s


def _positives(ids, i):
    return [p for p in range(len(ids)) if p != i and ids[p] == ids[i]]


def _np_supcon(z, ids, tau):
    """SimCLR eq. (1) / SupCon L_out eq. (2): all k != i in the denominator."""
    s, losses = _np_cos(z) / tau, []
    for i in range(len(ids)):
        pos = _positives(ids, i)
        if pos:
            denom = sum(math.exp(s[i, k]) for k in range(len(ids)) if k != i)
            losses.append(np.mean([-math.log(math.exp(s[i, p]) / denom) for p in pos]))
    return float(np.mean(losses)) if losses else 0.0


def _np_sincere(z, ids, tau):
    """SINCERE: the positive plus the rows of other classes in the denominator."""
    s, losses = _np_cos(z) / tau, []
    for i in range(len(ids)):
        pos = _positives(ids, i)
        if pos:
            neg = sum(math.exp(s[i, n]) for n in range(len(ids)) if ids[n] != ids[i])
            terms = [-math.log(math.exp(s[i, p]) / (math.exp(s[i, p]) + neg)) for p in pos]
            losses.append(np.mean(terms))
    return float(np.mean(losses))


def _np_dcl(z, ids, tau, sigma=None):
    """DCL: -s_ip/tau + log sum over negatives; DCLW multiplies the positive term by w_ip."""
    cos, n = _np_cos(z), len(ids)
    pairs = [(i, p) for i in range(n) for p in _positives(ids, i)]
    mean_vmf = np.mean([math.exp(cos[i, p] / sigma) for i, p in pairs]) if sigma else None
    losses = []
    for i in range(n):
        pos = _positives(ids, i)
        neg = [k for k in range(n) if ids[k] != ids[i]]
        if not pos or not neg:
            continue
        log_neg = math.log(sum(math.exp(cos[i, k] / tau) for k in neg))
        terms = []
        for p in pos:
            w = 2.0 - math.exp(cos[i, p] / sigma) / mean_vmf if sigma else 1.0
            terms.append(-w * cos[i, p] / tau + log_neg)
        losses.append(np.mean(terms))
    return float(np.mean(losses))


def _np_dcl_reference(z, tau, sigma=None):
    """The authors' one-way DCL(z1, z2) on normalized views, symmetrized (numpy port)."""
    z = np.asarray(z, np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    z1, z2 = z[:B], z[B:]

    def one_way(a, b):
        cross = a @ b.T
        positive = -np.diag(cross) / tau
        if sigma is not None:
            e = np.exp(np.diag(cross) / sigma)
            positive = positive * (2.0 - len(a) * e / e.sum())
        neg = np.concatenate([a @ a.T, cross], axis=1) / tau
        neg = neg + np.tile(np.eye(len(a)), (1, 2)) * np.log(1e-45)
        m = neg.max(axis=1, keepdims=True)
        lse = np.log(np.exp(neg - m).sum(axis=1)) + m[:, 0]
        return np.mean(positive + lse)

    return 0.5 * (one_way(z1, z2) + one_way(z2, z1))


def _np_vicreg(z1, z2, lam, mu, nu):
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    b, d = z1.shape
    invariance = sum((z1[i, j] - z2[i, j]) ** 2 for i in range(b) for j in range(d)) / (b * d)

    def var_cov(x):
        mean = [sum(x[i, j] for i in range(b)) / b for j in range(d)]
        cov = [
            [
                sum((x[i, j] - mean[j]) * (x[i, k] - mean[k]) for i in range(b)) / (b - 1)
                for k in range(d)
            ]
            for j in range(d)
        ]
        v = sum(max(0.0, 1.0 - math.sqrt(cov[j][j] + 1e-4)) for j in range(d)) / d
        c = sum(cov[j][k] ** 2 for j in range(d) for k in range(d) if j != k) / d
        return v, c

    (v1, c1), (v2, c2) = var_cov(z1), var_cov(z2)
    return lam * invariance + mu * (v1 + v2) / 2 + nu * (c1 + c2)


def _np_barlow(z1, z2, lam):
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    b, d = z1.shape

    def standardize(x):
        out = np.zeros_like(x)
        for j in range(d):
            mean = sum(x[:, j]) / b
            var = sum((x[i, j] - mean) ** 2 for i in range(b)) / b
            out[:, j] = (x[:, j] - mean) / math.sqrt(var + 1e-5)
        return out

    a, c_ = standardize(z1), standardize(z2)
    c = [[sum(a[i, j] * c_[i, k] for i in range(b)) / b for k in range(d)] for j in range(d)]
    on = sum((1 - c[j][j]) ** 2 for j in range(d))
    off = sum(c[j][k] ** 2 for j in range(d) for k in range(d) if j != k)
    return on + lam * off


def _np_clop(z, labels, protos, weight):
    terms = []
    for i, y in enumerate(labels):
        if y >= 0:
            zi, c = np.asarray(z[i], np.float64), np.asarray(protos[y], np.float64)
            terms.append(1.0 - zi @ c / (np.linalg.norm(zi) * np.linalg.norm(c)))
    return weight * float(np.mean(terms)) if terms else 0.0


# ---- tests -------------------------------------------------------------------------------


class ContrastiveLossesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.1, 0.5, 1.0)
    def test_nt_xent_matches_loop(self, temperature):
        z = _random(0)
        got = self.variant(baselines.nt_xent)(z, VIEW_IDS, temperature)
        np.testing.assert_allclose(got, _np_supcon(z, VIEW_IDS, temperature), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_nt_xent_three_views_matches_loop(self):
        ids = np.tile(np.arange(3), 3).astype(np.int32)  # 3 views of 3 examples
        z = _random(1, (9, D))
        got = self.variant(baselines.nt_xent)(z, ids, 0.5)
        np.testing.assert_allclose(got, _np_supcon(z, ids, 0.5), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_nt_xent_equals_supcon_in_views_layout(self):
        # One positive per anchor: SupCon L_out's mean over positives is a single term and
        # both denominators are all k != i, so the losses coincide at equal temperature.
        z = _random(2)
        nt = self.variant(baselines.nt_xent)(z, VIEW_IDS, 0.2)
        sc = self.variant(baselines.supcon)(z, VIEW_IDS, 0.2)
        np.testing.assert_allclose(nt, sc, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_nt_xent_matches_optax_in_views_layout(self):
        # optax.losses.ntxent(embeddings, labels, temperature) puts, for each positive pair,
        # that positive plus the other-label rows in the denominator and averages over all
        # positive pairs. With exactly one positive per anchor this is NT-Xent.
        z = _random(3)
        got = self.variant(baselines.nt_xent)(z, VIEW_IDS, 0.5)
        want = optax.losses.ntxent(jnp.asarray(z), jnp.asarray(VIEW_IDS), 0.5)
        np.testing.assert_allclose(got, want, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sincere_matches_optax_for_balanced_classes(self):
        # optax's pair terms are SINCERE's; it averages over all pairs, SINCERE over
        # positives then anchors. With equal class sizes every anchor has the same number
        # of positives and the two averages agree. (With LABELS they differ: see below.)
        labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2], np.int32)
        z = _random(4, (9, D))
        got = self.variant(baselines.sincere)(z, labels, 0.3)
        want = optax.losses.ntxent(jnp.asarray(z), jnp.asarray(labels), 0.3)
        np.testing.assert_allclose(got, want, rtol=1e-5)
        unbalanced = optax.losses.ntxent(jnp.asarray(_random(5)), jnp.asarray(LABELS), 0.3)
        self.assertGreater(abs(baselines.sincere(_random(5), LABELS, 0.3) - unbalanced), 1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.1, 0.5)
    def test_supcon_matches_loop(self, temperature):
        z = _random(6)
        got = self.variant(baselines.supcon)(z, LABELS, temperature)
        np.testing.assert_allclose(got, _np_supcon(z, LABELS, temperature), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.1, 0.5)
    def test_sincere_matches_loop(self, temperature):
        z = _random(7)
        got = self.variant(baselines.sincere)(z, LABELS, temperature)
        np.testing.assert_allclose(got, _np_sincere(z, LABELS, temperature), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sincere_bounded_by_supcon(self):
        # SINCERE's denominator {p} ∪ N(i) is a subset of SupCon's {k != i}, so each pair term
        # is smaller: strictly when an anchor has a second positive, equal with one positive.
        sincere, supcon = self.variant(baselines.sincere), self.variant(baselines.supcon)
        for seed in range(3):
            z = _random(10 + seed)
            self.assertLess(sincere(z, LABELS, 0.1), supcon(z, LABELS, 0.1))
            np.testing.assert_allclose(
                sincere(z, VIEW_IDS, 0.1), supcon(z, VIEW_IDS, 0.1), rtol=1e-5
            )

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.1, 0.5)
    def test_dcl_matches_loop_and_reference_code(self, temperature):
        z = _random(20)
        got = self.variant(baselines.dcl)(z, VIEW_IDS, temperature)
        np.testing.assert_allclose(got, _np_dcl(z, VIEW_IDS, temperature), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, _np_dcl_reference(z, temperature), rtol=1e-5, atol=1e-5)
        labelled = self.variant(baselines.dcl)(z, LABELS, temperature)
        np.testing.assert_allclose(labelled, _np_dcl(z, LABELS, temperature), rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_dcl_is_nt_xent_without_the_positive_in_the_denominator(self):
        # NT-Xent_i = -l_p + log(e^{l_p} + Σ_n e^{l_n}) and DCL_i = -l_p + log Σ_n e^{l_n}, so
        # NT-Xent - DCL = mean_i log(1 + e^{l_p - LSE_n l_n}) = mean_i softplus(l_p - LSE_n).
        z, tau = _random(21), 0.5
        s = _np_cos(z) / tau
        gap = []
        for i in range(2 * B):
            p = (i + B) % (2 * B)
            lse = np.log(sum(np.exp(s[i, k]) for k in range(2 * B) if k not in (i, p)))
            gap.append(np.log1p(np.exp(s[i, p] - lse)))
        nt = self.variant(baselines.nt_xent)(z, VIEW_IDS, tau)
        dc = self.variant(baselines.dcl)(z, VIEW_IDS, tau)
        np.testing.assert_allclose(nt - dc, np.mean(gap), rtol=1e-4)
        self.assertGreater(nt, dc)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.2, 0.5)
    def test_dclw_matches_loop_and_reference_code(self, sigma):
        z = _random(22)
        fn = self.variant(functools.partial(baselines.dclw, temperature=0.5, sigma=sigma))
        np.testing.assert_allclose(
            fn(z, VIEW_IDS), _np_dcl(z, VIEW_IDS, 0.5, sigma), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            fn(z, VIEW_IDS), _np_dcl_reference(z, 0.5, sigma), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            fn(z, LABELS), _np_dcl(z, LABELS, 0.5, sigma), rtol=1e-5, atol=1e-5
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_dclw_tends_to_dcl_for_large_sigma(self):
        # w_ip = 2 - exp(s_ip/σ)/mean exp(s/σ) -> 1 as σ -> ∞.
        z = _random(23)
        dclw = self.variant(baselines.dclw)(z, VIEW_IDS, 0.5, 1e6)
        dcl = self.variant(baselines.dcl)(z, VIEW_IDS, 0.5)
        np.testing.assert_allclose(dclw, dcl, rtol=1e-5)

    def test_single_class_batch_is_finite(self):
        # No negatives anywhere: DCL drops every anchor (0), SINCERE's terms are log 1 = 0.
        z, ones = _random(24), np.zeros(2 * B, np.int32)
        self.assertEqual(float(baselines.dcl(z, ones)), 0.0)
        self.assertEqual(float(baselines.sincere(z, ones)), 0.0)
        grads = jax.grad(baselines.dclw)(jnp.asarray(z), ones)
        self.assertTrue(np.all(np.isfinite(grads)))


class NonContrastiveLossesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_vicreg_matches_loop(self):
        z1, z2 = _random(30, (B, D)), _random(31, (B, D))
        got = self.variant(baselines.vicreg)(z1, z2, 25.0, 25.0, 1.0)
        np.testing.assert_allclose(got, _np_vicreg(z1, z2, 25.0, 25.0, 1.0), rtol=1e-5)
        got = self.variant(baselines.vicreg)(3 * z1, z2, 2.0, 3.0, 5.0)
        np.testing.assert_allclose(got, _np_vicreg(3 * z1, z2, 2.0, 3.0, 5.0), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_vicreg_hand_values(self):
        vicreg = self.variant(baselines.vicreg)
        # Columns (1,-1,1,-1)a and (1,-1,-1,1)a: mean 0, orthogonal, unbiased variance 4a²/3.
        base = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], np.float32)
        # a = 2: std > 1, so identical views give invariance 0, variance hinge 0, covariance 0.
        np.testing.assert_allclose(vicreg(2 * base, 2 * base), 0.0, atol=1e-7)
        # a = 0.5: std = sqrt(1/3 + 1e-4) < 1 in both dims of both views.
        hinge = 1.0 - math.sqrt(1.0 / 3.0 + 1e-4)
        np.testing.assert_allclose(vicreg(0.5 * base, 0.5 * base), 25.0 * hinge, rtol=1e-6)
        # Collapsed views (all zero): std = sqrt(1e-4) = 0.01, variance term 25 * 0.99.
        zeros = np.zeros((4, 2), np.float32)
        np.testing.assert_allclose(vicreg(zeros, zeros), 25.0 * 0.99, rtol=1e-6)
        # Invariance alone: z2 = z1 + 1 shifts every entry by 1 -> MSE 1 (variances unchanged).
        got = vicreg(2 * base, 2 * base + 1.0)
        np.testing.assert_allclose(got, 25.0, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_barlow_twins_matches_loop(self):
        z1, z2 = _random(32, (B, D)), _random(33, (B, D))
        for lam in (5e-3, 0.7):
            got = self.variant(baselines.barlow_twins)(z1, z2, lam)
            np.testing.assert_allclose(got, _np_barlow(z1, z2, lam), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_barlow_twins_hand_values(self):
        barlow = self.variant(baselines.barlow_twins)
        # Standardized, decorrelated columns: C = I up to the 1e-5 BatchNorm epsilon.
        base = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], np.float32)
        np.testing.assert_allclose(barlow(base, 3 * base + 2), 0.0, atol=1e-8)
        # Anti-correlated views: C = -I, loss = Σ_i (1 - (-1))² = 4d.
        np.testing.assert_allclose(barlow(base, -base), 8.0, rtol=1e-4)
        # Swapped columns: C = [[0, 1], [1, 0]]: on-diagonal 2, off-diagonal λ·2.
        np.testing.assert_allclose(barlow(base, base[:, ::-1], 0.5), 2.0 + 0.5 * 2.0, rtol=1e-4)


class ClopTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters((3, 3), (4, 10))
    def test_orthonormal_prototypes(self, num_classes, dim):
        make = self.variant(
            functools.partial(baselines.orthonormal_prototypes, num_classes=num_classes, dim=dim)
        )
        p = make(jax.random.key(0))
        chex.assert_shape(p, (num_classes, dim))
        chex.assert_type(p, jnp.float32)
        np.testing.assert_allclose(p @ p.T, np.eye(num_classes), atol=1e-5)
        np.testing.assert_array_equal(p, make(jax.random.key(0)))
        self.assertGreater(float(jnp.max(jnp.abs(p - make(jax.random.key(1))))), 1e-2)

    def test_orthonormal_prototypes_needs_dim_at_least_classes(self):
        with self.assertRaisesRegex(ValueError, "embed_dim"):
            baselines.orthonormal_prototypes(jax.random.key(0), 10, 9)

    def test_simplex_prototypes(self):
        p = baselines.simplex_prototypes(4, 6)
        chex.assert_shape(p, (4, 6))
        gram = np.asarray(p @ p.T)
        np.testing.assert_allclose(np.diag(gram), 1.0, rtol=1e-6)
        off = gram[~np.eye(4, dtype=bool)]
        np.testing.assert_allclose(off, -1.0 / 3.0, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_clop_loss_matches_loop(self):
        protos = baselines.orthonormal_prototypes(jax.random.key(3), 3, D)
        z, labels = _random(40), np.array([0, 2, -1, 1, 1, -1, 0, 2], np.int32)
        got = self.variant(baselines.clop_loss)(z, labels, protos, 0.7)
        np.testing.assert_allclose(got, _np_clop(z, labels, protos, 0.7), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_clop_loss_properties(self):
        clop = self.variant(baselines.clop_loss)
        protos = baselines.orthonormal_prototypes(jax.random.key(4), 3, D)
        labels = np.array([0, 1, 2, -1, 2, -1], np.int32)
        at_protos = 2.5 * np.asarray(protos)[np.maximum(labels, 0)]  # cosine ignores scale
        z = _random(41, (6, D))
        at_protos[labels < 0] = z[labels < 0]
        np.testing.assert_allclose(clop(at_protos, labels, protos, 1.0), 0.0, atol=1e-6)
        # Orthonormal prototypes: sitting on another class's prototype costs exactly 1.
        wrong = np.asarray(protos)[(np.maximum(labels, 0) + 1) % 3]
        np.testing.assert_allclose(clop(wrong, labels, protos, 1.0), 1.0, rtol=1e-6)
        np.testing.assert_allclose(
            clop(z, labels, protos, 3.0), 3.0 * clop(z, labels, protos, 1.0), rtol=1e-6
        )
        moved = z.copy()
        moved[labels < 0] = _random(42, (2, D))  # unlabelled rows do not enter the loss
        np.testing.assert_allclose(clop(moved, labels, protos, 1.0), clop(z, labels, protos, 1.0))

    @chex.variants(with_jit=True, without_jit=True)
    def test_clop_loss_all_unlabelled(self):
        protos = baselines.orthonormal_prototypes(jax.random.key(5), 3, D)
        unlabelled = -np.ones(2 * B, np.int32)
        loss_and_grad = self.variant(jax.value_and_grad(baselines.clop_loss))
        loss, grad = loss_and_grad(jnp.asarray(_random(43)), unlabelled, protos, 1.0)
        self.assertEqual(float(loss), 0.0)
        np.testing.assert_array_equal(grad, 0.0)


class GradientsAndValidationTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*baselines.BASELINES)
    def test_finite_gradients_with_a_zero_row(self, name):
        z = _random(50)
        z[3] = 0.0
        fn = self.variant(functools.partial(baselines.baseline_loss, name))
        loss, grad = jax.value_and_grad(fn)(jnp.asarray(z), LABELS, VIEW_IDS)
        self.assertTrue(np.isfinite(loss))
        self.assertTrue(np.all(np.isfinite(grad)))
        self.assertGreater(float(jnp.max(jnp.abs(grad))), 0.0)

    def test_clop_gradient_finite_with_a_zero_row(self):
        protos = baselines.orthonormal_prototypes(jax.random.key(6), 3, D)
        z = _random(51)
        z[0] = 0.0
        labels = np.array([0, 1, 2, 0, -1, 1, 2, 0], np.int32)
        grad = jax.grad(baselines.clop_loss)(jnp.asarray(z), labels, protos)
        self.assertTrue(np.all(np.isfinite(grad)))

    def test_check_grads(self):
        with jax.enable_x64(True):
            z = jnp.asarray(_random(52), jnp.float64)
            # jit: the finite differences then run compiled (eager order-2 checks take ~10 s).
            check_grads(jax.jit(lambda x: baselines.nt_xent(x, VIEW_IDS, 0.5)), (z,), order=2)
            protos = jnp.asarray(
                baselines.orthonormal_prototypes(jax.random.key(7), 3, D), jnp.float64
            )
            labels = np.array([0, 1, 2, -1, 0, 1, -1, 2], np.int32)
            clop = jax.jit(lambda x: baselines.clop_loss(x, labels, protos, 2.0))
            check_grads(clop, (z,), order=2)

    def test_dispatcher_matches_direct_calls(self):
        z, kw = _random(53), {"temperature": 0.3}
        for name, fn, ids in (
            ("nt_xent", baselines.nt_xent, VIEW_IDS),
            ("supcon", baselines.supcon, LABELS),
            ("sincere", baselines.sincere, LABELS),
            ("dcl", baselines.dcl, VIEW_IDS),
            ("dclw", baselines.dclw, VIEW_IDS),
        ):
            got = baselines.baseline_loss(name, z, LABELS, VIEW_IDS, **kw)
            np.testing.assert_allclose(got, fn(z, ids, **kw), rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(
            baselines.baseline_loss("vicreg", z, None, VIEW_IDS), baselines.vicreg(z[:B], z[B:])
        )
        np.testing.assert_allclose(
            baselines.baseline_loss("barlow_twins", z, LABELS, None, off_diagonal_weight=0.1),
            baselines.barlow_twins(z[:B], z[B:], 0.1),
        )

    @parameterized.named_parameters(
        ("zero_temperature", lambda: baselines.nt_xent(_random(0), VIEW_IDS, 0.0), "temperature"),
        ("negative_temperature", lambda: baselines.supcon(_random(0), LABELS, -1.0), "temperature"),
        ("bad_sigma", lambda: baselines.dclw(_random(0), VIEW_IDS, 0.5, 0.0), "sigma"),
        ("short_ids", lambda: baselines.nt_xent(_random(0), VIEW_IDS[:4]), "positive_ids"),
        ("float_labels", lambda: baselines.sincere(_random(0), LABELS * 1.0), "labels"),
        ("1d_z", lambda: baselines.dcl(np.ones(8, np.float32), VIEW_IDS), "z must have shape"),
        (
            "view_shapes",
            lambda: baselines.vicreg(_random(0, (4, 3)), _random(0, (5, 3))),
            "z1 and z2",
        ),
        (
            "negative_weight",
            lambda: baselines.barlow_twins(_random(0), _random(1), -1.0),
            "off_diagonal_weight",
        ),
        (
            "unknown_name",
            lambda: baselines.baseline_loss("simsiam", _random(0), LABELS, VIEW_IDS),
            "name must be one of",
        ),
        ("odd_batch", lambda: baselines.baseline_loss("vicreg", _random(0, (7, D))), "even"),
        (
            "not_views",
            lambda: baselines.baseline_loss("barlow_twins", _random(0), None, LABELS),
            "views",
        ),
        (
            "missing_ids",
            lambda: baselines.baseline_loss("dcl", _random(0), LABELS, None),
            "positive_ids",
        ),
        (
            "clop_label_range",
            lambda: baselines.clop_loss(_random(0), LABELS, np.eye(2, D)),
            "labels must lie",
        ),
        (
            "clop_proto_dim",
            lambda: baselines.clop_loss(_random(0), LABELS, np.eye(3, 5)),
            "prototypes",
        ),
    )
    def test_invalid_arguments(self, call, message):
        with self.assertRaisesRegex(ValueError, message):
            call()
