"""Numerical tests of the loss options: temperature, pair-mean reduction, diagnostics,
the supervised SimCLR form and its Q, named hardenings η, the β schedule, SupCon's
contrast_mode="one". References are written out in float64 NumPy loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hncl_jax import baselines, geometry, hardening, losses


def unit(key, n, d=5):
    return np.asarray(geometry.normalize(jax.random.normal(key, (n, d)), "unit_sphere"))


def reweighted_pairs(z, labels, beta, temperature=1.0, supervised=True):
    """ℓ_ij = log(1 + Σ_m q_i(m) exp((s_im − s_ij)/τ)), q_i ∝ exp(β s_im) on candidates."""
    z = np.asarray(z, np.float64)
    s = z @ z.T
    n = len(labels)
    out = np.zeros((n, n))
    for i in range(n):
        cand = [m for m in range(n) if labels[m] != labels[i]] if supervised else range(n)
        w = np.array([np.exp(beta * s[i, m]) for m in cand])
        q = w / w.sum()
        for j in range(n):
            out[i, j] = np.log1p(np.sum(q * np.exp((s[i, list(cand)] - s[i, j]) / temperature)))
    return out


def reduce(pairs, labels, mode):
    n = len(labels)
    pos = [[j for j in range(n) if labels[j] == labels[i]] for i in range(n)]
    if mode == "anchor_mean":
        return np.mean([np.mean([pairs[i, j] for j in pos[i]]) for i in range(n)])
    return np.mean([pairs[i, j] for i in range(n) for j in pos[i]])


UNBALANCED = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2])


@pytest.mark.parametrize("reduction", ["anchor_mean", "pair_mean"])
@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_reweighted_temperature_and_reduction_by_hand(reduction, temperature):
    z = unit(jax.random.key(0), len(UNBALANCED))
    got = losses.contrastive_loss(
        z,
        UNBALANCED,
        setting="hscl",
        beta=2.0,
        estimator="reweighted",
        temperature=temperature,
        reduction=reduction,
    )
    want = reduce(reweighted_pairs(z, UNBALANCED, 2.0, temperature), UNBALANCED, reduction)
    np.testing.assert_allclose(float(got), want, rtol=2e-5)


def test_reductions_differ_only_on_unbalanced_batches():
    z = unit(jax.random.key(1), len(UNBALANCED))

    def loss(labels, reduction):
        return float(
            losses.contrastive_loss(
                z, labels, setting="scl", estimator="reweighted", reduction=reduction
            )
        )

    assert abs(loss(UNBALANCED, "anchor_mean") - loss(UNBALANCED, "pair_mean")) > 1e-3
    balanced = np.arange(10) % 2
    np.testing.assert_allclose(
        loss(balanced, "anchor_mean"), loss(balanced, "pair_mean"), rtol=1e-6
    )


def test_sampled_temperature_equals_rescaled_embeddings():
    # Uniform draws do not depend on s, so s/τ is the same as embeddings z/√τ.
    z = unit(jax.random.key(2), 12)
    y = np.arange(12) % 3
    key = jax.random.key(5)
    for psi in ("infonce", "triplet"):
        got = losses.contrastive_loss(z, y, key, setting="scl", psi=psi, k=7, temperature=0.25)
        want = losses.contrastive_loss(z / 0.5, y, key, setting="scl", psi=psi, k=7)
        np.testing.assert_allclose(float(got), float(want), rtol=1e-6)


def test_unit_temperature_is_bit_identical():
    z = unit(jax.random.key(3), 12)
    y = np.arange(12) % 3
    key = jax.random.key(1)
    for est in ("sampled", "reweighted"):
        a = losses.contrastive_loss(z, y, key, setting="hucl", beta=3.0, estimator=est)
        b = losses.contrastive_loss(
            z, y, key, setting="hucl", beta=3.0, estimator=est, temperature=1.0
        )
        assert float(a) == float(b)


def test_temperature_errors():
    z = unit(jax.random.key(3), 6)
    with pytest.raises(ValueError, match="temperature"):
        losses.contrastive_loss(
            z, np.arange(6) % 2, setting="scl", estimator="reweighted", temperature=0.0
        )
    with pytest.raises(ValueError, match="reduction"):
        losses.contrastive_loss(
            z, np.arange(6) % 2, setting="scl", estimator="reweighted", reduction="sum"
        )


# ---------------------------------------------------------------------------- diagnostics


def test_diagnostics_of_the_uniform_and_tilted_distributions():
    z = unit(jax.random.key(4), len(UNBALANCED))
    n = len(UNBALANCED)
    _, aux = losses.contrastive_loss_with_aux(
        z, UNBALANCED, setting="ucl", estimator="reweighted", diagnostics=True
    )
    # Uniform over the whole batch: ESS = N, entropy log N, collision = mean class share.
    np.testing.assert_allclose(float(aux["neg_ess"]), n, rtol=1e-5)
    np.testing.assert_allclose(float(aux["neg_ess_fraction"]), 1.0, rtol=1e-5)
    np.testing.assert_allclose(float(aux["neg_entropy"]), np.log(n), rtol=1e-5)
    share = np.mean([np.mean(UNBALANCED == c) for c in UNBALANCED])
    np.testing.assert_allclose(float(aux["neg_collision"]), share, rtol=1e-5)
    np.testing.assert_allclose(
        float(aux["neg_sim_drawn"]), float(aux["neg_sim_uniform"]), rtol=1e-5
    )

    beta = 4.0
    _, aux = losses.contrastive_loss_with_aux(
        z,
        UNBALANCED,
        setting="hscl",
        beta=beta,
        estimator="reweighted",
        diagnostics=True,
    )
    s = z.astype(np.float64) @ z.T.astype(np.float64)
    ess, ent, drawn = [], [], []
    for i in range(n):
        cand = UNBALANCED != UNBALANCED[i]
        q = np.exp(beta * s[i, cand])
        q /= q.sum()
        ess.append(1 / np.sum(q**2))
        ent.append(-np.sum(q * np.log(q)))
        drawn.append(np.sum(q * s[i, cand]))
    np.testing.assert_allclose(float(aux["neg_ess"]), np.mean(ess), rtol=1e-4)
    np.testing.assert_allclose(float(aux["neg_entropy"]), np.mean(ent), rtol=1e-4)
    np.testing.assert_allclose(float(aux["neg_sim_drawn"]), np.mean(drawn), rtol=1e-4)
    assert float(aux["neg_collision"]) == 0.0  # supervised candidates: other classes only
    assert float(aux["neg_sim_drawn"]) > float(aux["neg_sim_uniform"])  # harder negatives


@pytest.mark.slow  # tens of seconds of eager draws
def test_sampled_diagnostics_count_the_drawn_negatives():
    z = unit(jax.random.key(6), 30)
    y = np.arange(30) % 3
    _, aux = losses.contrastive_loss_with_aux(
        z, y, jax.random.key(0), setting="ucl", k=4096, diagnostics=True
    )
    # 4096 uniform draws per anchor: the collision share is 1/3 within a few 1e-3.
    np.testing.assert_allclose(float(aux["neg_collision"]), 1 / 3, atol=0.01)
    np.testing.assert_allclose(
        float(aux["neg_sim_drawn"]), float(aux["neg_sim_uniform"]), atol=0.01
    )
    _, hard = losses.contrastive_loss_with_aux(
        z, y, jax.random.key(0), setting="hucl", beta=20.0, k=256, diagnostics=True
    )
    # Hard negatives are the anchor's own latent class more often (the class collision).
    assert float(hard["neg_collision"]) > 0.5 > float(aux["neg_collision"])


# ------------------------------------------------------------------------ SimCLR form


def views_layout(key, b, v):
    return unit(key, b * v), np.tile(np.arange(b), v)


def test_simclr_form_q_negatives_is_sincere_for_three_views():
    z, ids = views_layout(jax.random.key(7), 6, 3)
    got = losses.simclr_form_loss(z, ids, q="negatives")
    want = baselines.sincere(jnp.asarray(z), jnp.asarray(ids), temperature=1.0)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    with pytest.raises(ValueError, match="q='negatives'"):
        losses.simclr_form_loss(z, ids)  # Q = N − 2 = 16, but anchors have 15 negatives


def test_simclr_form_q_negatives_with_label_positives():
    z = unit(jax.random.key(8), 12)
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    got = losses.simclr_form_loss(z, y, q="negatives")
    want = baselines.sincere(jnp.asarray(z), jnp.asarray(y), temperature=1.0)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    with pytest.raises(ValueError, match="q='batch'"):
        losses.simclr_form_loss(z, y)


def test_simclr_form_two_views_q_modes_bit_identical():
    z, ids = views_layout(jax.random.key(9), 5, 2)
    for beta in (0.0, 3.0):
        a = losses.simclr_form_loss(z, ids, beta=beta)
        b = losses.simclr_form_loss(z, ids, beta=beta, q="negatives")
        assert float(a) == float(b)


@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_supervised_simclr_form_by_hand(beta):
    b, v = 6, 2
    z, ids = views_layout(jax.random.key(10), b, v)
    classes = np.array([0, 0, 1, 1, 2, 2])
    labels = np.tile(classes, v)
    got = losses.simclr_form_loss(z, ids, labels=labels, beta=beta, q="negatives")
    s = z.astype(np.float64) @ z.T.astype(np.float64)
    per_anchor = []
    for i in range(b * v):
        neg = labels != labels[i]
        q = np.exp(beta * s[i, neg])
        q /= q.sum()
        mean_neg = np.sum(q * np.exp(s[i, neg]))
        pos = [j for j in range(b * v) if ids[j] == ids[i] and j != i]
        per_anchor.append(np.mean([np.log1p(neg.sum() * mean_neg / np.exp(s[i, j])) for j in pos]))
    np.testing.assert_allclose(float(got), np.mean(per_anchor), rtol=1e-5)
    with pytest.raises(ValueError, match="q='negatives'"):
        losses.simclr_form_loss(z, ids, labels=labels)  # 8 negatives, not N − 2 = 10


def test_simclr_form_diagnostics_and_pair_mean():
    z, ids = views_layout(jax.random.key(11), 6, 2)
    loss, aux = losses.simclr_form_loss_with_aux(z, ids, beta=1.0, diagnostics=True)
    assert float(aux["neg_collision"]) == 0.0 and float(aux["neg_ess"]) <= 10.0
    # Two views: every anchor has one positive, so the two reductions agree.
    pair = losses.simclr_form_loss(z, ids, beta=1.0, reduction="pair_mean")
    np.testing.assert_allclose(float(loss), float(pair), rtol=1e-6)


# ----------------------------------------------------------------- η registry, β schedule


def test_named_hardenings():
    t = jnp.array([[0.2, -0.5, 0.9], [-1.5, 0.1, 0.0]])
    np.testing.assert_allclose(
        hardening.make_eta("exponential", beta=2.0)(t), 2.0 * np.sum(t, -1), rtol=1e-6
    )
    poly = hardening.make_eta("polynomial", epsilon=3.0)(t)
    np.testing.assert_allclose(poly[0], 3.0 * np.sum(np.log(np.asarray(t[0]) + 1)), rtol=1e-6)
    assert poly[1] == -np.inf  # t = −1.5 ≤ −1: a factor max(t + 1, 0)^ε is 0
    trunc = hardening.make_eta("truncated", beta=1.0, threshold=0.5)(t)
    np.testing.assert_allclose(trunc, [0.6, -np.inf], rtol=1e-6)
    hardening.register_eta("double_max", lambda beta=0.0, **_: lambda t: beta * jnp.max(t, -1))
    np.testing.assert_allclose(hardening.make_eta("double_max", beta=2.0)(t), [1.8, 0.2], rtol=1e-6)
    sibling = __name__.rpartition(".")[0] + ".test_loss_options"  # wherever tests/ puts it
    assert hardening.make_eta(f"{sibling}:hook_eta") is not None
    with pytest.raises(ValueError, match="not a registered"):
        hardening.make_eta("cubic")
    with pytest.raises(ValueError, match="beta"):
        hardening.make_eta("exponential", beta=-1.0)
    with pytest.raises(ValueError, match="without ':'"):
        hardening.register_eta("a:b", lambda **_: None)


@pytest.mark.slow  # tens of seconds of eager draws
def test_truncated_sir_draws_only_hard_tuples():
    z = unit(jax.random.key(12), 20)
    y = np.arange(20) % 4
    s = z @ z.T
    eta = hardening.make_eta("truncated", beta=0.0, threshold=0.3)
    idx, _ = hardening.sir_sample(
        jax.random.key(0), s, y[:, None] != y[None, :], 3, eta, num_proposals=64
    )
    drawn = np.take_along_axis(s, np.asarray(idx), axis=1)
    hardest = drawn.max(axis=1)
    # Every anchor whose proposals held a hard enough tuple keeps one.
    assert np.mean(hardest >= 0.3) > 0.9


def test_beta_schedule_values_and_tracing():
    f = jax.jit(
        lambda step: hardening.beta_schedule(
            step, "cosine", beta=10.0, beta_start=2.0, num_steps=100
        )
    )
    np.testing.assert_allclose([f(0), f(50), f(100), f(500)], [2.0, 6.0, 10.0, 10.0], rtol=1e-6)
    lin = hardening.beta_schedule(25, "linear", beta=0.0, beta_start=8.0, num_steps=100)
    np.testing.assert_allclose(lin, 6.0, rtol=1e-6)  # annealed down
    assert hardening.beta_schedule(7, "constant", beta=3.0) == 3.0
    with pytest.raises(ValueError, match="kind"):
        hardening.beta_schedule(0, "step", beta=1.0)
    with pytest.raises(ValueError, match="num_steps"):
        hardening.beta_schedule(0, "linear", beta=1.0, num_steps=0)


# ------------------------------------------------------------------- SupCon contrast_mode


def test_supcon_contrast_mode_one_by_hand():
    b, v, tau = 4, 2, 0.5
    z = np.asarray(jax.random.normal(jax.random.key(13), (b * v, 3)))
    labels = np.tile(np.array([0, 1, 0, 2]), v)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    logits = zn.astype(np.float64) @ zn.T.astype(np.float64) / tau
    per_anchor = []
    for i in range(b):  # first-view anchors only, contrasting against all rows
        others = [a for a in range(b * v) if a != i]
        lse = np.log(np.sum(np.exp(logits[i, others])))
        pos = [p for p in others if labels[p] == labels[i]]
        per_anchor.append(np.mean([lse - logits[i, p] for p in pos]))
    got = baselines.supcon(jnp.asarray(z), jnp.asarray(labels), tau, contrast_mode="one")
    np.testing.assert_allclose(float(got), np.mean(per_anchor), rtol=1e-5)
    all_mode = baselines.supcon(jnp.asarray(z), jnp.asarray(labels), tau)
    assert abs(float(all_mode) - float(got)) > 1e-4
    one_view = baselines.supcon(
        jnp.asarray(z), jnp.asarray(labels), tau, contrast_mode="one", num_views=1
    )
    np.testing.assert_allclose(float(one_view), float(all_mode), rtol=1e-6)
    with pytest.raises(ValueError, match="contrast_mode"):
        baselines.supcon(jnp.asarray(z), jnp.asarray(labels), tau, contrast_mode="two")
    with pytest.raises(ValueError, match="num_views"):
        baselines.supcon(jnp.asarray(z), jnp.asarray(labels), tau, contrast_mode="one", num_views=3)


def test_with_aux_forms_and_the_deprecated_return_aux_alias():
    z, ids = views_layout(jax.random.key(12), 4, 2)
    y = np.arange(8) % 2
    key = jax.random.key(0)
    kw = dict(setting="hscl", beta=2.0, k=8)
    loss = losses.contrastive_loss(z, y, key, **kw)
    loss_aux, aux = losses.contrastive_loss_with_aux(z, y, key, diagnostics=True, **kw)
    assert loss.shape == () and float(loss) == float(loss_aux)
    assert {"num_dropped_anchors", "num_fallback", "neg_collision"} <= set(aux)
    with pytest.warns(DeprecationWarning, match="contrastive_loss_with_aux"):
        old_loss, old_aux = losses.contrastive_loss(
            z, y, key, return_aux=True, return_diagnostics=True, **kw
        )
    assert float(old_loss) == float(loss) and set(old_aux) == set(aux)
    assert all(float(old_aux[name]) == float(aux[name]) for name in aux)

    loss = losses.simclr_form_loss(z, ids, beta=1.0)
    loss_aux, aux = losses.simclr_form_loss_with_aux(z, ids, beta=1.0)
    assert float(loss) == float(loss_aux) and set(aux) == {"num_dropped_anchors", "num_fallback"}
    with pytest.warns(DeprecationWarning, match="simclr_form_loss_with_aux"):
        old_loss, _ = losses.simclr_form_loss(z, ids, beta=1.0, return_aux=True)
    assert float(old_loss) == float(loss)


def test_the_loss_only_twins_take_the_full_functions_options():
    z, ids = views_layout(jax.random.key(13), 3, 2)
    y = np.arange(6) % 3
    # Every option of the full function, with its default, reaches the twin's loss.
    kw = dict(setting="hucl", beta=1.5, k=4, temperature=0.5, exclude_anchor=True)
    full, _ = losses.contrastive_loss_with_aux(z, y, jax.random.key(1), **kw)
    assert float(losses.contrastive_loss(z, y, jax.random.key(1), **kw)) == float(full)
    with pytest.raises(TypeError, match="contrastive_loss: got an unexpected keyword .*'betta'"):
        losses.contrastive_loss(z, y, jax.random.key(1), setting="hscl", betta=1.0)
    with pytest.raises(TypeError, match="contrastive_loss: missing a required argument: 'setting'"):
        losses.contrastive_loss(z, y, jax.random.key(1))
    with pytest.raises(TypeError, match=r"contrastive_loss_with_aux\(\.\.\., diagnostics=True\)"):
        losses.contrastive_loss(z, y, jax.random.key(1), setting="scl", diagnostics=True)
    with pytest.raises(TypeError, match="simclr_form_loss: got an unexpected keyword .*'qq'"):
        losses.simclr_form_loss(z, ids, qq="batch")
    full, _ = losses.simclr_form_loss_with_aux(z, ids, beta=2.0, q="negatives")
    assert float(losses.simclr_form_loss(z, ids, beta=2.0, q="negatives")) == float(full)
