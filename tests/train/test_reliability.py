"""Reliability of `train.train_and_evaluate`: crashes, preemption, damaged files, NaNs.

The fault tests run the trainer in real subprocesses (this file doubles as the driver:
`python tests/train/test_reliability.py '<json spec>'`) and kill them at chosen points:

* `kill_step:N`  SIGKILL right after the dispatch that reaches step N (mid-epoch);
* `kill_eval:N`  SIGKILL inside the evaluation at step N (before its row is written);
* `kill_ckpt:N`  SIGKILL while checkpoint N is written: its arrays are on disk, but
  Orbax has not yet renamed `N.orbax-checkpoint-tmp` into place;
* `term_step:N` / `int_step:N`  SIGTERM / SIGINT at step N (graceful preemption).

The faults are installed by wrapping `train.make_step_fn`, `train.run_evaluation` and
Orbax's `StandardCheckpointHandler.async_save` in the driver process, so the trainer
carries no test hooks. A run resumed after any sequence of faults must end with the
same train state (bit for bit, CPU) and the same metrics rows as an uninterrupted run.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:  # script mode (the driver)
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hncl_jax import models, train  # noqa: E402
from hncl_jax.data import augment  # noqa: E402
from hncl_jax.train import loop as loop_lib  # noqa: E402
from hncl_jax.train import reporting, validation  # noqa: E402
from hncl_jax.train import step as step_lib  # noqa: E402
from hncl_jax.train import workdir as workdir_lib  # noqa: E402
from tests.conftest import make_tiny_config  # noqa: E402  (the driver; tests take the fixture)

# Keys whose values depend on wall-clock time, not on the computation.
VOLATILE_KEYS = ("train/steps_per_sec",)
STEPS_PER_EPOCH = 5  # 60 training examples / batch 12
NUM_EPOCHS = 6
TOTAL_STEPS = STEPS_PER_EPOCH * NUM_EPOCHS


# --------------------------------------------------------------------------- driver
def _die(sig: int = signal.SIGKILL) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), sig)


def _install_fault(fault: str) -> None:
    kind, at = fault.split(":")
    at = int(at)
    if kind in ("kill_step", "term_step", "int_step"):
        sig = {"kill_step": signal.SIGKILL, "term_step": signal.SIGTERM}.get(kind, signal.SIGINT)
        make_step_fn = step_lib.make_step_fn

        def faulty_make_step_fn(*args, **kwargs):
            step_fn = make_step_fn(*args, **kwargs)

            def faulty_step_fn(state, *a):
                state, metrics = step_fn(state, *a)
                if int(state.step) == at:
                    _die(sig)
                return state, metrics

            return faulty_step_fn

        step_lib.make_step_fn = faulty_make_step_fn  # where `build` looks it up
    elif kind == "kill_eval":
        run_evaluation = loop_lib.run_evaluation

        def faulty_run_evaluation(config, state, *args, **kwargs):
            out = run_evaluation(config, state, *args, **kwargs)
            if int(state.step) == at:
                _die()
            return out

        loop_lib.run_evaluation = faulty_run_evaluation  # where the loop looks it up
    elif kind == "kill_ckpt":
        import orbax.checkpoint as ocp

        async_save = ocp.StandardCheckpointHandler.async_save

        async def faulty_async_save(self, directory, *args, **kwargs):
            futures = await async_save(self, directory, *args, **kwargs)
            if f"{os.sep}{at}.orbax-checkpoint-tmp{os.sep}" in str(directory):
                for f in futures or ():
                    f.result()  # the arrays are on disk; the step is not committed
                _die()
            return futures

        ocp.StandardCheckpointHandler.async_save = faulty_async_save
    else:
        raise ValueError(f"unknown fault {fault!r}")


def _driver(spec: dict) -> None:
    import logging

    logging.basicConfig(level=logging.INFO, force=True)  # the trainer's "resuming from ..." line
    if spec.get("fault"):
        _install_fault(spec["fault"])
    train.train_and_evaluate(make_tiny_config(**spec.get("overrides", {})), spec["workdir"])


def run_driver(workdir, fault: str | None = None, **overrides) -> subprocess.CompletedProcess:
    """Runs the tiny config on `workdir` in a fresh process (with an optional fault)."""
    spec = {"workdir": str(workdir), "fault": fault, "overrides": overrides}
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, os.path.abspath(__file__), json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _explain(proc: subprocess.CompletedProcess) -> str:
    out, err = proc.stdout[-3000:], proc.stderr[-3000:]
    return f"rc={proc.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"


# --------------------------------------------------------------------------- helpers
def checkpoint_names(workdir) -> list[str]:
    d = os.path.join(workdir, "checkpoints")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def finalized_steps(workdir) -> list[int]:
    return sorted(int(n) for n in checkpoint_names(workdir) if n.isdigit())


def load_state_arrays(workdir, step: int) -> dict[str, np.ndarray]:
    """Every array of a saved train state, by key path (read without a target)."""
    import orbax.checkpoint as ocp

    path = os.path.join(workdir, "checkpoints", str(step), "state")
    with warnings.catch_warnings():  # "Sharding info not provided": same host, no matter
        warnings.simplefilter("ignore", UserWarning)
        tree = ocp.PyTreeCheckpointer().restore(path)
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}


def stable_rows(workdir) -> list[dict]:
    rows = reporting.read_metrics(str(workdir))
    return [{k: v for k, v in r.items() if k not in VOLATILE_KEYS} for r in rows]


def assert_same_run(workdir, reference) -> None:
    """Same final state (every array, bit for bit) and the same metrics rows."""
    assert finalized_steps(workdir)[-1] == TOTAL_STEPS
    got, want = load_state_arrays(workdir, TOTAL_STEPS), load_state_arrays(reference, TOTAL_STEPS)
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert stable_rows(workdir) == stable_rows(reference)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        assert all(json.loads(line) for line in f)  # no torn or merged lines


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the tiny config (in a subprocess, like the faulted runs)."""
    workdir = tmp_path_factory.mktemp("reference")
    proc = run_driver(workdir)
    assert proc.returncode == 0, _explain(proc)
    assert finalized_steps(workdir) == [10, 20, 30]
    return str(workdir)


# --------------------------------------------------------------------------- tests
@pytest.mark.slow
def test_resume_after_kills_and_preemptions_is_exact(tmp_path, reference):
    w = str(tmp_path / "run")

    # SIGKILL mid-epoch before the first checkpoint: the rerun starts from scratch.
    proc = run_driver(w, "kill_step:7")
    assert proc.returncode == -signal.SIGKILL, _explain(proc)
    assert finalized_steps(w) == []
    assert max(r["step"] for r in reporting.read_metrics(w)) == 6

    # SIGKILL inside the evaluation of epoch 3: no row for it, checkpoint 10 survives.
    proc = run_driver(w, "kill_eval:15")
    assert proc.returncode == -signal.SIGKILL, _explain(proc)
    assert finalized_steps(w) == [10]
    rows = reporting.read_metrics(w)
    assert max(r["step"] for r in rows) == 15  # the train row of step 15; dropped on resume
    assert not [r for r in rows if r["step"] == 15 and "epoch" in r]  # no evaluation row

    # SIGKILL while checkpoint 20 is written: a tmp directory that must never be restored.
    proc = run_driver(w, "kill_ckpt:20")
    assert proc.returncode == -signal.SIGKILL, _explain(proc)
    assert finalized_steps(w) == [10]
    assert "20.orbax-checkpoint-tmp" in checkpoint_names(w)

    # SIGTERM mid-epoch: checkpoint 23 (with the epoch's losses so far), message, exit 143.
    proc = run_driver(w, "term_step:23")
    assert proc.returncode == 128 + signal.SIGTERM, _explain(proc)
    assert "interrupted at step 23/30" in proc.stdout
    assert "Resume with the same command" in proc.stdout
    assert os.path.join(w, "checkpoints", "23") in proc.stdout
    # The unfinished save of step 20 was not restored (and was cleaned up on restart).
    assert f"resuming from {os.path.join(w, 'checkpoints')} at step 10" in proc.stderr
    assert "20.orbax-checkpoint-tmp" not in checkpoint_names(w)
    assert finalized_steps(w) == [10, 20, 23]
    with open(os.path.join(w, "checkpoints", "23", "metadata", "metadata")) as f:
        assert len(json.load(f)["epoch_losses"]) == 3  # steps 21, 22 and 23 of epoch 5
    assert max(r["step"] for r in reporting.read_metrics(w)) == 22  # flushed before exit

    # SIGKILL after resuming from the mid-epoch checkpoint (epoch 5's mean is exact).
    proc = run_driver(w, "kill_step:28")
    assert proc.returncode == -signal.SIGKILL, _explain(proc)
    assert f"resuming from {os.path.join(w, 'checkpoints')} at step 23" in proc.stderr
    assert finalized_steps(w) == [10, 20, 23]

    # Ctrl-C (SIGINT) mid-epoch: checkpoint 29, exit 130.
    proc = run_driver(w, "int_step:29")
    assert proc.returncode == 128 + signal.SIGINT, _explain(proc)
    assert "interrupted at step 29/30" in proc.stdout
    assert finalized_steps(w) == [20, 23, 29]  # max_checkpoints = 3

    proc = run_driver(w)
    assert proc.returncode == 0, _explain(proc)
    assert_same_run(w, reference)

    # A finished run rerun on its workdir changes nothing.
    proc = run_driver(w)
    assert proc.returncode == 0, _explain(proc)
    assert_same_run(w, reference)


@pytest.mark.slow
def test_damaged_checkpoints_are_reported_and_skipped(tmp_path, reference):
    w = str(tmp_path / "run")
    shutil.copytree(reference, w)
    ckpts = os.path.join(w, "checkpoints")
    # Step 30: array data cut short (a copy or disk write cut off). Step 20: metadata
    # overwritten with garbage. The rerun must fall back to 10 and redo 11..30.
    for path in glob.glob(os.path.join(ckpts, "30", "state", "**", "d", "*"), recursive=True):
        os.truncate(path, os.path.getsize(path) // 2)
    with open(os.path.join(ckpts, "20", "metadata", "metadata"), "w") as f:
        f.write("{not json")
    proc = run_driver(w)
    assert proc.returncode == 0, _explain(proc)
    log = proc.stderr
    assert f"could not restore checkpoint {os.path.join(ckpts, '30')}" in log
    assert f"could not restore checkpoint {os.path.join(ckpts, '20')}" in log
    assert "resumed from step 10" in log
    assert {"30.corrupt", "20.corrupt"} <= set(checkpoint_names(w))
    assert_same_run(w, reference)

    # Nothing restorable: a clear error naming the directory, and nothing is deleted.
    for step in finalized_steps(w):
        os.remove(os.path.join(ckpts, str(step), "state", "manifest.ocdbt"))
    before = checkpoint_names(w)
    proc = run_driver(w)
    assert proc.returncode != 0
    assert f"none of the 3 checkpoints in {ckpts} could be restored" in proc.stderr
    assert checkpoint_names(w) == before


@pytest.mark.slow
def test_non_finite_step_stops_the_run_and_overwrites_nothing(tmp_path, tiny_config):
    w = str(tmp_path)
    c = tiny_config(num_epochs=2, normalization="none")
    train.train_and_evaluate(c, w)
    ckpt_files = {
        p: open(p, "rb").read()
        for p in glob.glob(os.path.join(w, "checkpoints", "**"), recursive=True)
        if os.path.isfile(p)
    }
    rows = reporting.read_metrics(w)

    # An absurd learning rate makes the parameters overflow after one update.
    c = tiny_config(num_epochs=4, normalization="none", allow_config_change=True)
    c.optimizer.learning_rate = 1e30
    with pytest.raises(FloatingPointError, match=r"at step (\d+)") as info:
        train.train_and_evaluate(c, w)
    message = str(info.value)
    bad = int(re.search(r"at step (\d+)", message).group(1))
    assert bad == 11  # step 10 (restored) updates with finite gradients; 11 overflows
    assert f"Last good checkpoint: {os.path.join(w, 'checkpoints', '10')}" in message
    assert "allow_config_change" in message
    now = {
        p: open(p, "rb").read()
        for p in glob.glob(os.path.join(w, "checkpoints", "**"), recursive=True)
        if os.path.isfile(p)
    }
    assert now == ckpt_files  # no new checkpoint, none rewritten
    new_rows = reporting.read_metrics(w)
    assert new_rows[: len(rows)] == rows
    assert all(r["step"] <= bad for r in new_rows[len(rows) :])
    values = [v for r in new_rows for v in r.values()]
    assert all(np.isfinite(v) for v in values)


def test_a_non_finite_update_is_skipped_and_recorded(tiny_config):
    c = tiny_config(normalization="none")
    state, step_fn, arrays = _stepper(c, steps_per_dispatch=1)
    fresh = jax.tree.map(jnp.copy, state)  # the step donates its input state
    # NaN in one parameter (the first leaf): the embeddings, the loss and the gradients
    # become NaN.
    leaves, treedef = jax.tree.flatten(state.params)
    leaves[0] = leaves[0].at[(0,) * leaves[0].ndim].set(jnp.nan)
    poisoned = state.replace(params=jax.tree.unflatten(treedef, leaves))
    before = jax.tree.map(np.asarray, (poisoned.params, poisoned.opt_state))
    new, metrics = step_fn(poisoned, *arrays)
    assert not np.isfinite(float(metrics["loss"]))
    assert (int(new.step), int(new.nonfinite_step)) == (1, 0)  # step 0 recorded, step advanced
    # Parameters and optimizer state are exactly what they were (NaNs in the same places).
    jax.tree.map(np.testing.assert_array_equal, before, (new.params, new.opt_state))

    new, metrics = step_fn(fresh, *arrays)
    assert np.isfinite(float(metrics["loss"])) and int(new.nonfinite_step) == -1


def _stepper(c, steps_per_dispatch: int):
    """The trainer's state and jitted step for `c`, without the run loop."""
    train_ds, _ = train.load_data(c)
    num_classes = train_ds.num_classes
    steps_per_epoch = len(train_ds.labels) // c.batch_size
    model = models.create_model(
        c.model, embed_dim=validation.embed_dim(c, num_classes), **dict(c.model_kwargs)
    )
    sample = augment.preprocess(jnp.asarray(train_ds.images[:2]))
    state = train.create_train_state(c, model, sample, num_classes, steps_per_epoch)
    batch_fn = functools.partial(
        train.make_batch,
        batch_size=c.batch_size,
        steps_per_epoch=steps_per_epoch,
        positives=c.positives,
        views=c.views,
        view_kwargs={"std": c.noise_std} if c.views == "noise" else {},
    )
    step_fn = train.make_step_fn(
        c,
        num_classes,
        batch_fn=batch_fn,
        batch_sharding=None,
        replicated=None,
        steps_per_dispatch=steps_per_dispatch,
    )
    images, labels = jnp.asarray(train_ds.images), jnp.asarray(train_ds.labels)
    return state, step_fn, (images, labels, labels)


@pytest.mark.slow
@pytest.mark.parametrize("normalization", ["unit_ball", "unit_sphere", "none"])
@pytest.mark.parametrize(
    "setting,hardening,beta,epsilon,estimator",
    [
        ("hscl", "exponential", 1000.0, 1.0, "sampled"),
        ("hucl", "polynomial", 0.0, 50.0, "sampled"),
        ("hucl", "exponential", 1000.0, 1.0, "reweighted"),
    ],
)
def test_extreme_hardening_stays_finite_for_100_steps(
    tiny_config, normalization, setting, hardening, beta, epsilon, estimator
):
    # A large learning rate drives the raw embeddings of most of these runs to norms of
    # 4 to 9 within the 100 steps, so β·s reaches the thousands: exp(β s) overflows
    # float32 unless the loss and the sampler work in log space.
    c = tiny_config(normalization=normalization, batch_size=30)
    c.loss.name = setting
    c.loss.hardening, c.loss.beta, c.loss.epsilon = hardening, beta, epsilon
    c.loss.estimator = estimator
    c.optimizer.learning_rate = 0.05
    state, step_fn, arrays = _stepper(c, steps_per_dispatch=100)
    state, metrics = step_fn(state, *arrays)  # one dispatch: 100 scanned steps
    assert int(state.step) == 100
    assert int(state.nonfinite_step) == -1  # no step was skipped
    for name, value in metrics.items():  # means over the 100 steps: a NaN would show
        assert np.isfinite(float(value)), name
    for leaf in jax.tree.leaves(state.params):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_torn_metrics_line_loses_no_row_on_resume(tmp_path):
    w = reporting.MetricWriter(str(tmp_path), resume_step=0)
    for step in (2, 4):
        w.write_scalars(step, {"train/loss": 1.0 / step})
    w.close()
    with open(tmp_path / workdir_lib.METRICS_FILE, "a") as f:
        f.write('{"step": 6, "train/lo')  # a power cut in the middle of a write
    w = reporting.MetricWriter(str(tmp_path), resume_step=4)
    for step in (6, 8):
        w.write_scalars(step, {"train/loss": 1.0 / step})
    w.close()
    assert [r["step"] for r in reporting.read_metrics(str(tmp_path))] == [2, 4, 6, 8]


if __name__ == "__main__":
    _driver(json.loads(sys.argv[1]))
