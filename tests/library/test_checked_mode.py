"""Checked mode (`hncl_jax.checks`): traced invalid arguments raise under `checks.checked`.

Without checked mode the same jitted calls compile with no check and return the
meaningless values the docstrings describe; with it each case raises
`InvalidInputError` naming the argument. `nc_metrics` flags absent classes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hncl_jax import baselines, checks, geometry, hardening, losses

KEY = jax.random.key(0)
Z = geometry.normalize(jax.random.normal(jax.random.key(1), (12, 3)), "unit_sphere")
Y = jnp.arange(12) % 3


def hscl(beta, z=Z):
    return losses.contrastive_loss(z, Y, KEY, setting="hscl", beta=beta, k=8)


def reweighted(tau_plus):
    return losses.contrastive_loss(
        Z, Y, None, setting="hucl", beta=1.0, estimator="reweighted", tau_plus=tau_plus
    )


def infonce_sum(alpha):
    return losses.contrastive_loss(Z, Y, KEY, setting="hscl", psi="infonce_sum", alpha=alpha, k=8)


@pytest.mark.parametrize(
    "fn,args,match",
    [
        (hscl, (jnp.nan,), r"contrastive_loss: beta=nan must be ≥ 0.0 and < inf"),
        (hscl, (-1.0,), r"contrastive_loss: beta=-1.0 must be ≥ 0.0"),
        (hscl, (2.0, Z.at[0, 0].set(jnp.inf)), r"contrastive_loss: z holds 1 non-finite"),
        (reweighted, (1.0,), r"contrastive_loss: tau_plus=1.0 must be ≥ 0.0 and < 1.0"),
        (reweighted, (2.0,), r"tau_plus=2.0 must be"),
        (infonce_sum, (-1.0,), r"contrastive_loss: alpha=-1.0 must be > 0.0"),
        (
            lambda y: baselines.clop_loss(Z, y, jnp.eye(3)),
            (Y.at[0].set(3),),
            r"clop_loss: labels must lie in \[-1, 3\); found labels from 0 to 3",
        ),
        (
            lambda alpha: hardening.psi(jnp.zeros((4, 2)), "infonce_sum", alpha),
            (0.0,),
            r"psi: alpha=0.0 must be > 0.0",
        ),
    ],
)
def test_invalid_traced_arguments_raise_in_checked_mode(fn, args, match):
    with pytest.raises(checks.InvalidInputError, match=match):
        checks.checked(fn)(*args)
    jax.jit(fn)(*args)  # unchecked: compiles and runs, no error (the documented garbage)


def test_checked_mode_gives_the_unchecked_values_on_valid_input():
    for fn, arg in ((hscl, 2.0), (reweighted, 0.1), (infonce_sum, 0.5)):
        np.testing.assert_allclose(checks.checked(fn)(arg), jax.jit(fn)(arg), rtol=1e-6)
    hidden = Y.at[0].set(-1)  # -1 marks an unlabelled row: valid
    got = checks.checked(lambda y: baselines.clop_loss(Z, y, jnp.eye(3)))(hidden)
    np.testing.assert_allclose(got, baselines.clop_loss(Z, hidden, jnp.eye(3)), rtol=1e-6)
    assert not checks.enabled()  # only while tracing inside checked


def test_nc_metrics_counts_absent_classes_and_refuses_float_labels():
    labels = jnp.array([0, 0, 2, 2])  # class 1 of 3 is missing
    z = jnp.eye(3)[labels]
    fn = jax.jit(lambda z, y: geometry.nc_metrics(z, y, 3, return_absent=True))
    assert int(fn(z, labels)["absent_classes"]) == 1
    assert int(fn(jnp.eye(3), jnp.arange(3))["absent_classes"]) == 0
    assert set(geometry.nc_metrics(z, labels, 3)) == {
        "zero_sum",
        "unit_norm",
        "equal_inner_product",
        "within_class_variance",
    }
    with pytest.raises(ValueError, match="labels must be integer class ids; got dtype float32"):
        geometry.nc_metrics(z, labels.astype(jnp.float32), 3)
