"""Numerical checks of statements the papers make without an experiment.

* HN Corollary 2: the Theorem 2 minimum is attained at Neural Collapse and, for a
  strictly convex and increasing ψ, only there (every perturbation raises the loss).
* HN eqs. 26-29: the bound for the batched loss, and what happens on one unbalanced batch.
* CLOP Lemma 1: equal or co-linear embeddings are stationary points of InfoNCE.
* CLOP Lemma 2: the best extra class embedding for k − 1 fixed ones lies in their span.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hncl_jax import baselines, geometry, losses


def nc_batch(c, per_class, d=None):
    etf = np.asarray(geometry.simplex_etf(c, d))
    y = np.repeat(np.arange(c), per_class)
    return etf[y], y


def reweighted_scl(z, y, beta=0.0):
    return losses.contrastive_loss(
        z, y, setting="hscl" if beta else "scl", beta=beta, estimator="reweighted"
    )


@pytest.mark.parametrize("beta", [0.0, 5.0])
def test_corollary2_minimum_only_at_neural_collapse(beta):
    c = 4
    z, y = nc_batch(c, 5)
    bound = geometry.scl_lower_bound(c, 1)
    np.testing.assert_allclose(float(reweighted_scl(z, y, beta)), bound, rtol=1e-5)
    rng = np.random.default_rng(0)
    # Each departure from NC breaks one of its conditions: within-class spread, a mean
    # off the simplex, norms below 1; the loss then exceeds the bound.
    for scale in (1e-1, 3e-2):
        for _ in range(10):
            noisy = np.asarray(geometry.normalize(z + scale * rng.standard_normal(z.shape)))
            assert float(reweighted_scl(noisy, y, beta)) > bound + 1e-4 * scale
    shrunk = 0.9 * z
    assert float(reweighted_scl(shrunk, y, beta)) > bound + 1e-3


def test_batched_bound_holds_for_balanced_batches_and_can_fail_for_one_unbalanced():
    """Eqs. 26-29 average over batches whose classes are equiprobable overall (eq. 28,
    the law of iterated expectation); a single unbalanced batch is not covered: its
    minimum over unit-ball embeddings is below the Theorem 2 value."""
    c = 3
    bound = geometry.scl_lower_bound(c, 1)

    def minimise(y, steps=600):
        key = jax.random.key(0)
        f = jax.random.normal(key, (len(y), c - 1))

        def loss(f):
            return reweighted_scl(geometry.normalize(f, "unit_ball"), y)

        grad = jax.jit(jax.value_and_grad(loss))
        for _ in range(steps):
            value, g = grad(f)
            f = f - 0.5 * g
        return float(value)

    balanced = np.repeat(np.arange(c), 4)
    assert minimise(balanced) >= bound - 1e-5
    unbalanced = np.array([0] * 8 + [1, 2])
    # Class 0 dominates: pushing the two small classes to its antipode lowers the mean
    # loss below the equiprobable minimum.
    assert minimise(unbalanced) < bound - 1e-3


def test_clop_lemma1_collinear_embeddings_are_stationary():
    rng = np.random.default_rng(1)
    v = rng.standard_normal(6)
    ids = np.tile(np.arange(4), 2)
    for signs in (np.ones(8), np.array([1, -1, 1, 1, -1, 1, -1, 1.0])):
        z = jnp.asarray(signs[:, None] * rng.uniform(0.5, 2.0, (8, 1)) * v[None, :])
        for loss in (
            lambda z: baselines.nt_xent(z, ids, 0.5),
            lambda z: baselines.supcon(z, ids % 2, 0.1),
            lambda z: losses.contrastive_loss(
                geometry.normalize(z, "unit_sphere"),
                ids,
                setting="ucl",
                estimator="reweighted",
                positive_ids=ids,
                self_positive=False,
            ),
        ):
            g = jax.grad(loss)(z)
            np.testing.assert_allclose(np.asarray(g), 0.0, atol=1e-5)
    # A generic configuration is not stationary.
    generic = jnp.asarray(rng.standard_normal((8, 6)))
    assert (
        float(jnp.linalg.norm(jax.grad(lambda z: baselines.nt_xent(z, ids, 0.5))(generic))) > 1e-2
    )


def test_clop_lemma2_best_extra_embedding_lies_in_the_span():
    rng = np.random.default_rng(2)
    m, k = 7, 5
    x = rng.standard_normal((k - 1, m))
    x /= np.linalg.norm(x, axis=1, keepdims=True)

    def total_cosine(xk):
        xk = xk / jnp.linalg.norm(xk)
        return jnp.sum(jnp.asarray(x) @ xk)

    # Projected gradient descent on the sphere from a random start.
    xk = jnp.asarray(rng.standard_normal(m))
    grad = jax.jit(jax.grad(total_cosine))
    for _ in range(500):
        xk = xk - 0.1 * grad(xk)
        xk = xk / jnp.linalg.norm(xk)
    xk = np.asarray(xk)
    # In the span of the others: the residual of the least-squares projection vanishes.
    coef, *_ = np.linalg.lstsq(x.T, xk, rcond=None)
    np.testing.assert_allclose(x.T @ coef, xk, atol=1e-4)
    total = x.sum(axis=0)
    np.testing.assert_allclose(xk, -total / np.linalg.norm(total), atol=1e-4)
    # Lower than any direction outside the span (which scores 0).
    outside = rng.standard_normal(m)
    outside -= x.T @ np.linalg.lstsq(x.T, outside, rcond=None)[0]
    assert abs(float(total_cosine(jnp.asarray(outside)))) < 1e-5
    np.testing.assert_allclose(
        float(total_cosine(jnp.asarray(xk))), -np.linalg.norm(total), rtol=1e-5
    )


@pytest.mark.slow
def test_results_barely_change_for_k_from_32_to_512(tmp_path):
    """[HN §5] reports that k ∈ [32, 512] barely changes the results: HSCL β = 10 on the
    synthetic set (whole set as one batch, 30 epochs) ends at the same loss gap and NC
    metrics within a few 1e-3 for k = 32 and k = 512."""
    from hncl_jax import train
    from hncl_jax.train import reporting
    from tests.conftest import tiny_synthetic

    finals = {}
    for k in (32, 512):
        c = tiny_synthetic(
            num_epochs=30, eval_every_epochs=30, checkpoint_every_epochs=30, log_every_steps=100
        )
        c.loss.name, c.loss.beta, c.loss.k, c.batch_size = "hscl", 10.0, k, 300
        train.train_and_evaluate(c, str(tmp_path / str(k)))
        rows = reporting.read_metrics(str(tmp_path / str(k)))
        finals[k] = [r for r in rows if "nc/train/z/zero_sum" in r][-1]
    a, b = finals[32], finals[512]
    tolerances = {
        "train/loss_gap": 0.005,
        "nc/train/z/zero_sum": 0.03,
        "nc/train/z/equal_inner_product": 0.02,
        "nc/train/z/within_class_variance": 0.005,
        "eval/test/z/ncm_acc": 0.02,
    }
    for key, tol in tolerances.items():
        assert abs(a[key] - b[key]) <= tol, (key, a[key], b[key])
