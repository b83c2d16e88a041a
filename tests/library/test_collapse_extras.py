"""Papyan et al.'s NC1-NC4, RankMe and the per-class values against NumPy formulas."""

import jax
import numpy as np
import pytest

from hncl_jax import evaluation, geometry

# Jitted as `evaluation` runs it (eagerly each call costs ~10 s of op-by-op dispatch).
papyan_nc = jax.jit(geometry.papyan_nc, static_argnums=2)


def numpy_papyan(z, y, c, ridge=1e-4):
    z = z.astype(np.float64)
    mu = np.stack([z[y == k].mean(0) for k in range(c)])
    mg = mu.mean(0)
    m = mu - mg
    n = len(y)
    sw = (z - mu[y]).T @ (z - mu[y]) / n
    sb = m.T @ m / c
    nc1 = np.trace(sw @ np.linalg.pinv(sb, rcond=1e-6)) / c
    norms = np.linalg.norm(m, axis=1)
    cos = (m / norms[:, None]) @ (m / norms[:, None]).T
    off = ~np.eye(c, dtype=bool)
    xc = z - z.mean(0)
    onehot = np.eye(c)[y]
    yc = onehot - onehot.mean(0)
    gram = xc.T @ xc / n
    d = z.shape[1]
    w = np.linalg.solve(gram + ridge * np.trace(gram) / d * np.eye(d), (yc.T @ xc / n).T).T
    b = onehot.mean(0) - w @ z.mean(0)
    nc3 = np.sum((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2)
    ncc = np.argmin(((z[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)
    nc4 = np.mean(np.argmax(z @ w.T + b, axis=1) != ncc)
    return {
        "nc1": nc1,
        "nc2_equinorm": norms.std() / norms.mean(),
        "nc2_equiangular": cos[off].std(),
        "nc2_maxangle": np.mean(np.abs(cos[off] + 1 / (c - 1))),
        "nc3": nc3,
        "nc4": nc4,
    }


def blobs(seed, c=4, d=6, per_class=25, spread=0.6):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((c, d))
    y = np.repeat(np.arange(c), per_class)
    z = centres[y] + spread * rng.standard_normal((len(y), d))
    return z.astype(np.float32), y


def test_papyan_matches_numpy():
    z, y = blobs(0, spread=1.5)
    got = papyan_nc(z, y, 4)
    want = numpy_papyan(z, y, 4)
    for key, value in want.items():
        np.testing.assert_allclose(float(got[key]), value, rtol=2e-3, atol=1e-6, err_msg=key)
    assert 0 < want["nc4"] < 0.5  # overlapping blobs: the two classifiers disagree somewhere


@pytest.mark.parametrize("c, d", [(4, 3), (5, 8)])
def test_papyan_is_zero_at_neural_collapse(c, d):
    etf = np.asarray(geometry.simplex_etf(c, d))
    y = np.repeat(np.arange(c), 6)
    got = papyan_nc(etf[y], y, c)
    for key, value in got.items():
        assert abs(float(value)) < 1e-4, key


def test_papyan_skips_absent_classes():
    z, y = blobs(1, c=3)
    got = papyan_nc(z, y, 5)  # classes 3 and 4 have no row
    want = numpy_papyan(z, y, 3)
    for key in ("nc1", "nc2_equinorm", "nc2_maxangle", "nc3", "nc4"):
        np.testing.assert_allclose(float(got[key]), want[key], rtol=2e-3, atol=1e-6, err_msg=key)


def test_rankme():
    rng = np.random.default_rng(2)
    u, _ = np.linalg.qr(rng.standard_normal((40, 5)))
    v, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    sigma = np.array([5.0, 3.0, 1.0, 0.5, 0.0])
    x = (u * sigma) @ v.T
    p = sigma / sigma.sum() + 1e-7
    np.testing.assert_allclose(float(geometry.rankme(x)), np.exp(-np.sum(p * np.log(p))), rtol=1e-4)
    np.testing.assert_allclose(float(geometry.rankme(u * 2.0)), 5.0, rtol=1e-4)
    with pytest.raises(ValueError, match="matrix"):
        geometry.rankme(np.ones(3))


def test_per_class_stats():
    z, y = blobs(3)
    got = geometry.per_class_stats(z, y, 5)
    for k in range(4):
        zk = z[y == k]
        mu = zk.mean(0)
        np.testing.assert_allclose(
            float(got["within_class_variance"][k]), np.mean(np.sum((zk - mu) ** 2, 1)), rtol=1e-4
        )
        np.testing.assert_allclose(float(got["mean_norm"][k]), np.linalg.norm(mu), rtol=1e-5)
    assert float(got["count"][4]) == 0 and float(got["within_class_variance"][4]) == 0


def test_collapse_extras_keys_and_limit():
    z, y = blobs(4)
    z = np.asarray(geometry.normalize(z, "unit_sphere"))
    spectrum = np.asarray(geometry.dc_spectrum(z, y, 4))
    out = evaluation.collapse_extras(z, y, 4, spectrum, "nc/train/z/")
    assert {f"nc/train/z/{k}" for k in ("nc1", "nc4", "rankme", "dc_sv_min")} <= set(out)
    assert out["nc/train/z/dc_sv_min"] == float(spectrum[2])
    assert out["nc/train/z/class3/mean_norm"] > 0 and "nc/train/z/dc_spectrum/3" in out
    few = evaluation.collapse_extras(z, y, 4, spectrum, per_class_limit=3)
    assert not any("class" in k or "dc_spectrum" in k for k in few)


def test_evaluate_representations_extended_adds_keys_only():
    z, y = blobs(5)
    z = np.asarray(geometry.normalize(z, "unit_sphere"))
    base, _ = evaluation.evaluate_representations(
        z, z, y, z, z, y, 4, knn_k=(5,), knn_weighted=(False,)
    )
    ext, _ = evaluation.evaluate_representations(
        z, z, y, z, z, y, 4, knn_k=(5,), knn_weighted=(False,), extended=True
    )
    assert set(base) < set(ext)
    assert all(ext[k] == v for k, v in base.items())
    assert {"nc/test/z/nc1", "nc/train/h/rankme", "nc/test/z/class0/mean_norm"} <= set(ext)
