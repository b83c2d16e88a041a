"""The loss options of `config.loss` reach the losses through the trainer (tiny runs).

Each run is a real `train.train_and_evaluate` on a few steps of the synthetic set. A spy
records the keyword arguments the trainer's objective passes to the library loss, so
each test checks that the config's value arrives; the losses' own behaviour for each
option is tested numerically in tests/library/test_losses.py and tests/library/test_baselines.py.
"""

import chex
import jax
import numpy as np
import pytest

from configs import default
from hncl_jax import baselines, hardening, losses, train
from hncl_jax.train import reporting, validation
from hncl_jax.train import step as step_lib
from tests.conftest import params_of, tiny_synthetic


def tiny(**overrides):
    """One epoch of 2 steps (120 examples, batch 60), every step logged."""
    fixed = dict(num_epochs=1, eval_every_epochs=1, checkpoint_every_epochs=1, log_every_steps=1)
    return tiny_synthetic(**{**fixed, "dataset_kwargs.max_examples": 120, **overrides})


def spy(monkeypatch, module, name):
    """Replaces module.name by a wrapper that records every call's keyword arguments."""
    calls = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def train_rows(workdir):
    return [r for r in reporting.read_metrics(str(workdir)) if "train/loss" in r]


def test_reweighted_options_reach_the_loss(tmp_path, monkeypatch):
    calls = spy(monkeypatch, losses, "contrastive_loss_with_aux")
    c = tiny(
        **{
            "loss.name": "hucl",
            "loss.beta": 2.0,
            "loss.estimator": "reweighted",
            "loss.tau_plus": 0.1,
            "loss.grad_through_weights": True,
            "loss.hn_temperature": 0.5,
            "loss.reduction": "pair_mean",
        }
    )
    train.train_and_evaluate(c, str(tmp_path))
    kw = calls[0]
    assert kw["tau_plus"] == 0.1 and kw["grad_through_weights"] is True
    assert kw["temperature"] == 0.5 and kw["reduction"] == "pair_mean"
    rows = train_rows(tmp_path)
    assert all(np.isfinite(r["train/loss"]) for r in rows)
    # Reweighted diagnostics: the q-expected collision share and the tilted ESS.
    assert 0.0 < rows[0]["train/hn_collision"] < 1.0
    assert 1.0 <= rows[0]["train/hn_ess"] <= 60.0
    # τ ≠ 1 and τ⁺ > 0 leave the Theorem 3 value out (it is not their minimum).
    evals = [r for r in reporting.read_metrics(str(tmp_path)) if "nc/train/z/zero_sum" in r]
    assert evals and not any("train/theorem_bound" in r for r in evals)
    # Every evaluation logs the collapse metrics beside the paper's (collapse_extras).
    extras = {"nc/train/z/nc1", "nc/test/z/nc4", "nc/train/h/rankme", "nc/test/z/rankme"}
    assert extras | {"nc/train/z/class2/within_class_variance"} <= set(evals[-1])


@pytest.mark.slow
def test_beta_schedule_follows_the_step_without_recompiling(tmp_path, monkeypatch):
    monkeypatch.setattr(step_lib, "train_step", chex.assert_max_traces(step_lib.train_step, n=1))
    c = tiny(
        **{
            "loss.name": "hscl",
            "loss.beta": 0.0,
            "loss.beta_schedule": "cosine",
            "loss.beta_start": 8.0,
            "loss.beta_schedule_steps": 3,
            "num_epochs": 2,
        }
    )
    train.train_and_evaluate(c, str(tmp_path))
    rows = train_rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:  # the row of step s holds the metrics of the step at state.step s - 1
        want = hardening.beta_schedule(
            r["step"] - 1, "cosine", beta=0.0, beta_start=8.0, num_steps=3
        )
        np.testing.assert_allclose(r["train/beta"], float(want), rtol=1e-6)
    assert rows[0]["train/beta"] == 8.0 and rows[-1]["train/beta"] == 0.0


@pytest.mark.slow
def test_sir_eta_by_name_and_by_hook(tmp_path, monkeypatch):
    calls = spy(monkeypatch, losses, "contrastive_loss_with_aux")
    c = tiny(
        **{
            "loss.name": "hucl",
            "loss.beta": 3.0,
            "loss.k": 4,
            "loss.eta": "truncated",
            "loss.eta_threshold": 0.2,
            "loss.num_proposals": 8,
        }
    )
    train.train_and_evaluate(c, str(tmp_path / "named"))
    kw = calls[0]
    assert kw["num_proposals"] == 8 and callable(kw["eta_fn"])
    t = jax.numpy.array([[0.1, 0.3, -0.5, 0.0], [0.1, 0.1, 0.1, 0.1]])
    np.testing.assert_allclose(kw["eta_fn"](t), [3.0 * -0.1, -np.inf])
    rows = train_rows(tmp_path / "named")
    assert "train/hn_collision" in rows[0] and "train/hn_ess" not in rows[0]  # SIR: no q_i

    calls.clear()
    c.loss.eta = f"{__name__}:hook_eta"  # this module, wherever tests/ puts it
    train.train_and_evaluate(c, str(tmp_path / "hook"))
    assert calls[0]["eta_fn"] is hook_eta


def hook_eta(t):
    """A user's log η for the hook test: exp(2 Σ_m t_m)."""
    return 2.0 * jax.numpy.sum(t, axis=-1)


def test_supervised_simclr_form_through_the_trainer(tmp_path, monkeypatch):
    calls = spy(monkeypatch, losses, "simclr_form_loss_with_aux")
    c = tiny(
        **{
            "loss.name": "simclr_form",
            "loss.beta": 1.0,
            "positives": "views",
            "views": "noise",
            "loss.supervised_negatives": True,
            "loss.simclr_q": "negatives",
        }
    )
    train.train_and_evaluate(c, str(tmp_path))
    kw = calls[0]
    assert kw["labels"] is not None and kw["q"] == "negatives"
    row = train_rows(tmp_path)[0]
    # Other-class negatives only: no negative shares the anchor's class.
    assert row["train/hn_collision"] == 0.0


@pytest.mark.slow
def test_baseline_hyperparameters_reach_the_loss(tmp_path, monkeypatch):
    calls = spy(monkeypatch, baselines, "baseline_loss")
    views = {"positives": "views", "views": "noise"}
    cases = {
        "dclw": ({"loss.sigma": 2.0}, {"sigma": 2.0}),
        "vicreg": (
            {
                "loss.vicreg_sim_weight": 1.0,
                "loss.vicreg_var_weight": 2.0,
                "loss.vicreg_cov_weight": 3.0,
            },
            {"sim_weight": 1.0, "var_weight": 2.0, "cov_weight": 3.0},
        ),
        "barlow_twins": (
            {"loss.barlow_off_diagonal_weight": 0.5},
            {"off_diagonal_weight": 0.5},
        ),
        "supcon": ({"loss.contrast_mode": "one"}, {"contrast_mode": "one", "num_views": 2}),
    }
    for name, (fields, expected) in cases.items():
        calls.clear()
        c = tiny(**{"loss.name": name, **views, **fields})
        train.train_and_evaluate(c, str(tmp_path / name))
        assert {k: calls[0][k] for k in expected} == expected
        assert all(np.isfinite(r["train/loss"]) for r in train_rows(tmp_path / name))


@pytest.mark.slow
def test_diagnostics_leave_training_bit_identical(tmp_path):
    on = train.train_and_evaluate(
        tiny(**{"loss.name": "hucl", "loss.beta": 5.0}), str(tmp_path / "on")
    )
    off = train.train_and_evaluate(
        tiny(**{"loss.name": "hucl", "loss.beta": 5.0, "loss.diagnostics": False}),
        str(tmp_path / "off"),
    )
    jax.tree.map(np.testing.assert_array_equal, params_of(on), params_of(off))
    row_on, row_off = train_rows(tmp_path / "on")[0], train_rows(tmp_path / "off")[0]
    assert row_on["train/loss"] == row_off["train/loss"]
    assert {"train/hn_collision", "train/hn_ess", "train/hn_entropy"} <= set(row_on)
    assert not any(k.startswith("train/hn_") for k in row_off)
    # UCL draws from the whole batch: about 1/C of the negatives share the latent class.
    assert 0.05 < row_on["train/hn_collision"] < 0.7


@pytest.mark.parametrize(
    "fields, pattern",
    [
        ({"loss.tau_plus": 1.0}, "tau_plus"),
        ({"loss.tau_plus": 0.1}, "reweighted"),  # sampled estimator
        ({"loss.grad_through_weights": True}, "grad_through_weights"),
        ({"loss.eta": "cubic"}, "loss.eta"),
        ({"loss.eta": "no_such_module_xyz:f"}, "cannot import"),
        ({"loss.eta": "hncl_jax.hardening:nothing_here"}, "no attribute"),
        ({"loss.name": "scl", "loss.eta": "polynomial"}, "hscl or hucl"),
        ({"loss.eta": "truncated", "loss.eta_threshold": float("nan")}, "eta_threshold"),
        ({"loss.beta_schedule": "step"}, "beta_schedule"),
        ({"loss.beta_schedule": "linear", "loss.beta_schedule_steps": 0}, "beta_schedule_steps"),
        ({"loss.beta_schedule": "linear", "loss.beta_start": -1.0}, "beta_start"),
        ({"loss.name": "scl", "loss.beta_schedule": "linear"}, "does not read β"),
        ({"loss.hn_temperature": 0.0}, "hn_temperature"),
        ({"loss.reduction": "sum"}, "reduction"),
        ({"loss.simclr_q": "all"}, "simclr_q"),
        ({"loss.supervised_negatives": True}, "simclr_form"),
        ({"loss.name": "simclr_form"}, "simclr_q"),  # label positives with Q = N - 2
        ({"loss.sigma": -1.0}, "sigma"),
        ({"loss.vicreg_cov_weight": -1.0}, "vicreg_cov_weight"),
        ({"loss.barlow_off_diagonal_weight": float("inf")}, "barlow_off_diagonal_weight"),
        ({"loss.contrast_mode": "two"}, "contrast_mode"),
    ],
)
def test_bad_loss_options_are_refused(fields, pattern):
    c = default.get_config()
    for k, v in fields.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    with pytest.raises(validation.ConfigError, match=pattern):
        validation.validate_config(c)


def test_configs_without_the_new_fields_read_the_no_op_defaults():
    c = default.get_config()
    for name in validation.LOSS_OPTION_DEFAULTS:
        assert validation.loss_option(c, name) == validation.LOSS_OPTION_DEFAULTS[name]
        del c.loss[name]
        assert validation.loss_option(c, name) == validation.LOSS_OPTION_DEFAULTS[name]
    validation.validate_config(c)


def test_pair_mean_reduction_reaches_the_trainers_objective():
    """`loss.reduction="pair_mean"` (the HN code's mean over all pairs) with the default
    sampled estimator: the trainer's objective is the library loss with that reduction,
    and on an unbalanced batch it differs from the default mean over anchors."""
    labels = jax.numpy.array([0, 0, 0, 0, 1, 1, 2, 2, 2])  # classes of 4, 2 and 3 members
    z = jax.random.normal(jax.random.key(0), (9, 2))
    z = z / jax.numpy.linalg.norm(z, axis=-1, keepdims=True)
    key, protos = jax.random.key(1), jax.numpy.zeros((1, 2))

    def objective_value(reduction):
        c = default.get_config()
        c.loss.update(name="hscl", beta=2.0, k=8, reduction=reduction, diagnostics=False)
        validation.validate_config(c)
        loss, _ = train.make_objective(c, num_classes=3)(z, z, labels, labels, labels, key, protos)
        return float(loss)

    want = losses.contrastive_loss(
        z, labels, key, setting="hscl", beta=2.0, k=8, reduction="pair_mean"
    )
    np.testing.assert_allclose(objective_value("pair_mean"), float(want), rtol=1e-6)
    assert abs(objective_value("pair_mean") - objective_value("anchor_mean")) > 1e-3
