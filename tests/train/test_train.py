"""End-to-end tests of `train.train_and_evaluate` on tiny configs (CPU)."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default, digits
from hncl_jax import train
from hncl_jax.train import checkpointing, loop, reporting
from hncl_jax.train import step as step_lib
from tests.conftest import assert_trees_equal, params_of, tiny_synthetic


def test_synthetic_end_to_end_writes_the_workdir(tmp_path):
    c = tiny_synthetic(plots=True, linear_probe="end")
    state = train.train_and_evaluate(c, str(tmp_path))
    n_train = len(train.load_data(c)[0].labels)
    assert int(state.step) == c.num_epochs * (n_train // c.batch_size)
    rows = reporting.read_metrics(str(tmp_path))
    assert any("train/loss" in r for r in rows)
    evals = [r for r in rows if "nc/train/z/zero_sum" in r]
    assert [r["step"] for r in evals] == sorted({r["step"] for r in evals})
    assert "train/loss_gap" in evals[-1] and np.isfinite(evals[-1]["train/loss_gap"])
    assert os.path.exists(tmp_path / "config.json")
    assert json.load(open(tmp_path / "config.json"))["loss"]["name"] == "scl"
    assert os.path.exists(tmp_path / "summary.txt")
    pngs = [f for f in os.listdir(tmp_path / "plots") if f.endswith(".png")]
    assert len(pngs) >= 2
    assert checkpointing.Checkpointer(str(tmp_path / "checkpoints")).latest_step() == int(
        state.step
    )


def test_resume_continues_and_matches_an_uninterrupted_run(tmp_path, fast_compile):
    full = train.train_and_evaluate(tiny_synthetic(), str(tmp_path / "full"))
    part = tiny_synthetic(num_epochs=2)
    half = train.train_and_evaluate(part, str(tmp_path / "resumed"))
    assert int(half.step) == int(full.step) // 2
    resumed = train.train_and_evaluate(tiny_synthetic(), str(tmp_path / "resumed"))
    assert int(resumed.step) == int(full.step)
    assert_trees_equal(params_of(resumed), params_of(full))
    steps = [r["step"] for r in reporting.read_metrics(str(tmp_path / "resumed"))]
    full_steps = [r["step"] for r in reporting.read_metrics(str(tmp_path / "full"))]
    assert steps == full_steps  # no duplicated or lost rows


def test_warm_start_loads_parameters_and_resets_the_optimizer(tmp_path, fast_compile):
    src = train.train_and_evaluate(tiny_synthetic(num_epochs=2), str(tmp_path / "src"))
    # A vanishing learning rate keeps the warm-started parameters where they were
    # loaded, so they must equal the source's; a fresh init would be far away.
    c = tiny_synthetic(num_epochs=1, init_from=str(tmp_path / "src"))
    c.loss.name = "hscl"
    c.loss.beta = 5.0
    c.optimizer.learning_rate = 1e-12
    state = train.train_and_evaluate(c, str(tmp_path / "dst"))
    steps_per_epoch = int(src.step) // 2
    assert int(state.step) == steps_per_epoch  # the optimizer restarted at step 0
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
        params_of(state),
        params_of(src),
    )
    assert int(state.opt_state[0].count) == steps_per_epoch  # fresh Adam state


def test_resume_of_a_warm_started_run_needs_no_source(tmp_path, fast_compile):
    import shutil

    train.train_and_evaluate(tiny_synthetic(num_epochs=2), str(tmp_path / "src"))
    c = tiny_synthetic(num_epochs=2, init_from=str(tmp_path / "src"))
    first = train.train_and_evaluate(c, str(tmp_path / "dst"))
    # The source run is gone; the warm-started run resumes from its own checkpoint.
    shutil.rmtree(tmp_path / "src")
    again = train.train_and_evaluate(c, str(tmp_path / "dst"))
    assert int(again.step) == int(first.step)
    assert_trees_equal(params_of(again), params_of(first))


def test_bad_init_from_fails_before_training(tmp_path):
    c = tiny_synthetic(init_from=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="init_from"):
        train.train_and_evaluate(c, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


@pytest.mark.slow  # a real-data run (digits, with the linear probe)
def test_digits_reports_probe_and_knn(tmp_path):
    c = digits.get_config("smoke")
    c.num_epochs = 2
    c.plots = False
    c.linear_probe = "end"
    train.train_and_evaluate(c, str(tmp_path))
    last = [r for r in reporting.read_metrics(str(tmp_path)) if "epoch" in r][-1]
    probe = [k for k in last if "probe_top1" in k]
    knn = [k for k in last if "knn" in k]
    assert probe and knn
    assert all(0.0 <= last[k] <= 1.0 for k in probe + knn)


def test_default_config_is_valid():
    from hncl_jax.train import validation

    validation.validate_config(default.get_config())


@pytest.mark.slow
def test_cifar10_through_tfds_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    from configs import cifar10

    c = cifar10.get_config("smoke")
    c.data_dir = str(tmp_path / "tfds")
    c.batch_size = 32
    c.num_epochs = 1
    c.plots = False
    c.linear_probe = "off"
    c.dtype = "float32"
    c.knn_k = (5,)  # the mock split holds 64 examples, fewer than k = 200
    with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
        state = train.train_and_evaluate(c, str(tmp_path / "run"))
    assert int(state.step) == 2
    last = reporting.read_metrics(str(tmp_path / "run"))[-1]
    assert np.isfinite(last["nc/train/z/zero_sum"]) and "eval/test/z/knn5_acc" in last


@pytest.mark.slow
def test_tinyimagenet_builder_through_the_trainer(tmp_path):
    from hncl_jax.data import tinyimagenet
    from tests.conftest import TRAIN_PER_CLASS, VAL_PER_CLASS, WNIDS, make_archive

    manual = tmp_path / "manual"
    manual.mkdir()
    make_archive(str(manual))
    from configs import tinyimagenet as tin_config

    c = tin_config.get_config("smoke")
    c.data_dir = str(tmp_path / "tfds")
    c.manual_dir = str(manual)
    c.dataset_kwargs.config = tinyimagenet.TinyImagenetConfig(
        name="mini",
        num_classes=len(WNIDS),
        train_per_class=TRAIN_PER_CLASS,
        val_per_class=VAL_PER_CLASS,
    )
    c.batch_size = 4
    c.num_epochs = 1
    c.knn_k = (5,)
    c.plots = False
    c.linear_probe = "off"
    c.dtype = "float32"
    state = train.train_and_evaluate(c, str(tmp_path / "run"))
    assert int(state.step) == len(WNIDS) * TRAIN_PER_CLASS // 4
    last = reporting.read_metrics(str(tmp_path / "run"))[-1]
    assert "eval/test/z/ncm_acc" in last


def test_the_train_step_is_traced_once_per_run(tmp_path, monkeypatch):
    import chex

    monkeypatch.setattr(step_lib, "train_step", chex.assert_max_traces(step_lib.train_step, n=1))
    c = tiny_synthetic(num_epochs=3, steps_per_dispatch=2)
    state = train.train_and_evaluate(c, str(tmp_path))
    assert int(state.step) == 3 * (len(train.load_data(c)[0].labels) // c.batch_size)


def test_epoch_permutation_passed_in_gives_the_same_batches():
    """The trainer draws each epoch's permutation once and passes it to the step; the
    batches must equal those of the step that draws it itself (resume relies on it)."""
    n, seed = 1000, 3
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 255, (n, 8, 8, 1)), jnp.uint8)
    labels = jnp.arange(n) % 10
    data_key = jax.random.fold_in(jax.random.key(seed), 0)
    batch_fn = functools.partial(
        train.make_batch,
        batch_size=100,
        steps_per_epoch=10,
        positives="views",
        views="simclr",
        view_kwargs={},
    )
    batch_fn = jax.jit(batch_fn)  # one compilation per form instead of eager op-by-op
    for step in (0, 5, 13, 27):
        drawn = batch_fn(jnp.asarray(step), images, labels, labels, data_key)
        perm = train.epoch_permutation(seed, step // 10, n)
        given = batch_fn(jnp.asarray(step), images, labels, labels, data_key, perm=perm)
        for a, b in zip(drawn, given, strict=True):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- factories
def test_key_streams_keep_their_values():
    """The key table reproduces the keys the trainer has always folded from the seed."""
    seed = 7
    base = jax.random.key(seed)
    same = functools.partial(np.testing.assert_array_equal)
    for name, index in (("data", 0), ("loss", 1), ("init", 2), ("prototypes", 3)):
        expected = jax.random.fold_in(base, index)
        same(jax.random.key_data(train.rng_key(seed, name)), jax.random.key_data(expected))
    step_key = jax.random.fold_in(jax.random.fold_in(base, 1), 11)
    same(jax.random.key_data(train.rng_key(seed, "loss", 11)), jax.random.key_data(step_key))
    data_key = jax.random.fold_in(base, 0)
    views = jax.random.fold_in(jax.random.fold_in(data_key, 1 << 20), 5)
    same(jax.random.key_data(train.view_key(data_key, 5)), jax.random.key_data(views))


def test_itstime_fires_at_periods_within_a_dispatch_and_at_the_end():
    assert [s for s in range(1, 11) if train.itstime(s, 4)] == [4, 8]
    assert train.itstime(10, 4, total=10) and not train.itstime(9, 4, total=10)
    assert not train.itstime(3, 0) and not train.itstime(3, None) and train.itstime(3, 0, 3)
    # Dispatches of 3 steps reach 3, 6, 9, 12: the period of 4 ends inside 3→6 and 6→9.
    assert [s for s in (3, 6, 9, 12) if train.itstime(s, 4, window=3)] == [6, 9, 12]


@pytest.mark.parametrize("name", sorted(train.OPTIMIZERS))
@pytest.mark.parametrize("schedule", sorted(train.SCHEDULES))
def test_the_optimizer_is_driven_by_the_one_schedule(name, schedule):
    c = tiny_synthetic(**{"optimizer.name": name, "optimizer.schedule": schedule})
    c.optimizer.warmup_epochs = 1
    lr_fn = train.create_learning_rate_fn(c, steps_per_epoch=5)
    tx, same = train.make_optimizer(c, 5, learning_rate_fn=lr_fn)
    assert same is lr_fn
    _, default = train.make_optimizer(c, 5)
    for step in (0, 3, 7, 19):
        assert float(default(step)) == float(lr_fn(step))
    params = {"w": jnp.ones(3)}
    updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
    assert np.all(np.isfinite(np.asarray(updates["w"])))


def test_unknown_optimizer_or_schedule_raises_naming_the_choices():
    c = tiny_synthetic(**{"optimizer.name": "adagrad"})
    with pytest.raises(ValueError, match="config.optimizer.name='adagrad'.*'lars'"):
        train.make_optimizer(c, 5)
    c = tiny_synthetic(**{"optimizer.schedule": "step"})
    with pytest.raises(ValueError, match="config.optimizer.schedule='step'"):
        train.create_learning_rate_fn(c, 5)


def test_build_wires_the_trainers_step(tmp_path):
    c = tiny_synthetic()
    train_ds, _ = train.load_data(c)
    spe = len(train_ds.labels) // c.batch_size
    built = train.build(c, train_ds.num_classes, batch_size=c.batch_size, steps_per_epoch=spe)
    assert built.mesh.shape == {"data": jax.device_count()}
    state = built.init_state(jnp.asarray(train_ds.images[:2], jnp.float32))
    expected = train.create_train_state(
        c,
        train.create_model(c, train_ds.num_classes),
        jnp.asarray(train_ds.images[:2], jnp.float32),
        train_ds.num_classes,
        spe,
    )
    assert_trees_equal(params_of(state), params_of(expected))
    arrays = [train.put_replicated(a, built.replicated) for a in (train_ds.images, train_ds.labels)]
    state = jax.device_put(state, built.replicated)
    state, metrics = built.step_fn(state, arrays[0], arrays[1], arrays[1])
    assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))


def test_catch_signals_records_and_restores_the_handlers():
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with train.catch_signals() as caught:
        assert caught.signal is None
        signal.raise_signal(signal.SIGTERM)
        assert caught.signal == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
    with train.catch_signals(enabled=False) as caught:
        assert signal.getsignal(signal.SIGTERM) is before


def test_an_error_in_the_evaluation_closes_every_resource(tmp_path, monkeypatch):
    """Every exit path closes the writer, the checkpointer, the bar and the handlers."""
    import signal

    closed = []
    for cls, name in (
        (reporting.MetricWriter, "close"),
        (checkpointing.Checkpointer, "close"),
        (reporting.ProgressBar, "close"),
        (reporting.WandbLogger, "finish"),
    ):
        original = getattr(cls, name)

        def spy(self, *a, _original=original, _name=f"{cls.__name__}.{name}", **kw):
            closed.append(_name)
            return _original(self, *a, **kw)

        monkeypatch.setattr(cls, name, spy)

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(loop, "run_evaluation", broken)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        train.train_and_evaluate(tiny_synthetic(), str(tmp_path))
    assert signal.getsignal(signal.SIGTERM) is before
    assert {
        "MetricWriter.close",
        "Checkpointer.close",
        "ProgressBar.close",
        "WandbLogger.finish",
    } <= set(closed)
