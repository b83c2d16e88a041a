"""Tests of `hncl_jax.sweep`: grid naming and parsing, resumable `run_grid`, the vmapped grid."""

import json
import os

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic
from hncl_jax import data, geometry, models, reporting, sweep, train


def tiny_config(**overrides):
    """configs/synthetic.py at test size: 300 examples in R^48, one hidden layer of 32."""
    c = synthetic.get_config("smoke")
    c.dataset_kwargs.max_examples = None
    c.dataset_kwargs.dim = 48
    c.model_kwargs.hidden_sizes = (32,)
    c.batch_size = 60
    c.num_epochs = 3
    c.eval_every_epochs = 3
    c.checkpoint_every_epochs = 3
    c.loss.k = 16
    c.plots = False
    c.linear_probe = "off"
    return sweep.apply_assignments(c, overrides)


def fake_train(calls):
    """A stand-in for train_and_evaluate that records its calls and writes one eval row."""

    def train_fn(config, workdir):
        calls.append((config.loss.name, config.loss.beta, workdir))
        writer = reporting.MetricWriter(workdir)
        writer.write_scalars(1, {"epoch": config.num_epochs, "train/epoch_loss": config.loss.beta})
        writer.close()

    return train_fn


# --------------------------------------------------------------------------- naming, parsing
def test_run_names_follow_the_grid_order_and_format_values():
    combos = sweep.expand_grid({"loss.name": ["scl", "hscl"], "loss.beta": [0.0, 10.0, 2.5]})
    assert len(combos) == 6
    assert combos[1] == {"loss.name": "scl", "loss.beta": 10.0}  # last field fastest
    names = [sweep.run_name(a) for a in combos]
    assert names[:3] == [
        "loss.name=scl,loss.beta=0",
        "loss.name=scl,loss.beta=10",
        "loss.name=scl,loss.beta=2.5",
    ]
    assert len(set(names)) == len(names)
    assert sweep.run_name({"init_from": "/a/b c"}) == "init_from=_a_b_c"
    assert sweep.run_name({"knn_k": (5, 200), "plots": True}) == "knn_k=5+200,plots=True"
    assert sweep.run_name({}) == "base"


def test_long_run_names_are_cut_and_stay_unique():
    a = sweep.run_name({"init_from": "x" * 300 + "1"})
    b = sweep.run_name({"init_from": "x" * 300 + "2"})
    assert len(a) <= 180 and len(b) <= 180 and a != b


def test_bad_grids_raise_value_errors():
    c = tiny_config()
    with pytest.raises(ValueError, match="non-empty list"):
        sweep.expand_grid({"loss.beta": []})
    with pytest.raises(ValueError, match="non-empty list"):
        sweep.expand_grid({"loss.name": "scl"})
    with pytest.raises(ValueError, match="no field 'betta'"):
        sweep.apply_assignments(c, {"loss.betta": 1.0})
    with pytest.raises(ValueError, match="no section 'los'"):
        sweep.apply_assignments(c, {"los.beta": 1.0})
    with pytest.raises(ValueError, match="must look like"):
        sweep.parse_grid_flag(c, "loss.beta")
    with pytest.raises(ValueError, match="is a float"):
        sweep.parse_grid_flag(c, "loss.beta=ten")
    with pytest.raises(ValueError, match="duplicate run names"):
        sweep.plan_grid(c, {"loss.beta": [1.0, 1]}, "/tmp/unused")


def test_grid_flags_are_parsed_to_the_field_types():
    c = tiny_config()
    assert sweep.parse_grid_flag(c, "loss.beta=0,10") == ("loss.beta", [0.0, 10.0])
    assert sweep.parse_grid_flag(c, "loss.k=8,16") == ("loss.k", [8, 16])
    assert sweep.parse_grid_flag(c, "loss.name=scl,hscl") == ("loss.name", ["scl", "hscl"])
    assert sweep.parse_grid_flag(c, "plots=true,0") == ("plots", [True, False])
    assert sweep.parse_grid_flag(c, "knn_k=(5,200)|(5,)") == ("knn_k", [(5, 200), (5,)])
    assert isinstance(sweep.parse_grid_flag(c, "loss.beta=3")[1][0], float)


def test_apply_assignments_copies_the_config():
    c = tiny_config()
    d = sweep.apply_assignments(c, {"loss.beta": 30, "loss.name": "hucl"})
    assert (c.loss.beta, c.loss.name) == (0.0, "scl")
    assert (d.loss.beta, d.loss.name) == (30.0, "hucl")
    assert isinstance(d.loss.beta, float)


# --------------------------------------------------------------------------- run_grid
def test_run_grid_skips_finished_runs_and_retrains_changed_ones(tmp_path):
    calls = []
    grid = {"loss.name": ["hscl", "hucl"], "loss.beta": [0.0, 10.0]}
    rows = sweep.run_grid(tiny_config(), grid, str(tmp_path), train_fn=fake_train(calls))
    assert len(calls) == 4 and len(rows) == 4
    assert rows[3]["run"] == "loss.name=hucl,loss.beta=10"
    assert rows[3]["loss.beta"] == 10.0 and rows[3]["train/epoch_loss"] == 10.0
    assert sorted(os.listdir(tmp_path)) == sorted([r["run"] for r in rows] + ["results.csv"])
    again = sweep.run_grid(tiny_config(), grid, str(tmp_path), train_fn=fake_train(calls))
    assert len(calls) == 4  # nothing retrained
    assert again == rows
    assert [r["run"] for r in sweep.load_table(str(tmp_path))] == sorted(r["run"] for r in rows)
    # A changed config (more epochs) goes back to the trainer, which resumes the workdirs.
    sweep.run_grid(tiny_config(num_epochs=5), grid, str(tmp_path), train_fn=fake_train(calls))
    assert len(calls) == 8
    assert calls[4][2] == calls[0][2]


@pytest.mark.slow
def test_run_grid_trains_resumes_and_skips_with_the_real_trainer(tmp_path):
    calls = []

    def counting_train(config, workdir):
        calls.append(workdir)
        return train.train_and_evaluate(config, workdir)

    grid = {"loss.name": ["hscl"], "loss.beta": [0.0, 10.0]}
    rows = sweep.run_grid(tiny_config(), grid, str(tmp_path), train_fn=counting_train)
    assert len(calls) == 2
    assert [r["epoch"] for r in rows] == [3, 3]
    assert all(np.isfinite(r["train/epoch_loss"]) for r in rows)
    sweep.run_grid(tiny_config(), grid, str(tmp_path), train_fn=counting_train)
    assert len(calls) == 2
    # Extending the runs resumes them from their last checkpoint (no step is redone).
    rows = sweep.run_grid(tiny_config(num_epochs=4), grid, str(tmp_path), train_fn=counting_train)
    assert len(calls) == 4 and [r["epoch"] for r in rows] == [4, 4]
    steps = [r["step"] for r in reporting.read_metrics(rows[0]["workdir"]) if "train/loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 4 * 5
    record = json.load(open(os.path.join(rows[0]["workdir"], sweep.RESULT_FILE)))
    assert record["assignments"] == {"loss.name": "hscl", "loss.beta": 0.0}
    # The final model can be read back for plots (DC spectra, embeddings).
    run_config = sweep.plan_grid(tiny_config(num_epochs=4), grid, str(tmp_path))[0][1]
    h, z, y = sweep.restore_representations(run_config, rows[0]["workdir"], "test")
    assert h.shape == (300, 32) and z.shape == (300, 2) and y.shape == (300,)
    nc = geometry.nc_metrics(z, y, 3)
    assert float(nc["zero_sum"]) == pytest.approx(rows[0]["nc/test/z/zero_sum"], abs=1e-5)


def test_command_line_runs_the_grid(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(train, "train_and_evaluate", fake_train(calls))
    rows = sweep.main(
        [
            "sweep",
            "--config=configs/synthetic.py:smoke",
            f"--root={tmp_path}",
            "--grid=loss.name=hscl,hucl",
            "--grid=loss.beta=0,30",
            "--config.loss.k=8",
        ]
    )
    assert [(c[0], c[1]) for c in calls] == [
        ("hscl", 0.0),
        ("hscl", 30.0),
        ("hucl", 0.0),
        ("hucl", 30.0),
    ]
    assert rows[1]["train/epoch_loss"] == 30.0
    assert os.path.exists(tmp_path / "results.csv")


# --------------------------------------------------------------------------- vmapped grid
class SyntheticGridTest(chex.TestCase):
    def test_runs_and_bounds(self):
        res = sweep.train_synthetic_grid(
            betas=(5.0, 50.0),
            settings=("scl", "hscl", "ucl"),
            positives=("labels",),
            num_epochs=2,
            k=8,
            dim=16,
            per_class=10,
            hidden_sizes=(8,),
            eval_every=1,
        )
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

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="setting"):
            sweep.train_synthetic_grid(settings=("hcl",))
        with pytest.raises(ValueError, match="positives"):
            sweep.train_synthetic_grid(positives=("views",))
        with pytest.raises(ValueError, match="eval_every"):
            sweep.train_synthetic_grid(num_epochs=10, eval_every=3)
        with pytest.raises(ValueError, match="betas"):
            sweep.train_synthetic_grid(betas=(-1.0,))


@pytest.mark.slow
def test_vmapped_grid_equals_the_single_runs(tmp_path):
    res = sweep.train_synthetic_grid(
        betas=(10.0,),
        settings=("hscl", "hucl"),
        positives=("labels", "noise_views"),
        num_epochs=3,
        k=16,
        batch_size=60,
        dim=48,
        hidden_sizes=(32,),
    )
    model = models.create_model("mlp", embed_dim=2, hidden_sizes=(32,))
    images = jnp.asarray(data.load_dataset("hn_synthetic", "train", dim=48).images)
    runs = [(r["setting"], r["positives"]) for r in res.rows]
    for setting, positives in [("hscl", "labels"), ("hucl", "noise_views")]:
        c = tiny_config(**{"loss.name": setting, "loss.beta": 10.0})
        if positives == "noise_views":
            c.positives, c.views = "views", "noise"
        workdir = str(tmp_path / f"{setting}_{positives}")
        state = train.train_and_evaluate(c, workdir)
        _, f = model.apply({"params": state.params}, images, train=False)
        i = runs.index((setting, positives))
        np.testing.assert_allclose(res.z[i], geometry.normalize(f, "unit_ball"), atol=2e-5)
        epoch_loss = [
            r["train/epoch_loss"] for r in reporting.read_metrics(workdir) if "epoch" in r
        ]
        np.testing.assert_allclose(res.loss_curves[i, -1], epoch_loss[-1], rtol=1e-5)
