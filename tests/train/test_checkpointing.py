"""Tests for hncl_jax.train.checkpointing: round trip, retention, damaged and unfinished saves."""

from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hncl_jax.train import checkpointing
from hncl_jax.train.checkpointing import Checkpointer, load_for_warm_start, resolve_checkpoint_path


def _state(scale: float = 1.0, width: int = 4) -> dict:
    params = {
        "dense": {"kernel": scale * jnp.arange(3 * width, dtype=jnp.float32).reshape(3, width)},
        "bias": jnp.full((width,), scale, jnp.float32),
    }
    return {
        "params": params,
        "batch_stats": {"bn": {"mean": scale * jnp.ones((width,)), "var": jnp.ones((width,))}},
        "opt_state": optax.adam(1e-3).init(params),
        "step": jnp.asarray(int(10 * scale), jnp.int32),
        "host": np.linspace(0.0, scale, 5, dtype=np.float32),
    }


def _abstract(state: dict) -> dict:
    return jax.eval_shape(lambda: state)


def _assert_trees_equal(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        assert np.asarray(x).dtype == np.asarray(y).dtype


@pytest.fixture
def ckpt_dir(tmp_path):
    return os.path.join(tmp_path, "run", "checkpoints")


def test_round_trip_state_and_metadata(ckpt_dir):
    state = _state(2.0)
    with Checkpointer(ckpt_dir) as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.restore_latest(_abstract(state)) is None
        assert ckpt.save(20, state, {"epoch": 3, "config_hash": "abc", "lr": 1e-3})
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [20]
        restored, metadata = ckpt.restore(20, _abstract(state))
    _assert_trees_equal(restored, state)
    assert isinstance(restored["params"]["bias"], jax.Array)
    assert metadata == {"epoch": 3, "config_hash": "abc", "lr": 1e-3}
    # A fresh Checkpointer (a new process) sees the same step.
    with Checkpointer(ckpt_dir) as again:
        restored, metadata, step = again.restore_latest(_abstract(state))
    assert step == 20 and metadata["epoch"] == 3
    _assert_trees_equal(restored, state)


def test_relative_directory_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Checkpointer("ck") as ckpt:
        assert ckpt.directory == os.path.join(str(tmp_path), "ck")


def test_max_to_keep_interval_and_duplicates(ckpt_dir):
    with Checkpointer(ckpt_dir, max_to_keep=2, save_interval_steps=2) as ckpt:
        saved = [ckpt.save(s, _state(float(s + 1))) for s in range(6)]
        assert saved == [True, False, True, False, True, False]
        assert ckpt.save(5, _state(), force=True)
        assert not ckpt.save(5, _state(), force=True)  # already saved: skipped, no error
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [4, 5]
        assert sorted(os.listdir(ckpt_dir)) == ["4", "5"]


def test_async_save_round_trip(ckpt_dir):
    state = _state(3.0)
    with Checkpointer(ckpt_dir, async_save=True) as ckpt:
        assert ckpt.save(7, state, {"epoch": 1})
        ckpt.wait_until_finished()
        restored, _, step = ckpt.restore_latest(_abstract(state))
    assert step == 7
    _assert_trees_equal(restored, state)


def _save_steps(ckpt_dir: str, steps) -> None:
    with Checkpointer(ckpt_dir, max_to_keep=None) as ckpt:
        for s in steps:
            ckpt.save(s, _state(float(s)), {"epoch": s})


@pytest.mark.parametrize("damage", ["delete_files", "truncate_files"])
def test_restore_latest_falls_back_past_damaged_step(ckpt_dir, caplog, damage):
    _save_steps(ckpt_dir, [1, 2])
    latest = os.path.join(ckpt_dir, "2")
    for root, _, files in os.walk(latest):
        for name in files:
            if damage == "delete_files":
                os.remove(os.path.join(root, name))
            else:
                with open(os.path.join(root, name), "r+b") as f:
                    f.truncate(1)
    with caplog.at_level(logging.WARNING), Checkpointer(ckpt_dir) as ckpt:
        assert ckpt.all_steps() == [1, 2]  # Orbax still lists the damaged step ...
        restored, metadata, step = ckpt.restore_latest(_abstract(_state()))
        assert step == 1 and metadata == {"epoch": 1}
        _assert_trees_equal(restored, _state(1.0))
        # ... which is moved aside, so the resumed run can save step 2 again.
        assert ckpt.all_steps() == [1]
        assert ckpt.save(2, _state(5.0))
    assert any(latest in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert os.path.isdir(latest + checkpointing.CORRUPT_SUFFIX)
    with Checkpointer(ckpt_dir) as ckpt:
        assert ckpt.restore_latest(_abstract(_state()))[2] == 2


def test_restore_latest_raises_when_nothing_restores(ckpt_dir):
    _save_steps(ckpt_dir, [1])
    shutil.rmtree(os.path.join(ckpt_dir, "1", checkpointing.STATE_ITEM))
    with Checkpointer(ckpt_dir) as ckpt, pytest.raises(RuntimeError, match="none of the 1"):
        ckpt.restore_latest(_abstract(_state()))
    assert os.path.isdir(os.path.join(ckpt_dir, "1"))  # nothing renamed on total failure


def test_unfinished_tmp_save_is_never_latest(ckpt_dir):
    _save_steps(ckpt_dir, [1])
    # An interrupted save of step 2, as Orbax names it while writing (older Orbax
    # versions appended a timestamp to the suffix).
    for name in ("2.orbax-checkpoint-tmp", "3.orbax-checkpoint-tmp-1700000000"):
        os.makedirs(os.path.join(ckpt_dir, name, checkpointing.STATE_ITEM))
        with open(os.path.join(ckpt_dir, name, checkpointing.STATE_ITEM, "_METADATA"), "w") as f:
            f.write("{partial")
    assert resolve_checkpoint_path(ckpt_dir) == (ckpt_dir, 1)
    with Checkpointer(ckpt_dir) as ckpt:
        assert ckpt.latest_step() == 1 and ckpt.all_steps() == [1]
        _, _, step = ckpt.restore_latest(_abstract(_state()))
        assert step == 1
        assert ckpt.save(2, _state(2.0))  # the leftover of the same step is replaced
        ckpt.wait_until_finished()
        _, _, step = ckpt.restore_latest(_abstract(_state()))
        assert step == 2
    assert sorted(os.listdir(ckpt_dir)) == ["1", "2"]  # leftovers cleaned up


def test_restore_missing_step_raises(ckpt_dir):
    _save_steps(ckpt_dir, [1])
    with Checkpointer(ckpt_dir) as ckpt, pytest.raises(FileNotFoundError, match="step 5"):
        ckpt.restore(5, _abstract(_state()))


def test_bad_arguments(ckpt_dir):
    with pytest.raises(ValueError, match="max_to_keep"):
        Checkpointer(ckpt_dir, max_to_keep=0)
    with pytest.raises(ValueError, match="save_interval_steps"):
        Checkpointer(ckpt_dir, save_interval_steps=0)
    with Checkpointer(ckpt_dir) as ckpt, pytest.raises(ValueError, match="JSON"):
        ckpt.save(1, _state(), {"epoch": np.arange(3)})


def test_resolve_checkpoint_path(tmp_path):
    workdir = os.path.join(tmp_path, "w")
    ckpt_dir = os.path.join(workdir, "checkpoints")
    _save_steps(ckpt_dir, [3, 12])
    assert resolve_checkpoint_path(workdir) == (ckpt_dir, 12)
    assert resolve_checkpoint_path(ckpt_dir) == (ckpt_dir, 12)
    assert resolve_checkpoint_path(os.path.join(ckpt_dir, "3")) == (ckpt_dir, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint_path(os.path.join(tmp_path, "nope"))
    empty = os.path.join(tmp_path, "empty")
    os.makedirs(os.path.join(empty, "checkpoints", "7.orbax-checkpoint-tmp"))
    with pytest.raises(FileNotFoundError, match="no finalized checkpoint"):
        resolve_checkpoint_path(empty)


def test_restore_lands_in_the_target_shardings(ckpt_dir):
    state = _state(2.0)
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), _abstract(state)
    )
    with Checkpointer(ckpt_dir) as ckpt:
        ckpt.save(2, state)
        restored, _, _ = ckpt.restore_latest(abstract)
    _assert_trees_equal(restored, state)
    assert all(leaf.sharding == replicated for leaf in jax.tree.leaves(restored))
    sub = load_for_warm_start(ckpt_dir, {"params": abstract["params"]})
    assert all(leaf.sharding == replicated for leaf in jax.tree.leaves(sub))


def _move_to_absent_device(step_dir: str) -> None:
    """Rewrites a step as if saved on a device this machine lacks (a GPU checkpoint)."""
    path = os.path.join(step_dir, checkpointing.STATE_ITEM, "_sharding")
    with open(path) as f:
        text = f.read()
    assert "cpu:0" in text
    with open(path, "w") as f:
        f.write(text.replace("cpu:0", "cuda:0"))
    checkpointing.write_manifest(step_dir)


def test_a_checkpoint_saved_on_absent_devices_restores_here(tmp_path):
    workdir = os.path.join(tmp_path, "w")
    ckpt_dir = os.path.join(workdir, "checkpoints")
    state = _state(3.0)
    with Checkpointer(ckpt_dir) as ckpt:
        ckpt.save(3, state)
    _move_to_absent_device(os.path.join(ckpt_dir, "3"))
    with Checkpointer(ckpt_dir) as ckpt:
        restored, _, step = ckpt.restore_latest(_abstract(state))
    assert step == 3
    _assert_trees_equal(restored, state)
    assert isinstance(restored["params"]["bias"], jax.Array)
    sub = load_for_warm_start(workdir, {"params": _abstract(state)["params"]})
    _assert_trees_equal(sub["params"], state["params"])
    assert isinstance(sub["params"]["bias"], jax.Array)


def test_only_orbax_step_names_are_steps(tmp_path):
    ckpt_dir = os.path.join(tmp_path, "checkpoints")
    _save_steps(ckpt_dir, [3])
    shutil.copytree(os.path.join(ckpt_dir, "3"), os.path.join(ckpt_dir, "0012"))  # padded
    shutil.copytree(os.path.join(ckpt_dir, "3"), os.path.join(ckpt_dir, "9.corrupt"))
    open(os.path.join(ckpt_dir, "20"), "w").close()  # a file, not a step directory
    assert resolve_checkpoint_path(ckpt_dir) == (ckpt_dir, 3)
    assert resolve_checkpoint_path(os.path.join(ckpt_dir, "3")) == (ckpt_dir, 3)
    with pytest.raises(FileNotFoundError, match="no finalized checkpoint"):
        resolve_checkpoint_path(os.path.join(ckpt_dir, "9.corrupt"))


def test_load_for_warm_start_restores_subtree(tmp_path):
    workdir = os.path.join(tmp_path, "w")
    state = _state(4.0)
    with Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        ckpt.save(400, state)
    abstract = _abstract(_state())
    sub = load_for_warm_start(
        workdir, {"params": abstract["params"], "batch_stats": abstract["batch_stats"]}
    )
    assert sorted(sub) == ["batch_stats", "params"]
    _assert_trees_equal(sub, {"params": state["params"], "batch_stats": state["batch_stats"]})
    assert isinstance(sub["params"]["bias"], jax.Array)


def test_load_for_warm_start_logs_no_spurious_metadata_warning(tmp_path, caplog):
    workdir = os.path.join(tmp_path, "w")
    with Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        ckpt.save(1, _state(1.0))
    abstract = _abstract(_state())
    with caplog.at_level(logging.WARNING):
        load_for_warm_start(workdir, {"params": abstract["params"]})
        logging.getLogger("absl").warning("a real warning still shows")
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "Metadata file does not exist" in m], messages
    # The source is opened read-only on purpose: Orbax's notice of it is not shown.
    assert not [m for m in messages if "read only" in m], messages
    assert "a real warning still shows" in messages
    with caplog.at_level(logging.WARNING):  # the filter is gone after the warm start
        logging.getLogger("absl").warning("Given directory is read only=%s", "elsewhere")
    assert "Given directory is read only=elsewhere" in [r.getMessage() for r in caplog.records]


def test_load_for_warm_start_with_empty_batch_stats(tmp_path):
    # Models without BatchNorm keep batch_stats = {} in the train state.
    state = {"params": {"w": jnp.arange(3.0)}, "batch_stats": {}, "step": jnp.int32(5)}
    with Checkpointer(tmp_path / "checkpoints") as ckpt:
        ckpt.save(5, state)
    sub = load_for_warm_start(
        os.path.join(tmp_path, "checkpoints", "5"),
        jax.eval_shape(lambda: {"params": state["params"], "batch_stats": {}}),
    )
    assert sub["batch_stats"] == {}
    np.testing.assert_array_equal(sub["params"]["w"], [0.0, 1.0, 2.0])


def test_load_for_warm_start_names_every_mismatched_leaf(tmp_path):
    ckpt_dir = os.path.join(tmp_path, "checkpoints")
    with Checkpointer(ckpt_dir) as ckpt:
        ckpt.save(1, _state(width=4))
    wide = _abstract(_state(width=6))
    with pytest.raises(ValueError) as info:
        load_for_warm_start(ckpt_dir, {"params": wide["params"]})
    message = str(info.value)
    assert "params/dense/kernel: expected (3, 6) float32, found (3, 4) float32" in message
    assert "params/bias: expected (6,) float32, found (4,) float32" in message
    renamed = {"params": {"other": wide["params"]["bias"]}}
    with pytest.raises(ValueError, match="params/other: expected .* missing"):
        load_for_warm_start(ckpt_dir, renamed)
    with pytest.raises(ValueError, match="no field"):
        load_for_warm_start(ckpt_dir, {"ema_params": wide["params"]})


# --------------------------------------------------------------------------- integrity
def _flip_one_byte(step_dir: str) -> str:
    """Flips one bit in the middle of the step's largest array-chunk file."""
    chunks = [
        os.path.join(root, name)
        for root, _, names in os.walk(os.path.join(step_dir, checkpointing.STATE_ITEM))
        for name in names
        if os.path.basename(root) == "d"
    ]
    target = max(chunks, key=os.path.getsize)
    raw = bytearray(open(target, "rb").read())
    raw[len(raw) // 2] ^= 0x01
    open(target, "wb").write(bytes(raw))
    return target


def test_every_step_gets_a_manifest_that_matches(ckpt_dir):
    _save_steps(ckpt_dir, [1, 2])
    for step in ("1", "2"):
        step_dir = os.path.join(ckpt_dir, step)
        assert checkpointing.verify_manifest(step_dir)
        with open(os.path.join(step_dir, checkpointing.MANIFEST_FILE)) as f:
            files = json.load(f)["files"]
        assert any(name.startswith("state/") for name in files)
    with Checkpointer(ckpt_dir) as ckpt:
        ckpt.restore_latest(_abstract(_state()))
        assert ckpt.is_verified(2) and ckpt.last_good_step() == 2
        ckpt.save(3, _state(3.0))  # a later save leaves the older steps' files as they were
    assert all(checkpointing.verify_manifest(os.path.join(ckpt_dir, s)) for s in "123")


def test_a_flipped_byte_is_caught_and_the_step_skipped(ckpt_dir, caplog):
    _save_steps(ckpt_dir, [1, 2])
    latest = os.path.join(ckpt_dir, "2")
    target = _flip_one_byte(latest)
    with Checkpointer(ckpt_dir) as ckpt:
        with pytest.raises(checkpointing.CheckpointCorruptError, match="SHA-256 differs") as info:
            ckpt.restore(2, _abstract(_state()))
        assert os.path.relpath(target, latest) in str(info.value)
        with caplog.at_level(logging.WARNING):
            restored, _, step = ckpt.restore_latest(_abstract(_state()))
        assert step == 1
        _assert_trees_equal(restored, _state(1.0))
    assert any("does not match its checksums.json" in r.getMessage() for r in caplog.records)
    assert os.path.isdir(latest + checkpointing.CORRUPT_SUFFIX)


def test_a_step_without_manifest_restores_unverified(ckpt_dir, caplog):
    _save_steps(ckpt_dir, [1])
    os.remove(os.path.join(ckpt_dir, "1", checkpointing.MANIFEST_FILE))
    with caplog.at_level(logging.WARNING), Checkpointer(ckpt_dir) as ckpt:
        _, _, step = ckpt.restore_latest(_abstract(_state()))
        assert step == 1 and not ckpt.is_verified(1) and ckpt.last_good_step() is None
    assert any("restored without verifying" in r.getMessage() for r in caplog.records)


def test_warm_start_verifies_checksums(tmp_path, caplog):
    workdir = os.path.join(tmp_path, "w")
    ckpts = os.path.join(workdir, "checkpoints")
    _save_steps(ckpts, [1, 2])
    _flip_one_byte(os.path.join(ckpts, "2"))
    abstract = _abstract(_state())
    with caplog.at_level(logging.WARNING):
        sub = load_for_warm_start(workdir, {"params": abstract["params"]})
    _assert_trees_equal(sub["params"], _state(1.0)["params"])  # fell back to step 1
    assert any("skipped damaged checkpoint" in r.getMessage() for r in caplog.records)
    assert sorted(os.listdir(ckpts)) == ["1", "2"]  # another run's folder: nothing renamed
    with pytest.raises(checkpointing.CheckpointCorruptError, match="no intact checkpoint"):
        load_for_warm_start(os.path.join(ckpts, "2"), {"params": abstract["params"]})


def test_disk_full_is_one_oserror_line_naming_the_last_good_step(ckpt_dir, monkeypatch):
    import errno

    import orbax.checkpoint as ocp

    async_save = ocp.StandardCheckpointHandler.async_save

    async def full_disk(self, directory, *args, **kwargs):
        if f"{os.sep}2.orbax-checkpoint-tmp" in str(directory):
            # What tensorstore raises on ENOSPC.
            raise ValueError(
                'RESOURCE_EXHAUSTED: Failed writing "x": No space left on device '
                "[os_error_code='28']"
            )
        return await async_save(self, directory, *args, **kwargs)

    monkeypatch.setattr(ocp.StandardCheckpointHandler, "async_save", full_disk)
    with Checkpointer(ckpt_dir) as ckpt:
        ckpt.save(1, _state(1.0))
        with pytest.raises(checkpointing.CheckpointDiskFullError) as info:
            ckpt.save(2, _state(2.0))
    error = info.value
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"no space left on device at {ckpt_dir}; ")
    assert " MB needed for checkpoint 2; " in message
    assert f"the last good checkpoint is {os.path.join(ckpt_dir, '1')}." in message
    assert not os.path.exists(os.path.join(ckpt_dir, "2.orbax-checkpoint-tmp"))  # space freed


def test_disk_full_on_a_real_small_filesystem(tmp_path):
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (mount -t tmpfs)")
    try:
        state = {"w": jax.random.normal(jax.random.key(0), (200_000,))}  # 0.8 MB, incompressible
        with Checkpointer(str(disk / "checkpoints")) as ckpt:
            with pytest.raises(checkpointing.CheckpointDiskFullError) as info:
                ckpt.save(1, state)
        assert "0.8 MB needed for checkpoint 1; the last good checkpoint is none" in str(info.value)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
