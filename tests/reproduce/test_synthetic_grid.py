"""Tests of `hncl_jax.reproduce.synthetic_grid`: the runs, bounds and seeds of the vmapped synthetic
grid, its config checks, and its equality with the trainer's single runs."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from hncl_jax import data, geometry, models, train
from hncl_jax.reproduce import synthetic_grid
from hncl_jax.train import reporting


def grid_config(
    betas=(5.0, 50.0),
    settings=("scl", "hscl", "ucl"),
    positives=("labels",),
    *,
    seeds=(),
    num_epochs=2,
    k=8,
    batch_size=512,
    dim=16,
    per_class=10,
    hidden_sizes=(8,),
    eval_every=1,
):
    """`synthetic_grid.get_config()` at test size."""
    c = synthetic_grid.get_config()
    c.grid.betas, c.grid.settings, c.grid.positives = betas, settings, positives
    c.grid.seeds = seeds
    c.num_epochs, c.loss.k, c.batch_size, c.eval_every_epochs = (
        num_epochs,
        k,
        batch_size,
        eval_every,
    )
    c.dataset_kwargs.dim, c.dataset_kwargs.per_class = dim, per_class
    c.model_kwargs.hidden_sizes = hidden_sizes
    return c


class SyntheticGridTest(chex.TestCase):
    def test_runs_and_bounds(self):
        res = synthetic_grid.train_grid(grid_config())
        runs = [(r["setting"], r["beta"]) for r in res.rows]
        assert runs == [("scl", 0.0), ("hscl", 5.0), ("hscl", 50.0), ("ucl", 0.0)]
        assert res.rows[0]["bound"] == geometry.scl_lower_bound(3, 8)
        assert res.rows[3]["bound"] == geometry.ucl_lower_bound(3, 8)
        chex.assert_shape(res.z, (4, 30, 2))
        chex.assert_shape(res.loss_curves, (4, 2))
        chex.assert_shape(res.nc_curves["zero_sum"], (4, 2))
        np.testing.assert_allclose(
            res.nc_curves["zero_sum"][:, -1], [r["zero_sum"] for r in res.rows], rtol=1e-5
        )
        assert np.all(np.linalg.norm(res.z, axis=-1) <= 1 + 1e-6)
        assert [r["seed"] for r in res.rows] == [0] * 4
        assert res.rows[0]["gap"] == res.rows[0]["final_loss"] - res.rows[0]["bound"]

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="setting"):
            synthetic_grid.train_grid(grid_config(settings=("hcl",)))
        with pytest.raises(ValueError, match="positives"):
            synthetic_grid.train_grid(grid_config(positives=("views",)))
        with pytest.raises(ValueError, match="eval_every"):
            synthetic_grid.train_grid(grid_config(num_epochs=10, eval_every=3))
        with pytest.raises(ValueError, match="betas"):
            synthetic_grid.train_grid(grid_config(betas=(-1.0,)))
        with pytest.raises(ValueError, match="no runs"):
            synthetic_grid.train_grid(grid_config(settings=("hscl",), betas=()))
        with pytest.raises(ValueError, match="grid"):
            synthetic_grid.train_grid(tiny_trainer_config())
        c = grid_config()
        c.optimizer.name = "adagrad"  # the trainer's own checks apply to every run
        with pytest.raises(ValueError, match="optimizer.name"):
            synthetic_grid.train_grid(c)

    def test_seeds_are_separate_programs_of_the_same_runs(self):
        c = grid_config(settings=("hscl",), betas=(5.0,), seeds=(0, 1))
        res = synthetic_grid.train_grid(c)
        assert [(r["seed"], r["setting"]) for r in res.rows] == [(0, "hscl"), (1, "hscl")]
        assert sorted(res.z_init_by_seed) == [0, 1]
        np.testing.assert_array_equal(res.z_init, res.z_init_by_seed[0])
        assert not np.array_equal(res.z_init_by_seed[0], res.z_init_by_seed[1])
        one = synthetic_grid.train_grid(grid_config(settings=("hscl",), betas=(5.0,), seeds=(1,)))
        np.testing.assert_array_equal(one.z[0], res.z[1])
        np.testing.assert_array_equal(one.loss_curves[0], res.loss_curves[1])
        assert one.rows[0] == res.rows[1]


def tiny_trainer_config():
    """A trainer config without a `grid` section."""
    return synthetic_grid.run_config(grid_config(), synthetic_grid.Run(0, "labels", "scl", 0.0))


def test_run_config_is_the_trainer_config_of_one_run():
    c = grid_config()
    run = synthetic_grid.Run(3, "noise_views", "hucl", 30.0)
    rc = synthetic_grid.run_config(c, run)
    assert "grid" not in rc and "grid" in c
    assert (rc.seed, rc.loss.name, rc.loss.beta) == (3, "hucl", 30.0)
    assert (rc.positives, rc.views) == ("views", "noise")
    assert synthetic_grid.grid_runs(c) == [
        synthetic_grid.Run(0, "labels", "scl", 0.0),
        synthetic_grid.Run(0, "labels", "hscl", 5.0),
        synthetic_grid.Run(0, "labels", "hscl", 50.0),
        synthetic_grid.Run(0, "labels", "ucl", 0.0),
    ]


@pytest.mark.slow
def test_vmapped_grid_equals_the_single_runs(tmp_path):
    c = grid_config(
        betas=(10.0,),
        settings=("hscl", "hucl"),
        positives=("labels", "noise_views"),
        num_epochs=3,
        k=16,
        batch_size=60,
        dim=48,
        per_class=100,
        hidden_sizes=(32,),
        eval_every=0,
    )
    res = synthetic_grid.train_grid(c)
    model = models.create_model("mlp", embed_dim=2, hidden_sizes=(32,))
    images = jnp.asarray(data.load_dataset("hn_synthetic", "train", dim=48).images)
    runs = [(r["setting"], r["positives"]) for r in res.rows]
    for setting, positives in [("hscl", "labels"), ("hucl", "noise_views")]:
        rc = synthetic_grid.run_config(c, synthetic_grid.Run(0, positives, setting, 10.0))
        rc.eval_every_epochs = rc.checkpoint_every_epochs = 3
        rc.plots, rc.linear_probe = False, "off"
        workdir = str(tmp_path / f"{setting}_{positives}")
        state = train.train_and_evaluate(rc, workdir)
        _, f = model.apply({"params": state.params}, images, train=False)
        i = runs.index((setting, positives))
        np.testing.assert_allclose(res.z[i], geometry.normalize(f, "unit_ball"), atol=2e-5)
        epoch_loss = [
            r["train/epoch_loss"] for r in reporting.read_metrics(workdir) if "epoch" in r
        ]
        np.testing.assert_allclose(res.loss_curves[i, -1], epoch_loss[-1], rtol=1e-5)
