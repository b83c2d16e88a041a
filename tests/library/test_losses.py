"""Tests of hncl_jax.losses: the HN settings, their estimators and the SimCLR form.

References used here, all in float64 NumPy and independent of the library code:

* `_algorithm1` — a literal loop transcription of [HN Algorithm 1] (per-pair draws),
* `_exact_loss` — the exact expectation of Algorithm 1's loss, enumerating every k-tuple
  of negatives with its probability Π_m q_i(n_m) (small N and k),
* the Theorem 2/3 minima of `hncl_jax.geometry`.

Stochastic comparisons use fixed keys (deterministic tests) and 3-standard-error bounds.
"""

import functools
import itertools
import math
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from jax.test_util import check_grads
from scipy import stats

from hncl_jax import geometry, hardening, losses

C, PER_CLASS = 3, 2
LABELS = np.repeat(np.arange(C), PER_CLASS).astype(np.int32)  # class-balanced, N = 6
BETAS = (0.0, 1.0, 10.0, 100.0)
EPSILONS = (1.0, 3.0, 20.0)
# (setting, hardening) pairs that must all sit at the Theorem 2 minimum at an ETF.
SUPERVISED_CASES = (("scl", "exponential"), ("hscl", "exponential"), ("hscl", "polynomial"))


def _etf_batch(num_classes, per_class, dim=None):
    labels = np.repeat(np.arange(num_classes), per_class).astype(np.int32)
    return geometry.simplex_etf(num_classes, dim)[labels], jnp.asarray(labels)


def _unit_ball(seed, n=6, d=3, sphere=False):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, d))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return f if sphere else f * rng.uniform(0.2, 1.0, size=(n, 1))


def _keys(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


@functools.partial(jax.jit, static_argnums=0)
def _map_keys(fn, keys):
    """fn over many keys in one jitted loop (compiles faster than vmap of the sampler)."""
    return jax.lax.map(fn, keys)


# ---- float64 NumPy references -------------------------------------------------------------


def _np_q(s_row, cand, kind, beta, epsilon):
    """The tilted distribution of one anchor (docs/math.md §5), uniform fallback when h = 0."""
    if kind == "exponential":
        h = np.exp(beta * (s_row - s_row[cand].max()))
    elif kind == "polynomial":
        h = np.maximum(s_row + 1.0, 0.0) ** epsilon
    else:
        h = np.ones_like(s_row)
    h = np.where(cand, h, 0.0)
    if h.sum() == 0:
        h = cand.astype(np.float64)
    return h / h.sum()


def _np_psi(t, name, alpha=1.0):
    if name == "infonce":
        return np.log1p(np.mean(np.exp(t), axis=-1))
    if name == "infonce_sum":
        return np.log(alpha + np.sum(np.exp(t), axis=-1))
    return np.mean(np.maximum(t + alpha, 0.0), axis=-1)


def _exact_loss(z, labels, setting, k, psi="infonce", kind="none", beta=0.0, epsilon=1.0):
    """E over the draws of Algorithm 1's batch loss, by enumerating all k-tuples."""
    z = np.asarray(z, np.float64)
    s = z @ z.T
    kind = kind if setting in ("hscl", "hucl") else "none"
    per_anchor = []
    for i in range(len(z)):
        cand = labels != labels[i] if setting in ("scl", "hscl") else np.ones(len(z), bool)
        pos = np.flatnonzero(labels == labels[i])
        q = _np_q(s[i], cand, kind, beta, epsilon)
        tuples = np.array(list(itertools.product(np.flatnonzero(q > 0), repeat=k)))
        weight = np.prod(q[tuples], axis=1)  # (T,)
        t = s[i, tuples][None] - s[i, pos][:, None, None]  # (P, T, k)
        per_anchor.append(np.mean(_np_psi(t, psi) @ weight))
    return float(np.mean(per_anchor))


def _algorithm1(z, labels, setting, k, rng, kind="none", beta=0.0, epsilon=1.0):
    """[HN Algorithm 1] lines 17-29, literally: nested loops, fresh draws for every pair."""
    z = np.asarray(z, np.float64)
    n = len(z)

    def h(t):
        if setting in ("scl", "ucl") or kind == "none":
            return 1.0
        if kind == "exponential":
            return math.exp(beta * t)
        return max(t + 1.0, 0.0) ** epsilon

    total = 0.0
    for i in range(n):
        ell = np.zeros(n)
        for j in range(n):
            if labels[i] == labels[j]:
                cands = [
                    m for m in range(n) if setting in ("ucl", "hucl") or labels[m] != labels[i]
                ]
                w = np.array([h(z[i] @ z[m]) for m in cands])
                if w.sum() == 0:
                    w = np.ones(len(cands))
                negatives = rng.choice(cands, size=k, p=w / w.sum())
                v = [z[i] @ z[m] - z[i] @ z[j] for m in negatives]
                ell[j] = math.log(1.0 + sum(math.exp(x) for x in v) / k)
        total += ell.sum() / np.count_nonzero(ell)
    return total / n


# ---- Theorems 2 and 3 at Neural Collapse ----------------------------------------------------


class NeuralCollapseMinimumTest(chex.TestCase):
    """At an exact simplex ETF every SCL/HSCL estimate equals the Theorem 2 minimum."""

    def _supervised_values(self, fn, z, labels):
        """fn(z, labels, key, hardness) over every hardness value and 3 keys -> (H, 3, ...)."""
        hardness = jnp.repeat(jnp.asarray(BETAS + EPSILONS), 3)
        keys = jnp.tile(_keys(3), len(BETAS + EPSILONS))
        # lax.map (a loop) rather than vmap: the same check, and XLA compiles it faster.
        values = jax.lax.map(lambda a: fn(z, labels, a[0], a[1]), (keys, hardness))
        return values.reshape(len(BETAS + EPSILONS), 3, *values.shape[1:])

    def test_infonce_every_estimator_equals_theorem2(self):
        z, labels = _etf_batch(C, PER_CLASS)
        estimators = (("sampled", "anchor"), ("sampled", "pair"), ("reweighted", "anchor"))

        def fn(z, labels, key, hardness):
            return jnp.stack(
                [
                    losses.contrastive_loss(
                        z,
                        labels,
                        key,
                        setting=setting,
                        hardening=kind,
                        beta=hardness,
                        epsilon=hardness + 1.0,
                        k=16,
                        estimator=estimator,
                        draw=draw,
                    )  # fmt: skip
                    for setting, kind in SUPERVISED_CASES
                    for estimator, draw in estimators
                ]
            )

        values = jax.jit(functools.partial(self._supervised_values, fn))(z, labels)
        chex.assert_shape(values, (len(BETAS + EPSILONS), 3, 3 * len(SUPERVISED_CASES)))
        np.testing.assert_allclose(values, geometry.scl_lower_bound(C, 16), atol=1e-6, rtol=0)

    def test_sampled_other_psi_equal_theorem2(self):
        z, labels = _etf_batch(4, 2, dim=5)  # d > C - 1 is allowed
        cases = list(itertools.product(("infonce_sum", "triplet"), losses.DRAWS))

        @jax.jit
        def fn(z, labels, key, hardness):
            return jnp.stack(
                [
                    losses.contrastive_loss(
                        z,
                        labels,
                        key,
                        setting="hscl",
                        psi=psi,
                        alpha=0.5,
                        beta=hardness,
                        k=8,
                        draw=draw,
                    )  # fmt: skip
                    for psi, draw in cases
                ]
            )

        values = self._supervised_values(fn, z, labels)
        for c, (psi, _) in enumerate(cases):
            want = geometry.scl_lower_bound(4, 8, psi=psi, alpha=0.5)
            np.testing.assert_allclose(values[..., c], want, atol=1e-6, rtol=0)

    def test_antipodal_classes_fall_back(self):
        # C = 2: the classes are antipodal, s = -1 to every negative, so polynomial h = 0 on
        # every candidate; all anchors fall back to uniform and still reach the minimum.
        z, labels = _etf_batch(2, 3)

        @jax.jit
        def fn(z, labels, key):
            return [
                losses.contrastive_loss_with_aux(
                    z,
                    labels,
                    key,
                    setting="hscl",
                    hardening="polynomial",
                    epsilon=3.0,
                    k=4,
                    estimator=estimator,
                )  # fmt: skip
                for estimator in losses.ESTIMATORS
            ]

        for loss, aux in fn(z, labels, jax.random.key(0)):
            np.testing.assert_allclose(loss, geometry.scl_lower_bound(2, 4), atol=1e-6)
            self.assertEqual(int(aux["num_fallback"]), 6)
            self.assertEqual(int(aux["num_dropped_anchors"]), 0)

    @parameterized.parameters(8, 256)
    def test_sampled_ucl_matches_theorem3_in_expectation(self, k):
        # 10 examples per class: the anchor's class is 1/C of the batch (anchor included),
        # so the number of other-class draws is Binomial(k, (C-1)/C) as in Theorem 3.
        z, labels = _etf_batch(C, 10)
        num_keys = 2048 if k == 8 else 4096
        draws = losses.DRAWS if k == 8 else ("anchor",)  # pair draws at k = 256: N²k each

        @jax.jit
        def batch_losses(keys):
            def fn(key):
                return jnp.stack(
                    [
                        losses.contrastive_loss(z, labels, key, setting="ucl", k=k, draw=draw)
                        for draw in draws
                    ]
                )

            return jax.lax.map(fn, keys)

        values = np.asarray(batch_losses(_keys(num_keys, seed=k)), np.float64)
        bound, limit = geometry.ucl_lower_bound(C, k), geometry.ucl_reweighted_limit(C)
        for column, draw in enumerate(draws):
            mean = values[:, column].mean()
            se = values[:, column].std(ddof=1) / math.sqrt(num_keys)
            self.assertLess(abs(mean - bound), 3 * se, (draw, mean, bound, se))
            if k == 8:
                # The binomial bound, not the k -> infinity limit (3.8e-3 apart, ~10 SE).
                self.assertGreater(abs(mean - limit), 3 * se, (draw, mean, limit, se))

    def test_reweighted_ucl_equals_limit(self):
        z, labels = _etf_batch(C, 4)

        @jax.jit
        def fn(z, labels):
            kw = dict(estimator="reweighted", beta=10.0)
            return (
                losses.contrastive_loss(z, labels, setting="ucl", **kw),
                losses.contrastive_loss(z, labels, setting="hucl", **kw),
            )

        loss, hard = fn(z, labels)
        np.testing.assert_allclose(loss, geometry.ucl_reweighted_limit(C), atol=1e-6)
        # HUCL at NC: tilting toward the anchor's own class raises the loss above the limit.
        self.assertGreater(float(hard), float(loss) + 0.1)


# ---- Theorems 1-3 on random representations (exact expectations) ---------------------------


class ExactExpectationTest(parameterized.TestCase):
    def test_exact_expectation_increases_in_k_toward_reweighted(self):
        # Sanity check of the reference against the library: log(1 + x) is concave and the
        # mean of k i.i.d. draws decreases in convex order as k grows, so the exact
        # expectation E log(1 + mean_m e^{t_m}) increases with k toward the reweighted
        # k -> infinity limit log(1 + E_q e^{t}) (as the Theorem 3 bound does).
        z = _unit_ball(0)
        exact = [_exact_loss(z, LABELS, "hscl", k, kind="exponential", beta=2.0) for k in (1, 2, 3)]
        rew = losses.contrastive_loss(
            jnp.asarray(z, jnp.float32), LABELS, setting="hscl", beta=2.0, estimator="reweighted"
        )
        self.assertLess(exact[0], exact[1])
        self.assertLess(exact[1], exact[2])
        self.assertLess(exact[2], float(rew))

    @parameterized.parameters("infonce", "infonce_sum", "triplet")
    def test_random_unit_ball_above_minima(self, psi):
        k = 2
        scl_min = geometry.scl_lower_bound(C, k, psi=psi)
        ucl_min = geometry.ucl_lower_bound(C, k, psi=psi)
        for seed in range(40):
            z = _unit_ball(seed, d=2 + seed % 4, sphere=seed % 2 == 0)
            self.assertGreaterEqual(_exact_loss(z, LABELS, "scl", k, psi), scl_min - 1e-12)
            self.assertGreaterEqual(_exact_loss(z, LABELS, "ucl", k, psi), ucl_min - 1e-12)

    def test_reweighted_random_unit_ball(self):
        # The k -> infinity forms of Theorems 1-3 through the library's reweighted estimator:
        # SCL >= Thm 2 minimum, UCL >= the limit of the Thm 3 minimum, HSCL > SCL, HUCL > UCL.
        zs = np.stack([_unit_ball(seed, sphere=seed % 2 == 0) for seed in range(40)])

        @jax.jit
        @jax.vmap
        def fn(z):
            return jnp.stack(
                [
                    losses.contrastive_loss(
                        z, LABELS, setting=setting, beta=5.0, estimator="reweighted"
                    )
                    for setting in losses.SETTINGS
                ]
            )

        scl, hscl, ucl, hucl = np.asarray(fn(jnp.asarray(zs, jnp.float32))).T
        self.assertTrue(np.all(scl >= geometry.scl_lower_bound(C, 1) - 1e-6))
        self.assertTrue(np.all(ucl >= geometry.ucl_reweighted_limit(C) - 1e-6))
        self.assertTrue(np.all(hscl > scl))
        self.assertTrue(np.all(hucl > ucl))

    @parameterized.product(
        hard=(("exponential", 1.0, 1.0), ("exponential", 10.0, 1.0), ("polynomial", 0.0, 1.0),
              ("polynomial", 0.0, 5.0)),
        k=(2, 3),
        psi=("infonce", "triplet"),
    )  # fmt: skip
    def test_theorem1_hard_dominates_easy(self, hard, k, psi):
        kind, beta, epsilon = hard
        gaps = []
        for seed in range(6):
            z = _unit_ball(100 + seed)
            for easy, harder in (("scl", "hscl"), ("ucl", "hucl")):
                lo = _exact_loss(z, LABELS, easy, k, psi)
                hi = _exact_loss(z, LABELS, harder, k, psi, kind, beta, epsilon)
                self.assertGreaterEqual(hi, lo - 1e-12, (seed, easy))
                gaps.append(hi - lo)
        self.assertGreater(min(gaps), 0.0)  # strict for generic representations


# ---- Algorithm 1 -----------------------------------------------------------------------------


class Algorithm1Test(parameterized.TestCase):
    @parameterized.parameters(("hscl", "exponential", 2.0, 1.0), ("hucl", "polynomial", 0.0, 3.0))
    def test_vectorised_matches_loop_in_distribution(self, setting, kind, beta, epsilon):
        k, runs, num_keys = 3, 600, 4096
        z = _unit_ball(7)
        rng = np.random.default_rng(0)
        loop = np.array([_algorithm1(z, LABELS, setting, k, rng, kind, beta, epsilon)
                         for _ in range(runs)])  # fmt: skip
        exact = _exact_loss(z, LABELS, setting, k, "infonce", kind, beta, epsilon)
        loop_se = loop.std(ddof=1) / math.sqrt(runs)
        self.assertLess(abs(loop.mean() - exact), 3 * loop_se)
        zj = jnp.asarray(z, jnp.float32)

        def fn(key):
            return jnp.stack(
                [
                    losses.contrastive_loss(
                        zj,
                        LABELS,
                        key,
                        setting=setting,
                        hardening=kind,
                        beta=beta,
                        epsilon=epsilon,
                        k=k,
                        draw=draw,
                    )  # fmt: skip
                    for draw in losses.DRAWS
                ]
            )

        values = np.asarray(_map_keys(fn, _keys(num_keys, seed=1)), np.float64)
        for column, draw in enumerate(losses.DRAWS):
            vec = values[:, column]
            se = vec.std(ddof=1) / math.sqrt(num_keys)
            self.assertLess(abs(vec.mean() - loop.mean()), 3 * math.hypot(se, loop_se), draw)
            self.assertLess(abs(vec.mean() - exact), 3 * se, draw)
            if draw == "pair":
                # Per-pair draws: the whole distribution of the batch loss is the loop's.
                self.assertGreater(stats.ks_2samp(vec, loop).pvalue, 1e-3)

    def test_shortcuts_equal_generic_psi(self):
        # draw="anchor" uses softplus(A_i - s_ij) for InfoNCE; the same draws through
        # ψ(s_neg - s_ij) must give the same loss.
        z = jnp.asarray(_unit_ball(3), jnp.float32)
        key = jax.random.key(9)
        idx, _ = hardening.sample_negatives(
            key, z @ z.T, LABELS[:, None] != LABELS[None, :], 5, beta=3.0
        )
        s = np.asarray(z @ z.T, np.float64)
        for psi in ("infonce", "infonce_sum"):
            t = np.take_along_axis(s, np.asarray(idx), 1)[:, None, :] - s[:, :, None]
            pair = _np_psi(t, psi, 0.5)
            pos = LABELS[:, None] == LABELS[None, :]
            want = np.mean((pair * pos).sum(1) / pos.sum(1))
            got = losses.contrastive_loss(
                z, LABELS, key, setting="hscl", psi=psi, alpha=0.5, beta=3.0, k=5
            )
            np.testing.assert_allclose(got, want, rtol=1e-5)


# ---- β = 0 and the reweighted estimator ------------------------------------------------------


class ZeroHardnessTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_beta_zero_equals_easy_setting_exactly(self):
        z = jnp.asarray(_unit_ball(11), jnp.float32)
        # The equality comes from identical log q, hence identical draws: one draw each.
        cases = ((("scl", "hscl"), "pair"), (("ucl", "hucl"), "anchor"))

        def pairs(z, key):
            out = []
            for (easy, hard), draw in cases:
                kw = dict(k=7, draw=draw, hardening="exponential")
                out.append(losses.contrastive_loss(z, LABELS, key, setting=easy, beta=5.0, **kw))
                out.append(losses.contrastive_loss(z, LABELS, key, setting=hard, beta=0.0, **kw))
            return jnp.stack(out).reshape(len(cases), 2)

        values = self.variant(pairs)(z, jax.random.key(3))
        np.testing.assert_array_equal(values[:, 0], values[:, 1])

    @chex.variants(with_jit=True, without_jit=True)
    def test_reweighted_beta_zero_is_plain_mean(self):
        z = _unit_ball(12)

        def fn(z):
            return jnp.stack(
                [
                    losses.contrastive_loss(
                        z,
                        LABELS,
                        setting="hucl",
                        beta=0.0,
                        estimator="reweighted",
                        exclude_anchor=exclude,
                    )  # fmt: skip
                    for exclude in (False, True)
                ]
            )

        got = self.variant(fn)(jnp.asarray(z, jnp.float32))
        s, n = z @ z.T, len(z)
        for column, exclude_anchor in enumerate((False, True)):
            per_anchor = []
            for i in range(n):
                cands = [m for m in range(n) if not (exclude_anchor and m == i)]
                pos = [j for j in range(n) if LABELS[j] == LABELS[i]]
                mean_exp = np.mean([math.exp(s[i, m]) for m in cands])
                per_anchor.append(np.mean([math.log1p(mean_exp / math.exp(s[i, j])) for j in pos]))
            np.testing.assert_allclose(got[column], np.mean(per_anchor), rtol=1e-6)

    def test_tau_plus_debiasing(self):
        # [R21]: Ng = max((E_q[e^{s-}] - τ⁺ e^{s+}) / (1 - τ⁺), e^{-1}); ℓ = log(1 + Ng / e^{s+}).
        z, tau, beta = _unit_ball(13), 0.1, 2.0
        got = losses.contrastive_loss(
            jnp.asarray(z, jnp.float32), LABELS, setting="hucl", beta=beta,
            estimator="reweighted", tau_plus=tau,
        )  # fmt: skip
        s, per_anchor = z @ z.T, []
        for i in range(len(z)):
            q = np.exp(beta * s[i]) / np.exp(beta * s[i]).sum()
            e_neg = q @ np.exp(s[i])
            terms = []
            for j in np.flatnonzero(LABELS == LABELS[i]):
                ng = max((e_neg - tau * math.exp(s[i, j])) / (1 - tau), math.exp(-1))
                terms.append(math.log1p(ng / math.exp(s[i, j])))
            per_anchor.append(np.mean(terms))
        np.testing.assert_allclose(got, np.mean(per_anchor), rtol=1e-5)


# ---- Positives by views; SimCLR form ---------------------------------------------------------

# Two views of B = 2 examples: rows (a, b, a', b'), ids (0, 1, 0, 1).
VIEWS = np.array([[0.6, 0.8], [1.0, 0.0], [0.8, 0.6], [0.0, -1.0]])
VIEW_IDS = np.array([0, 1, 0, 1], np.int32)


class ViewsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_ucl_views_reweighted_by_hand(self):
        fn = functools.partial(
            losses.contrastive_loss,
            setting="ucl",
            estimator="reweighted",
            positive_ids=jnp.asarray(VIEW_IDS),
            self_positive=False,
        )
        got = self.variant(fn)(jnp.asarray(VIEWS, jnp.float32), jnp.zeros(4, jnp.int32))
        e = math.exp
        # s: a·b = .6, a·a' = .96, a·b' = -.8, b·a' = .8, b·b' = 0, a'·b' = -.6; |row| = 1.
        row = {
            0: (0.96, [1.0, 0.6, 0.96, -0.8]),
            1: (0.0, [0.6, 1.0, 0.8, 0.0]),
            2: (0.96, [0.96, 0.8, 1.0, -0.6]),
            3: (0.0, [-0.8, 0.0, -0.6, 1.0]),
        }
        want = np.mean(
            [math.log(1 + sum(e(x) for x in sims) / 4 / e(pos)) for pos, sims in row.values()]
        )
        np.testing.assert_allclose(got, want, rtol=1e-6)

    def test_scl_views_sampled_by_hand(self):
        # Labels (0, 1, 0, 1) = ids: each anchor's candidates are the two rows of the other
        # example. With a = (0, 1), b = (1, 0), a' = (0, -1), b' = (1, 0) every candidate of
        # an anchor has the same similarity (0), so every draw gives the same loss.
        z = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])
        loss, aux = losses.contrastive_loss_with_aux(
            z, jnp.asarray(VIEW_IDS), jax.random.key(0), setting="hscl", beta=3.0, k=5,
            positive_ids=jnp.asarray(VIEW_IDS), self_positive=False,
        )  # fmt: skip
        # Anchors a, a' (positive at s = -1): log(1 + e^{0 + 1}); b, b' (s = 1): log(1 + e^{-1}).
        want = (math.log1p(math.e) + math.log1p(math.exp(-1))) / 2
        np.testing.assert_allclose(loss, want, rtol=1e-6)
        self.assertEqual(int(aux["num_dropped_anchors"]), 0)

    def test_anchor_without_positive_is_dropped(self):
        ids = jnp.array([0, 1, 0, 2], jnp.int32)  # rows 1 and 3 have no sibling view
        z = jnp.asarray(VIEWS, jnp.float32)
        loss, aux = losses.contrastive_loss_with_aux(
            z, ids, setting="ucl", estimator="reweighted", positive_ids=ids,
            self_positive=False,
        )  # fmt: skip
        self.assertEqual(int(aux["num_dropped_anchors"]), 2)
        full = losses.contrastive_loss(
            z, jnp.asarray(VIEW_IDS), setting="ucl", estimator="reweighted",
            positive_ids=jnp.asarray(VIEW_IDS), self_positive=False,
        )  # fmt: skip
        pair_a = [
            math.log(1 + np.mean(np.exp(VIEWS[i] @ VIEWS.T)) / math.exp(0.96)) for i in (0, 2)
        ]
        np.testing.assert_allclose(loss, np.mean(pair_a), rtol=1e-6)
        self.assertNotAlmostEqual(float(loss), float(full))

    def test_one_class_batch_scl_gives_zero(self):
        loss, aux = losses.contrastive_loss_with_aux(
            jnp.asarray(VIEWS, jnp.float32), jnp.zeros(4, jnp.int32), jax.random.key(0),
            setting="scl", k=3,
        )  # fmt: skip
        self.assertEqual(float(loss), 0.0)
        self.assertEqual(int(aux["num_dropped_anchors"]), 4)


class SimCLRFormTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.0, 2.0)
    def test_by_hand(self, beta):
        fn = functools.partial(losses.simclr_form_loss, beta=beta)
        got = self.variant(fn)(jnp.asarray(VIEWS, jnp.float32), jnp.asarray(VIEW_IDS))
        e = math.exp
        q_factor = 4 - 2  # Q = number of views - 2
        # (positive similarity, similarities to the two views of the other example)
        rows = [(0.96, [0.6, -0.8]), (0.0, [0.6, 0.8]), (0.96, [0.8, -0.6]), (0.0, [-0.8, -0.6])]
        want = []
        for pos, neg in rows:
            w = [e(beta * x) for x in neg]
            e_neg = sum(wi * e(x) for wi, x in zip(w, neg, strict=True)) / sum(w)
            want.append(math.log(1 + q_factor * e_neg / e(pos)))
        np.testing.assert_allclose(got, np.mean(want), rtol=1e-6)

    def test_uniform_form_is_ntxent_without_positive_in_denominator(self):
        # β = 0: log(1 + Σ_{m ∉ {i, i+}} e^{s_im} / e^{s_i+}) = -log(e^{s+} / (e^{s+} + Σ e^{s-})).
        z = _unit_ball(5, n=8, d=4, sphere=True)
        ids = np.tile(np.arange(4), 2)
        s, want = z @ z.T, []
        for i in range(8):
            j = (i + 4) % 8
            neg = sum(math.exp(s[i, m]) for m in range(8) if m not in (i, j))
            want.append(-math.log(math.exp(s[i, j]) / (math.exp(s[i, j]) + neg)))
        got = losses.simclr_form_loss(jnp.asarray(z, jnp.float32), jnp.asarray(ids))
        np.testing.assert_allclose(got, np.mean(want), rtol=1e-6)


# ---- Numerical safety --------------------------------------------------------------------


class NumericalSafetyTest(parameterized.TestCase):
    def test_finite_for_large_beta_and_norms(self):
        rng = np.random.default_rng(0)
        scales = np.array([[1e-3], [0.5], [3.0], [30.0]] * 2)  # norms from 0 to ~60
        f = jnp.asarray(rng.normal(size=(8, 4)) * scales, jnp.float32).at[0].set(0.0)
        labels = jnp.asarray(np.tile([0, 1, 2, 3], 2), jnp.int32)
        configs = (
            ("sampled", "anchor", "exponential"),
            ("sampled", "pair", "polynomial"),
            ("reweighted", "anchor", "exponential"),
            ("simclr", "", "polynomial"),
        )

        def objective(f, hardness, key, kind, config):
            z = geometry.normalize(f, kind)
            est, draw, hard = config
            if est == "simclr":
                return losses.simclr_form_loss(
                    z, labels, beta=hardness, epsilon=hardness + 1.0, hardening=hard
                )
            return losses.contrastive_loss(
                z, labels, key, setting="hucl", hardening=hard, beta=hardness,
                epsilon=hardness + 1.0, k=4, estimator=est, draw=draw,
            )  # fmt: skip

        @jax.jit
        def all_values_and_grads(f, hardness, key):
            return {
                (kind, config): jax.value_and_grad(objective)(f, hardness, key, kind, config)
                for kind in geometry.NORMALIZATIONS
                for config in configs
            }

        for hardness in (0.0, 10.0, 100.0, 1000.0):
            out = all_values_and_grads(f, hardness, jax.random.key(1))
            for case, (value, grad) in out.items():
                self.assertTrue(bool(jnp.isfinite(value)), (hardness, case))
                self.assertTrue(bool(jnp.all(jnp.isfinite(grad))), (hardness, case))

    def test_check_grads(self):
        configs = (
            # With β > 0 the default reweighted gradient stops at q by design, so finite
            # differences only match it at β = 0 (q uniform) or with grad_through_weights.
            dict(estimator="reweighted", beta=0.0),
            dict(estimator="reweighted", beta=2.0, grad_through_weights=True, tau_plus=0.1),
            # Sampled with a fixed key: the draw is piecewise constant in z, so the gradient
            # through the gathered similarities is the full gradient.
            dict(estimator="sampled", beta=2.0, draw="anchor"),
            dict(estimator="sampled", beta=2.0, draw="pair", psi="triplet"),
        )
        with jax.enable_x64(True):
            z = jnp.asarray(_unit_ball(21), jnp.float64)
            key = jax.random.key(2)

            @jax.jit
            def fn(z):
                return jnp.stack(
                    [
                        losses.contrastive_loss(z, LABELS, key, setting="hucl", k=4, **kw)
                        for kw in configs
                    ]
                )

            check_grads(fn, (z,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)

    def test_grad_through_weights_changes_only_the_gradient(self):
        z = jnp.asarray(_unit_ball(22), jnp.float32)

        @jax.jit
        def fn(z):
            return [
                jax.value_and_grad(
                    lambda z, g=g: losses.contrastive_loss(
                        z,
                        LABELS,
                        setting="hucl",
                        beta=5.0,
                        estimator="reweighted",
                        grad_through_weights=g,
                    )  # fmt: skip
                )(z)
                for g in (False, True)
            ]

        (v0, g0), (v1, g1) = fn(z)
        np.testing.assert_allclose(v0, v1, rtol=1e-6)
        self.assertGreater(float(jnp.max(jnp.abs(g0 - g1))), 1e-3)

    def test_one_trace_under_jit(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def step(z, key):
            return jax.value_and_grad(
                lambda z: losses.contrastive_loss(z, LABELS, key, setting="hscl", beta=3.0, k=8)
            )(z)

        for seed in range(3):
            step(jnp.asarray(_unit_ball(seed), jnp.float32), jax.random.key(seed))


# ---- the fused reweighted kernel --------------------------------------------------------------


class FusedReweightedTest(parameterized.TestCase):
    """The reweighted loss's fused kernel (exponential or no hardening, τ⁺ = 0, detached
    weights, anchor mean) against the generic composition of `_log_mean_negative` and
    `_reduce` that every other case takes."""

    def _generic(self):
        """Within the context, the loss takes the generic path whatever its arguments."""
        return mock.patch.object(losses, "_fused_reweighted_applies", lambda *a: False)

    def _both(self, z, labels, **kw):
        kw = dict(estimator="reweighted", **kw)
        fn = lambda z: losses.contrastive_loss(z, labels, **kw)
        fused = jax.value_and_grad(fn)(z)
        with self._generic():
            generic = jax.value_and_grad(fn)(z)
        return fused, generic

    @parameterized.parameters(
        # (setting, β, τ, self_positive, exclude_anchor): every setting, β from none to
        # 1000 (exponents that overflow off the candidates), τ ≠ 1, both anchor options.
        ("scl", 0.0, 1.0, True, False),
        ("scl", 3.0, 0.3, False, False),
        ("hscl", 3.0, 1.0, True, False),
        ("hscl", 1000.0, 0.3, False, True),
        ("hscl", 30.0, 1.0, False, False),
        ("ucl", 0.0, 0.3, True, True),
        ("ucl", 3.0, 1.0, False, True),
        ("hucl", 3.0, 0.3, True, False),
        ("hucl", 1000.0, 1.0, False, True),
    )
    def test_value_and_gradient_equal_the_generic_path(
        self, setting, beta, temperature, self_positive, exclude_anchor
    ):
        rng = np.random.default_rng(7)
        z = geometry.normalize(jnp.asarray(rng.normal(size=(24, 4)), jnp.float32), "unit_ball")
        # Label 9 occurs once: without self-positives that anchor has no positive.
        labels = jnp.asarray(np.r_[rng.integers(0, 3, 23), 9], jnp.int32)
        kw = dict(
            setting=setting,
            beta=beta,
            temperature=temperature,
            self_positive=self_positive,
            exclude_anchor=exclude_anchor,
        )
        (v_fused, g_fused), (v_generic, g_generic) = self._both(z, labels, **kw)
        self.assertTrue(np.isfinite(float(v_fused)) and bool(jnp.all(jnp.isfinite(g_fused))))
        np.testing.assert_allclose(v_fused, v_generic, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(g_fused, g_generic, rtol=1e-4, atol=1e-6)

    def test_counts_and_empty_rows(self):
        z = jnp.asarray(_unit_ball(3, n=6), jnp.float32)
        one_class = jnp.zeros(6, jnp.int32)  # SCL: no anchor has a candidate
        loss, aux = losses.contrastive_loss_with_aux(
            z, one_class, setting="hscl", beta=2.0, estimator="reweighted"
        )
        self.assertEqual(float(loss), 0.0)
        self.assertEqual(int(aux["num_dropped_anchors"]), 6)
        self.assertEqual(int(aux["num_fallback"]), 0)
        labels = jnp.asarray([0, 0, 1, 1, 2, 3], jnp.int32)  # 2 and 3: no other positive
        loss, aux = losses.contrastive_loss_with_aux(
            z, labels, setting="hscl", beta=2.0, estimator="reweighted", self_positive=False
        )
        kw = dict(setting="hscl", beta=2.0, estimator="reweighted", self_positive=False)
        fused = losses.contrastive_loss_with_aux(z, labels, diagnostics=True, **kw)[1]
        with self._generic():
            generic = losses.contrastive_loss_with_aux(z, labels, diagnostics=True, **kw)[1]
        self.assertEqual(int(aux["num_dropped_anchors"]), 2)
        # The diagnostics (from q_i, without gradient) are those of the generic path.
        self.assertEqual(sorted(fused), sorted(generic))
        for name in generic:
            np.testing.assert_allclose(fused[name], generic[name], rtol=1e-5, err_msg=name)

    def test_traced_beta_under_vmap(self):
        z = jnp.asarray(_unit_ball(5, n=6), jnp.float32)
        betas = jnp.asarray([0.0, 2.0, 30.0])
        fn = lambda b: losses.contrastive_loss(
            z, LABELS, setting="hscl", beta=b, estimator="reweighted"
        )
        vmapped = jax.jit(jax.vmap(jax.value_and_grad(fn)))(betas)
        for i, b in enumerate([0.0, 2.0, 30.0]):
            np.testing.assert_allclose(vmapped[0][i], fn(b), rtol=1e-6)
            self.assertEqual(float(vmapped[1][i]), 0.0)  # the weights carry no gradient

    def test_the_fused_kernel_is_what_runs(self):
        z = jnp.asarray(_unit_ball(6, n=6), jnp.float32)
        fn = lambda z, **kw: losses.contrastive_loss(
            z, LABELS, setting="hscl", beta=2.0, estimator="reweighted", **kw
        )
        self.assertIn("custom_vjp_call", str(jax.make_jaxpr(fn)(z)))
        # τ⁺ debiasing, polynomial hardening and the pair mean take the generic path.
        for kw in ({"tau_plus": 0.1}, {"hardening": "polynomial"}, {"reduction": "pair_mean"}):
            self.assertNotIn("custom_vjp_call", str(jax.make_jaxpr(functools.partial(fn, **kw))(z)))


# ---- SIR through the loss --------------------------------------------------------------------


class NonSeparableHardeningTest(parameterized.TestCase):
    def test_sir_at_neural_collapse_and_separable_limit(self):
        z_nc, labels_nc = _etf_batch(C, PER_CLASS)
        z = jnp.asarray(_unit_ball(30), jnp.float32)
        eta = lambda t: 5.0 * jnp.sum(t, axis=-1)  # log of the separable η = Π e^{5 t}

        def fn(key):
            kw = dict(setting="hscl", k=2, num_proposals=64)
            zero = lambda t: jnp.full(t.shape[:-1], -jnp.inf)  # η = 0: every tuple falls back
            _, aux = losses.contrastive_loss_with_aux(z, LABELS, key, eta_fn=zero, **kw)
            return jnp.stack(
                [
                    losses.contrastive_loss(z_nc, labels_nc, key, eta_fn=eta, **kw),
                    losses.contrastive_loss(z, LABELS, key, eta_fn=eta, **kw),
                    aux["num_fallback"].astype(jnp.float32),
                ]
            )

        values = np.asarray(_map_keys(fn, _keys(2048)), np.float64)
        np.testing.assert_array_equal(values[:, 2], len(LABELS))  # one tuple per anchor
        # At NC every tuple has the same similarities: the minimum for every key.
        np.testing.assert_allclose(values[:, 0], geometry.scl_lower_bound(C, 2), atol=1e-6)
        # Random z: SIR approaches the exact η-harder expectation (bias O(1/R)), far closer
        # than the unhardened value is.
        exact = _exact_loss(np.asarray(z), LABELS, "hscl", 2, kind="exponential", beta=5.0)
        easy = _exact_loss(np.asarray(z), LABELS, "scl", 2)
        se = values[:, 1].std(ddof=1) / math.sqrt(len(values))
        self.assertLess(abs(values[:, 1].mean() - exact), 3 * se + 0.1 * abs(exact - easy))


# ---- Argument validation ---------------------------------------------------------------------


class ValidationTest(parameterized.TestCase):
    @parameterized.parameters(
        (dict(setting="supcon"), r"setting.*scl.*hscl.*ucl.*hucl"),
        (dict(psi="ntxent"), r"psi.*infonce"),
        (dict(hardening="cubic"), r"hardening.*none.*exponential.*polynomial"),
        (dict(estimator="exact"), r"estimator.*sampled.*reweighted"),
        (dict(draw="batch"), r"draw.*anchor.*pair"),
        (dict(beta=-1.0), "beta=-1.0"),
        (dict(epsilon=0.0), "epsilon=0.0"),
        (dict(k=0), "k=0"),
        (dict(k=3.5), "k=3.5"),
        (dict(alpha=0.0, psi="infonce_sum"), "alpha=0.0"),
        (dict(tau_plus=1.0, estimator="reweighted"), "tau_plus=1.0"),
        (dict(tau_plus=0.1), "tau_plus=0.1"),
        (dict(estimator="reweighted", psi="triplet"), "psi='triplet'"),
        (dict(key=None), "key=None"),
        (dict(num_proposals=0), "num_proposals=0"),
        (dict(eta_fn="hard"), "eta_fn"),
        (dict(eta_fn=jnp.sum, setting="scl"), "eta_fn"),
        (dict(positive_ids=np.zeros(5, np.int32)), "positive_ids"),
        (dict(labels=np.zeros((6, 1), np.int32)), "labels"),
        (dict(labels=np.zeros(6)), "labels"),
        (dict(z=np.zeros(6)), "z must"),
    )
    def test_contrastive_loss_errors(self, overrides, pattern):
        kw = dict(z=np.zeros((6, 2), np.float32), labels=LABELS, key=jax.random.key(0),
                  setting="hscl")  # fmt: skip
        kw.update(overrides)
        with self.assertRaisesRegex(ValueError, pattern):
            losses.contrastive_loss(kw.pop("z"), kw.pop("labels"), kw.pop("key"), **kw)

    def test_simclr_form_errors(self):
        z = np.zeros((4, 2), np.float32)
        with self.assertRaisesRegex(ValueError, "beta"):
            losses.simclr_form_loss(z, VIEW_IDS, beta=-2.0)
        with self.assertRaisesRegex(ValueError, "hardening"):
            losses.simclr_form_loss(z, VIEW_IDS, hardening="hard")
        with self.assertRaisesRegex(ValueError, "positive_ids"):
            losses.simclr_form_loss(z, VIEW_IDS[:3])

    def test_errors_raised_before_compilation(self):
        fn = jax.jit(functools.partial(losses.contrastive_loss, setting="hscl", beta=-1.0))
        with self.assertRaisesRegex(ValueError, "beta"):
            fn(jnp.zeros((6, 2)), LABELS, jax.random.key(0))
