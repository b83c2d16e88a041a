"""Tests of `hncl_jax.sweep`: grid naming and parsing, resumable `run_grid`, the restored
representations of a finished run (read only). The vmapped synthetic grid is tested in
tests/reproduce/test_synthetic_grid.py."""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic
from hncl_jax import geometry, models, sweep, train
from hncl_jax.data import augment
from hncl_jax.train import checkpointing, reporting, validation
from hncl_jax.train import workdir as workdir_lib
from tests.conftest import tiny_synthetic


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


def fake_train(calls, verbose_flags=None):
    """A stand-in for train_and_evaluate that records its calls and writes one eval row
    (and, given a list, the `verbose` each call was made with)."""

    def train_fn(config, workdir, **kwargs):
        calls.append((config.loss.name, config.loss.beta, workdir))
        if verbose_flags is not None:
            verbose_flags.append(kwargs.get("verbose", "not passed"))
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


def test_the_trainer_runs_quiet_in_a_sweep_unless_asked(tmp_path, monkeypatch, capsys):
    calls, verbose = [], []
    monkeypatch.setattr(train, "train_and_evaluate", fake_train(calls, verbose))
    grid = {"loss.beta": [0.0, 10.0]}
    sweep.run_grid(tiny_config(), grid, str(tmp_path / "quiet"))
    sweep.run_grid(tiny_config(), grid, str(tmp_path / "full"), train_output=True)
    assert verbose == [False, False, True, True]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[sweep] run 1/2: loss.beta=0"
    assert re.fullmatch(
        r"\[sweep\] run 1/2 done in \d+ s: loss.beta=0 \(epoch 3, train/epoch_loss 0\)", out[1]
    )
    # Any other train_fn is called as train_fn(config, workdir).
    sweep.run_grid(tiny_config(), grid, str(tmp_path / "own"), train_fn=fake_train(calls))
    assert len(calls) == 6
    # The command line's --train_output.
    sweep.main(["sweep", "--config=configs/synthetic.py:smoke", f"--root={tmp_path / 'cli'}"])
    sweep.main(
        ["sweep", "--config=configs/synthetic.py:smoke", f"--root={tmp_path / 'cli_full'}"]
        + ["--train_output"]
    )
    assert verbose[-2:] == [False, True]


def test_a_sweep_prints_one_line_as_each_run_starts_and_ends(tmp_path, capfd):
    # Two runs that differ in their name only: the second compiles nothing new.
    grid = {"name": ["quiet_a", "quiet_b"]}
    rows = sweep.run_grid(tiny_synthetic(), grid, str(tmp_path))
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) <= 3 * 2, "\n".join(lines)
    assert lines[0] == "[sweep] run 1/2: name=quiet_a"
    assert any(line.startswith("[sweep] run 1/2 done in ") for line in lines)
    assert any(line.startswith("[sweep] run 2/2 done in ") for line in lines)
    assert "ncm_acc" in lines[-1]  # the done line shows the run's result
    # The trainer's outputs are written as ever, only not printed.
    for r in rows:
        summary = open(os.path.join(r["workdir"], workdir_lib.SUMMARY_FILE)).read()
        assert summary.startswith("hncl_jax run:") and summary.splitlines()[0] not in out
        assert reporting.last_evaluation(reporting.read_metrics(r["workdir"]))["epoch"] == 4
    # A rerun finds both runs finished: one line each.
    sweep.run_grid(tiny_synthetic(), grid, str(tmp_path))
    out, err = capfd.readouterr()
    assert out.splitlines() == [
        "[sweep] run 1/2 finished already: name=quiet_a",
        "[sweep] run 2/2 finished already: name=quiet_b",
    ]
    assert err == ""


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


# --------------------------------------------------------------------------- restore
def _tree(root):
    """Every path under `root` with its kind, size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (os.path.isdir(path), st.st_size, st.st_mtime_ns)
    return out


def _save_final_checkpoint(config, workdir, step):
    """A checkpoint as the trainer writes it, of a state moved off its initialisation."""
    ds = train.load_data(config)[0]
    model = models.create_model("mlp", embed_dim=2, hidden_sizes=(32,))
    sample_x = augment.preprocess(jnp.asarray(ds.images[:2]))
    state = train.create_train_state(config, model, sample_x, 3, 5)
    params = jax.tree.map(
        lambda p: p + 0.05 * jnp.cos(jnp.arange(p.size).reshape(p.shape)), state.params
    )
    state = state.replace(params=params, step=jnp.asarray(step))
    fingerprint = validation.fingerprint_of(json.loads(config.to_json_best_effort()))
    with checkpointing.Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        ckpt.save(step, state, {"step": step, "config_fingerprint": fingerprint}, force=True)
    features = train.make_features_fn(model, config.normalization)
    return [features({"params": params}, jnp.asarray(s.images)) for s in train.load_data(config)]


def test_restore_representations_reads_the_checkpoint_and_writes_nothing(tmp_path):
    config = tiny_config()  # 300 examples, batch 60: 5 steps an epoch, 15 in all
    workdir = str(tmp_path / "run")
    expected = _save_final_checkpoint(config, workdir, step=15)
    with open(os.path.join(workdir, "summary.txt"), "w") as fh:
        fh.write("the run's summary\n")
    before = _tree(str(tmp_path))
    for split, (h_ref, z_ref) in zip(("train", "test"), expected, strict=True):
        h, z, y = sweep.restore_representations(config, workdir, split)
        assert h.shape == (300, 32) and z.shape == (300, 2) and y.shape == (300,)
        np.testing.assert_allclose(h, h_ref, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(z, z_ref, rtol=1e-6, atol=1e-6)
    assert _tree(str(tmp_path)) == before  # no file written, renamed, touched or removed
    assert open(os.path.join(workdir, "summary.txt")).read() == "the run's summary\n"
    with pytest.raises(ValueError, match="not finished"):
        sweep.restore_representations(tiny_config(num_epochs=4), workdir)
    with pytest.raises(ValueError, match="another config"):
        sweep.restore_representations(tiny_config(**{"loss.k": 8}), workdir)
    with pytest.raises(ValueError, match="split"):
        sweep.restore_representations(config, workdir, "val")
    with pytest.raises(FileNotFoundError):
        sweep.restore_representations(config, str(tmp_path / "empty"))
    assert _tree(str(tmp_path)) == before
