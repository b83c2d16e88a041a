"""Checkpoints on Orbax: save, resume (with fallback past a damaged step), warm start.

A run keeps its checkpoints in `<workdir>/checkpoints/<step>/`, one directory per step:

    <step>/state/      the train-state pytree (`ocp.args.StandardSave`, OCDBT format)
    <step>/metadata/   a small JSON dict (epoch, config hash, ...) (`ocp.args.JsonSave`)

* `Checkpointer` wraps `ocp.CheckpointManager` (absolute paths, `max_to_keep`, optional
  async saves). Restores are made against an *abstract* target, typically
  `jax.eval_shape(create_state)`, so dtypes come from the code, not from the files.
  Leaves that carry a sharding are restored straight into it (give the target the
  shardings the state will be used with, and no placement is needed afterwards);
  leaves without one get the sharding they were saved with, or, where that names
  devices absent here (a checkpoint written on GPU read on a CPU-only machine), this
  process's first device (Orbax's `fallback_sharding`); a leaf saved from a numpy
  array, which records no sharding, is read back as a numpy array.
* `resolve_checkpoint_path` turns a workdir, a checkpoints directory or one step
  directory into `(directory, step)`; steps are listed by Orbax's own step-name format,
  the one the manager writes and lists.
* `load_for_warm_start` restores only a subtree (`params`, `batch_stats`) of another
  run's checkpoint through a read-only `ocp.CheckpointManager` on the same item names,
  after comparing every leaf's shape and dtype with the checkpoint's metadata, for the
  near-NC warm start of [HN Table 2] (docs/math.md §13).

Atomicity: Orbax writes a step into `<step>.orbax-checkpoint-tmp` and renames it to
`<step>` once every file is written (on local and POSIX filesystems; on GCS it writes a
`commit_success.txt` instead). Orbax never lists a directory whose name contains the
tmp suffix as a step, and `Checkpointer` asks it to delete such leftovers on start
(`cleanup_tmp_directories=True`); so a save killed half-way is never resumed from.
Only one `Checkpointer` may write to a directory at a time: a second one started on
the same directory would delete the first one's in-flight tmp directory.

A finalized step can still be damaged afterwards (a disk filling up, files deleted by
hand, a copy cut short, a flipped bit). `Checkpointer.restore_latest` then logs a
warning naming the step directory, falls back to the previous step, and renames the
damaged directory to `<step>.corrupt` (kept for inspection, invisible to Orbax) so
that the resumed run can save that step again; it raises only if no step can be
restored.

Integrity: Orbax reads a flipped bit in an array chunk back silently (the chunks carry
no checksum), so once a step is committed `Checkpointer` writes `<step>/checksums.json`,
the SHA-256 of every file of the step (`hncl_jax.train.manifest`). `restore`, `restore_latest` and
`load_for_warm_start` compare the files with it before reading any array; a mismatch
is a damaged checkpoint like any other. A step without the file (written by an older
version, or a process killed between Orbax's commit and the manifest) is restored with
a warning and counts as unverified (`Checkpointer.is_verified`).

A save that runs out of disk space raises `CheckpointDiskFullError` (an `OSError`)
with one line: the path, the megabytes the state needs and the last good checkpoint.

References:
  Orbax "Checkpointing with Orbax" (checkpointing 101) and the CheckpointManager API
  guide; flax `examples/gemma/train.py`, whose pattern this follows: one small module on
  `CheckpointManager` with `StandardSave`/`StandardRestore` against an abstract target
  from `jax.eval_shape`, absolute paths, `wait_until_finished()` before exit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging as pylogging
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from hncl_jax.train.manifest import (
    MANIFEST_FILE,
    CheckpointCorruptError,
    sha256_file,
    step_files,
    verify_manifest,
    write_manifest,
)
from hncl_jax.train.workdir import CHECKPOINTS_DIR

PyTree = Any

STATE_ITEM = "state"
METADATA_ITEM = "metadata"
CORRUPT_SUFFIX = ".corrupt"
# A step without checksums set aside for an older step whose checksums match.
UNVERIFIED_SUFFIX = ".unverified"
# The step-name format `ocp.CheckpointManager` uses by default (the bare step number, no
# prefix, no padding); it lists finalized steps only, never tmp or `.corrupt` names.
_STEP_NAME_FORMAT = ocp.path.step.standard_name_format()

__all__ = [
    "CheckpointCorruptError",
    "CheckpointDiskFullError",
    "CheckpointRestoreError",
    "CheckpointShapeError",
    "Checkpointer",
    "verify_manifest",
    "write_manifest",
    "latest_intact_metadata",
    "load_for_warm_start",
    "read_step_metadata",
    "resolve_checkpoint_path",
]


def _absolute(path: str | os.PathLike[str]) -> str:
    """Absolute local path; URLs such as gs://bucket/dir are returned unchanged."""
    path = os.fspath(path)
    if "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def _fallback_sharding() -> jax.sharding.Sharding:
    """Where a leaf goes whose saved sharding names devices absent here: the first device."""
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


class CheckpointShapeError(ValueError):
    """A checkpoint's arrays have other shapes than the state they are restored into."""


class CheckpointRestoreError(RuntimeError):
    """No step of a checkpoints directory could be restored (`Checkpointer.restore_latest`).

    Attributes:
      directory: the checkpoints directory.
      failures: `(step, exception)` for every step tried, newest first.
    """

    def __init__(self, message: str, directory: str, failures: Sequence[tuple[int, BaseException]]):
        super().__init__(message)
        self.directory = directory
        self.failures = list(failures)


class CheckpointDiskFullError(OSError):
    """A checkpoint could not be written for lack of disk space (errno ENOSPC)."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return self.strerror or super().__str__()


def _is_disk_full(e: BaseException) -> bool:
    """ENOSPC, raised directly or as tensorstore's RESOURCE_EXHAUSTED ValueError."""
    while e is not None:
        if getattr(e, "errno", None) == errno.ENOSPC:
            return True
        text = str(e)
        if "No space left on device" in text or "os_error_code='28'" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


def _state_megabytes(state: PyTree) -> float:
    return (
        sum(
            int(np.asarray(x).nbytes) if not isinstance(x, jax.Array) else x.nbytes
            for x in jax.tree.leaves(state)
        )
        / 2**20
    )


def _check_json(metadata: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise ValueError(
            f"Checkpointer.save: metadata must be a dict of JSON values; got "
            f"{type(metadata).__name__}. Pass e.g. {{'epoch': 3, 'config_hash': '...'}}."
        )
    try:
        json.dumps(metadata)
    except TypeError as e:
        raise ValueError(
            f"Checkpointer.save: metadata must be JSON-serializable ({e}); convert numpy or "
            "jax scalars with float()/int() and arrays with .tolist()."
        ) from e
    return dict(metadata)


class Checkpointer:
    """A directory of step checkpoints of one run (an `ocp.CheckpointManager`).

    Each step holds the train-state pytree and a JSON metadata dict. Call `save` from
    every process (Orbax coordinates multi-host writes), `wait_until_finished` before
    reading a checkpoint that may still be written, and `close` at the end.

    Args:
      directory: the checkpoints directory (usually `<workdir>/checkpoints`); created
        if missing, made absolute.
      max_to_keep: number of most recent steps kept (older ones are deleted), >= 1, or
        None to keep all.
      save_interval_steps: `save` without `force` writes only at multiples of this.
      async_save: write in a background thread; `save` returns once the arrays are
        copied off the device.

    Example:
      >>> ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=2)
      >>> ckpt.save(step, state, {"epoch": epoch})
      >>> restored = ckpt.restore_latest(jax.eval_shape(lambda: state))
      >>> ckpt.close()
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_to_keep: int | None = 3,
        save_interval_steps: int = 1,
        async_save: bool = False,
    ):
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(
                f"Checkpointer: max_to_keep must be >= 1 or None (keep all); got {max_to_keep}."
            )
        if save_interval_steps < 1:
            raise ValueError(
                f"Checkpointer: save_interval_steps must be >= 1; got {save_interval_steps}."
            )
        self.directory = _absolute(directory)
        self._async = bool(async_save)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            save_interval_steps=save_interval_steps,
            enable_async_checkpointing=async_save,
            create=True,
            # Delete `<step>.orbax-checkpoint-tmp` leftovers of a killed save; Orbax waits
            # for this clean-up before its first save.
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={
                STATE_ITEM: ocp.StandardCheckpointHandler(),
                METADATA_ITEM: ocp.JsonCheckpointHandler(),
            },
        )
        self._pending: list[tuple[int, float]] = []  # saved steps still without a manifest
        self._verified: set[int] = set()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpointer({self.directory!r}, steps={self.all_steps()})"

    def step_path(self, step: int) -> str:
        """The directory of one step (it need not exist)."""
        return os.path.join(self.directory, str(int(step)))

    def all_steps(self) -> list[int]:
        """Finalized steps, ascending (tmp directories of unfinished saves excluded)."""
        return sorted(int(s) for s in self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The largest finalized step, or None if there is none."""
        return self._manager.latest_step()

    def is_verified(self, step: int) -> bool:
        """Whether `step` was written by this Checkpointer or restored against its checksums."""
        return int(step) in self._verified

    def last_good_step(self) -> int | None:
        """The largest step known to be intact (see `is_verified`), or None."""
        good = [s for s in self.all_steps() if s in self._verified]
        return good[-1] if good else None

    def describe_last_good(self) -> str:
        """The last good checkpoint's path (or why there is none), for error messages."""
        return self._describe_last_good()

    def _describe_last_good(self, exclude: int | None = None) -> str:
        good = [s for s in self.all_steps() if s in self._verified and s != exclude]
        if good:
            return self.step_path(good[-1])
        others = [s for s in self.all_steps() if s != exclude]
        if others:
            return f"{self.step_path(others[-1])} (not verified against checksums)"
        return "none (no checkpoint was written)"

    def _disk_full(self, e: BaseException, step: int, megabytes: float) -> CheckpointDiskFullError:
        _NOISE["disk_full_seen"] = True
        # The unfinished save holds space the user needs back; Orbax would delete it on
        # the next start anyway, and it is never restored from.
        tmp = self.step_path(step) + ".orbax-checkpoint-tmp"
        if jax.process_index() == 0 and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        return CheckpointDiskFullError(
            errno.ENOSPC,
            f"no space left on device at {self.directory}; {max(megabytes, 0.1):.1f} MB needed "
            f"for checkpoint {step}; the last good checkpoint is "
            f"{self._describe_last_good(exclude=step)}. Free space or move the workdir, then "
            "rerun the same command to resume from it.",
        )

    def _finalize(self) -> None:
        """Waits for pending saves and writes the checksum manifest of each new step."""
        pending, self._pending = self._pending, []
        step = pending[-1][0] if pending else -1
        try:
            with _quiet_disk_full_logs():
                self._manager.wait_until_finished()
            for step, _ in pending:
                path = self.step_path(step)
                if jax.process_index() == 0 and os.path.isdir(path):
                    write_manifest(path)
                self._verified.add(step)
        except Exception as e:
            if _is_disk_full(e):
                megabytes = sum(mb for _, mb in pending)
                raise self._disk_full(e, step, megabytes) from None
            raise
        if pending and jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("hncl_jax.checkpointing.manifest")

    def save(
        self,
        step: int,
        state: PyTree,
        metadata: Mapping[str, Any] | None = None,
        *,
        force: bool = False,
    ) -> bool:
        """Saves `state` and `metadata` as `step` if the save interval says so.

        Args:
          step: training step (>= 0), the directory name.
          state: pytree of arrays (jax or numpy) and scalars, e.g. a TrainState.
          metadata: JSON-serializable dict (epoch, config hash, ...); {} if None.
          force: save even if `step` is not a multiple of `save_interval_steps`.

        Returns:
          True if a save was started, False if skipped (interval, or `step` is not
          after the latest saved step, or already saved).
        """
        if step < 0:
            raise ValueError(f"Checkpointer.save: step must be >= 0; got {step}.")
        metadata = _check_json({} if metadata is None else metadata)
        self._finalize()
        if int(step) in self._manager.all_steps():
            logging.info(
                "Checkpointer: step %d already saved in %s; skipped.", step, self.directory
            )
            return False
        try:
            with _quiet_disk_full_logs():
                started = bool(
                    self._manager.save(
                        int(step),
                        args=ocp.args.Composite(
                            **{
                                STATE_ITEM: ocp.args.StandardSave(state),
                                METADATA_ITEM: ocp.args.JsonSave(metadata),
                            }
                        ),
                        force=force,
                    )
                )
        except Exception as e:
            if _is_disk_full(e):
                raise self._disk_full(e, int(step), _state_megabytes(state)) from None
            raise
        if started:
            self._pending.append((int(step), _state_megabytes(state)))
            if not self._async:
                self._finalize()
        return started

    def restore(self, step: int, abstract_state: PyTree) -> tuple[PyTree, dict[str, Any]]:
        """Restores one step.

        Args:
          step: a finalized step (see `all_steps`).
          abstract_state: target pytree of `jax.ShapeDtypeStruct` (from `jax.eval_shape`)
            or of arrays; fixes the structure and dtypes of the result, and its shardings
            where the leaves carry one (the others: as saved, see the module docstring).

        Returns:
          `(state, metadata)`.

        Raises:
          FileNotFoundError: if `step` is not a finalized step of this directory.
          CheckpointCorruptError: if its files differ from its checksum manifest.
        """
        self._finalize()
        if int(step) not in self._manager.all_steps():
            raise FileNotFoundError(
                f"Checkpointer.restore: no finalized step {step} in {self.directory}; "
                f"available steps: {self.all_steps()}."
            )
        # Before any array is read: Orbax would return flipped bits as values.
        if verify_manifest(self.step_path(step)):
            self._verified.add(int(step))
        elif int(step) not in self._verified:
            logging.warning(
                "Checkpointer: step %d (%s) has no %s (saved by an older version, or the "
                "process stopped right after the save); restored without verifying its %d "
                "files, so a damaged array would be read back silently.",
                int(step),
                self.step_path(step),
                MANIFEST_FILE,
                len(step_files(self.step_path(step))),
            )
        self._check_shapes(int(step), abstract_state)
        restored = self._manager.restore(
            int(step),
            args=ocp.args.Composite(
                **{
                    STATE_ITEM: ocp.args.StandardRestore(
                        abstract_state, fallback_sharding=_fallback_sharding()
                    ),
                    METADATA_ITEM: ocp.args.JsonRestore(),
                }
            ),
        )
        return restored[STATE_ITEM], dict(restored[METADATA_ITEM] or {})

    def _check_shapes(self, step: int, abstract_state: PyTree) -> None:
        """Raises CheckpointShapeError naming every array whose saved shape differs.

        Read from the step's array metadata before Orbax reads any array, so a model of
        other widths or embedding size is one clear error, not a failed restore whose
        background writes outlive it. Only leaves found on both sides are compared.
        """
        try:
            stored = self._manager.item_metadata(step)[STATE_ITEM]
        except Exception:  # unreadable metadata: the restore itself reports the damage
            return
        found = _flat_leaves(getattr(stored, "tree", stored))
        expected = _flat_leaves(abstract_state)
        problems = [
            f"{name}: saved {tuple(found[name].shape)}, this model {tuple(np.shape(leaf))}"
            for name, leaf in sorted(expected.items())
            if name in found
            and getattr(found[name], "shape", None) is not None
            and tuple(found[name].shape) != tuple(np.shape(leaf))
        ]
        if problems:
            more = f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
            raise CheckpointShapeError(
                f"checkpoint {self.step_path(step)} holds arrays of other shapes than this "
                f"config's model ({'; '.join(problems[:8])}{more}): it was written by a model "
                "of other widths, depth or embedding size. allow_config_change cannot change "
                "array shapes; use a new --workdir (--config.init_from=<that checkpoint> warm "
                "starts only from a model of the same shapes)."
            )

    def _restore_order(self, steps: Sequence[int]) -> tuple[list[int], list[int]]:
        """Steps to try, newest first: checksummed ones, then those without checksums.

        Returns `(order, unverified_newer)`: the second lists the steps without a
        checksum manifest that are newer than the newest step with one; they are
        tried only after every checksummed step failed.
        """
        checked = [
            s
            for s in steps
            if s in self._verified or os.path.exists(os.path.join(self.step_path(s), MANIFEST_FILE))
        ]
        return _restore_order(steps, checked)

    def restore_latest(self, abstract_state: PyTree) -> tuple[PyTree, dict[str, Any], int] | None:
        """Restores the newest step that can be read, falling back past damaged ones.

        A step that fails to restore is logged (warning, with its path and the error);
        the next older step is tried. If an older step restores, the newer damaged step
        directories are renamed to `<step>.corrupt` so that the resumed run can write
        those steps again (Orbax skips saves at or below its latest step).

        Args:
          abstract_state: as in `restore`.

        Returns:
          `(state, metadata, step)`, or None if the directory holds no finalized step.

        Raises:
          RuntimeError: if no step can be restored (every error is in the message; no
            directory is renamed in that case, since a wrong `abstract_state` fails on
            every step alike).
        """
        self._finalize()
        steps = self.all_steps()
        order, unverified_newer = self._restore_order(steps)
        failures: list[tuple[int, BaseException]] = []
        for step in order:
            try:
                state, metadata = self.restore(step, abstract_state)
            except CheckpointShapeError:
                raise  # another model's checkpoint: no step is damaged, none is moved
            except Exception as e:  # Orbax/tensorstore raise many types on damaged files.
                logging.warning(
                    "Checkpointer: could not restore checkpoint %s (%s: %s); trying the "
                    "previous step.",
                    self.step_path(step),
                    type(e).__name__,
                    str(e)[:500],
                )
                failures.append((step, e))
                continue
            skipped = [s for s in unverified_newer if s > step]
            broken = [s for s in skipped if not _looks_whole(self.step_path(s))]
            if broken:  # files missing or empty: damaged, not merely unverified
                self._quarantine(broken)
                logging.warning(
                    "Checkpointer: step(s) %s of %s have no %s and miss files; moved them "
                    "to <step>%s.",
                    broken,
                    self.directory,
                    MANIFEST_FILE,
                    CORRUPT_SUFFIX,
                )
            skipped = [s for s in skipped if s not in broken]
            if skipped:
                # Kept aside, not deleted: they may be intact, but nothing can tell.
                self._quarantine(skipped, suffix=UNVERIFIED_SUFFIX)
                logging.warning(
                    "Checkpointer: step(s) %s of %s have no %s, so their files could not be "
                    "verified (a damaged array would be read back silently); resumed from "
                    "step %d, whose checksums match, and moved them to <step>%s.",
                    skipped,
                    self.directory,
                    MANIFEST_FILE,
                    step,
                    UNVERIFIED_SUFFIX,
                )
            if failures:
                self._quarantine([s for s, _ in failures])
                logging.warning(
                    "Checkpointer: resumed from step %d of %s instead of step %d.",
                    step,
                    self.directory,
                    max(s for s, _ in failures),
                )
            return state, metadata, step
        if not failures:
            return None
        details = "; ".join(f"{self.step_path(s)}: {type(e).__name__}: {e}" for s, e in failures)
        raise CheckpointRestoreError(
            f"Checkpointer.restore_latest: none of the {len(steps)} checkpoints in "
            f"{self.directory} could be restored against the given abstract_state: {details}",
            self.directory,
            failures,
        ) from failures[-1][1]

    def _quarantine(self, steps: Sequence[int], suffix: str = CORRUPT_SUFFIX) -> None:
        """Renames damaged (or unverifiable) step directories so Orbax no longer lists them."""
        if jax.process_index() == 0:
            for step in steps:
                src = epath.Path(self.step_path(step))
                if not src.exists():
                    continue
                dst = epath.Path(src.parent / f"{src.name}{suffix}")
                n = 1
                while dst.exists():
                    dst = epath.Path(src.parent / f"{src.name}{suffix}-{n}")
                    n += 1
                src.rename(dst)
                logging.warning("Checkpointer: moved damaged checkpoint %s to %s.", src, dst)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("hncl_jax.checkpointing.quarantine")
        self._manager.reload()

    def wait_until_finished(self) -> None:
        """Blocks until an async save has been written, renamed into place and checksummed."""
        self._finalize()

    def close(self) -> None:
        """Waits for pending saves and releases Orbax's threads."""
        try:
            self._finalize()
        finally:
            self._manager.close()


def _restore_order(steps: Sequence[int], checked: Sequence[int]) -> tuple[list[int], list[int]]:
    """`Checkpointer._restore_order` for the steps and those of them with checksums."""
    newest_checked = max(checked, default=None)
    unverified_newer = [s for s in steps if newest_checked is not None and s > newest_checked]
    rest = [s for s in steps if s not in unverified_newer]
    return [*reversed(rest), *reversed(unverified_newer)], unverified_newer


def _metadata_matches_manifest(step_dir: str) -> bool:
    """Whether the step's metadata file has the SHA-256 its checksum manifest records.

    True for a step without a manifest (nothing to compare); False when the manifest
    cannot be read or does not list the file.
    """
    manifest = os.path.join(step_dir, MANIFEST_FILE)
    if not os.path.exists(manifest):
        return True
    rel = os.path.join(METADATA_ITEM, METADATA_ITEM)
    try:
        with open(manifest) as fh:
            want = json.load(fh)["files"][rel]
        path = os.path.join(step_dir, rel)
        return os.path.getsize(path) == want["bytes"] and sha256_file(path) == want["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def latest_intact_metadata(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The metadata dict of the step a resume restores first, read only if intact.

    Steps are taken in `Checkpointer.restore_latest`'s order (checksummed ones first,
    newest first); a step whose metadata file differs from its checksum manifest, or
    cannot be parsed, is skipped (its restore fails too, and moves it aside), so a
    damaged record is never read as the run's config.

    Args:
      directory: a checkpoints directory.

    Returns:
      The dict, or None when no step has a readable, intact one.
    """
    directory = _absolute(directory)
    steps = _finalized_steps(directory)
    checked = [s for s in steps if os.path.exists(os.path.join(directory, str(s), MANIFEST_FILE))]
    for step in _restore_order(steps, checked)[0]:
        step_dir = os.path.join(directory, str(step))
        if not _metadata_matches_manifest(step_dir):
            logging.warning(
                "%s does not match its %s; its config record is not read.",
                os.path.join(step_dir, METADATA_ITEM, METADATA_ITEM),
                MANIFEST_FILE,
            )
            continue
        try:
            with open(os.path.join(step_dir, METADATA_ITEM, METADATA_ITEM)) as fh:
                value = json.load(fh)
        except (OSError, ValueError):
            continue
        if isinstance(value, dict):
            return value
    return None


# Files every step holds (Orbax's state metadata and manifest, the metadata item).
_ESSENTIAL_FILES = (
    os.path.join(STATE_ITEM, "_METADATA"),
    os.path.join(STATE_ITEM, "manifest.ocdbt"),
    os.path.join(METADATA_ITEM, METADATA_ITEM),
)


def _looks_whole(step_dir: str) -> bool:
    """Whether a step directory holds its essential files, none of them empty."""
    for rel in _ESSENTIAL_FILES:
        path = os.path.join(step_dir, rel)
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            return False
    return True


def _finalized_steps(directory: str) -> list[int]:
    """Finalized steps of a checkpoints directory, ascending, as the manager lists them."""
    return sorted(m.step for m in _STEP_NAME_FORMAT.find_all(directory) if m.path.is_dir())


def _is_step_dir(path: epath.Path) -> bool:
    """Whether `path` is a finalized step directory holding the state item."""
    if not (path / STATE_ITEM).is_dir():
        return False
    return any(m.path.name == path.name for m in _STEP_NAME_FORMAT.find_all(path.parent))


def resolve_checkpoint_path(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Finds the checkpoint meant by `path`.

    Args:
      path: one of
        * a step directory (`.../checkpoints/1200`, holding `state/`): that step;
        * a checkpoints directory (holding step directories): its latest step;
        * a workdir (holding `checkpoints/`): the latest step of its checkpoints.

    Returns:
      `(directory, step)`: the absolute checkpoints directory and the step.

    Raises:
      FileNotFoundError: if `path` does not exist or holds no finalized checkpoint.
    """
    p = epath.Path(_absolute(path))
    if not p.exists():
        raise FileNotFoundError(
            f"resolve_checkpoint_path: {os.fspath(path)!r} does not exist; pass a workdir, "
            "its checkpoints/ directory or one step directory such as checkpoints/1200."
        )
    if _is_step_dir(p):
        return os.fspath(p.parent), int(p.name)
    for candidate in (p, p / CHECKPOINTS_DIR):
        steps = _finalized_steps(os.fspath(candidate))
        if steps:
            return os.fspath(candidate), steps[-1]
    raise FileNotFoundError(
        f"resolve_checkpoint_path: no finalized checkpoint in {os.fspath(p)!r}: expected a "
        f"step directory (a number, holding {STATE_ITEM}/), a directory of such step "
        f"directories, or a workdir holding {CHECKPOINTS_DIR}/. Unfinished saves "
        "(*.orbax-checkpoint-tmp) and damaged ones (*.corrupt) do not count."
    )


def read_step_metadata(directory: str | os.PathLike[str], step: int) -> dict[str, Any]:
    """The JSON metadata dict saved with one step, read without Orbax; {} if unreadable.

    Args:
      directory: a checkpoints directory.
      step: a finalized step of it.
    """
    path = os.path.join(_absolute(directory), str(int(step)), METADATA_ITEM, METADATA_ITEM)
    try:
        with open(path) as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _key_str(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _path_str(path: Sequence[Any]) -> str:
    return "/".join(_key_str(k) for k in path)


def _flat_leaves(tree: PyTree) -> dict[str, Any]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {_path_str(path): leaf for path, leaf in flat}


_NOISE = {"saving": 0, "disk_full_seen": False}


def _keep_unless_disk_full(record: pylogging.LogRecord) -> bool:
    """A logging filter: False (drop) for a record about a full disk."""
    text = record.getMessage()
    if "No space left on device" in text or "RESOURCE_EXHAUSTED" in text:
        return False
    error = record.exc_info[1] if record.exc_info else None
    return error is None or not _is_disk_full(error)


def _drop_event_loop_closed(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    def unraisable(info: Any) -> None:
        quiet = _NOISE["saving"] or _NOISE["disk_full_seen"]
        if quiet and isinstance(info.exc_value, RuntimeError):
            if "Event loop is closed" in str(info.exc_value):
                return
        hook(info)

    unraisable.hncl_quiet = True  # type: ignore[attr-defined]
    return unraisable


def _install_disk_full_filters() -> None:
    """Keeps a save that ran out of space from printing anything but its one-line error.

    The save's exception reaches the caller, which reports it in one line. Without these
    filters every writer thread logs its own traceback (absl), asyncio logs "Task exception
    was never retrieved" for each unfinished write when the task is collected (possibly
    after the save returned), and tensorstore's callbacks into the closed event loop print
    "Event loop is closed" as unraisable exceptions. Only records about a full disk are
    dropped; the unraisable ones only during a save or after a disk-full error.
    """
    for name in ("absl", "asyncio"):
        logger = pylogging.getLogger(name)
        if _keep_unless_disk_full not in logger.filters:
            logger.addFilter(_keep_unless_disk_full)
    if not getattr(sys.unraisablehook, "hncl_quiet", False):
        sys.unraisablehook = _drop_event_loop_closed(sys.unraisablehook)


@contextlib.contextmanager
def _quiet_disk_full_logs():
    """Marks a save in progress for the filters of `_install_disk_full_filters`."""
    _install_disk_full_filters()
    _NOISE["saving"] += 1
    try:
        yield
    finally:
        _NOISE["saving"] -= 1


def _read_only_manager(directory: str) -> ocp.CheckpointManager:
    """Another run's checkpoints directory, opened read-only under the writer's item names.

    The state item is read with `PyTreeCheckpointHandler`, the handler under the
    `StandardCheckpointHandler` that wrote it (same files), since only it restores part
    of a tree. Nothing in the directory is created, deleted or cleaned up.
    """
    options = ocp.CheckpointManagerOptions(
        read_only=True,
        save_interval_steps=0,  # what read_only implies; Orbax warns when it must set it
        create=False,
        lightweight_initialize=True,  # steps only: no per-step metadata read on open
    )
    absl_logger = pylogging.getLogger("absl")
    # Orbax warns "Given directory is read only" on opening one read-only: the point here.
    absl_logger.addFilter(_drop_read_only_notice)
    try:
        return ocp.CheckpointManager(
            directory,
            options=options,
            item_handlers={
                STATE_ITEM: ocp.PyTreeCheckpointHandler(),
                METADATA_ITEM: ocp.JsonCheckpointHandler(),
            },
        )
    finally:
        absl_logger.removeFilter(_drop_read_only_notice)


def _drop_read_only_notice(record: pylogging.LogRecord) -> bool:
    return not str(record.msg).startswith("Given directory is read only")


def _leaf_mismatches(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """`path: expected shape dtype, found shape dtype` for every leaf that differs."""
    problems = []
    for name in sorted(set(expected) | set(found)):
        if name not in found:
            e = expected[name]
            problems.append(f"{name}: expected {tuple(np.shape(e))} {np.dtype(e.dtype)}, missing")
        elif name not in expected:
            f = found[name]
            problems.append(f"{name}: unexpected in checkpoint ({tuple(f.shape)} {f.dtype})")
        else:
            e, f = expected[name], found[name]
            e_shape, f_shape = tuple(np.shape(e)), tuple(f.shape)
            if e_shape != f_shape or np.dtype(e.dtype) != np.dtype(f.dtype):
                problems.append(
                    f"{name}: expected {e_shape} {np.dtype(e.dtype)}, found {f_shape} "
                    f"{np.dtype(f.dtype)}"
                )
    return problems


def _partial_restore_args(target: PyTree, found: Mapping[str, Any]) -> PyTree:
    """Restore args placing each leaf as `Checkpointer.restore` does (`StandardRestore`).

    A leaf's own sharding, else the one it was saved with (`found`: its metadata by
    path) where those devices exist here, else `_fallback_sharding()`; a leaf saved
    without one (a numpy array) is read as a numpy array.
    """
    fallback = _fallback_sharding()

    def sharding(path: Sequence[Any], leaf: Any) -> jax.sharding.Sharding | None:
        own = getattr(leaf, "sharding", None)
        if own is not None:
            return own
        saved = getattr(found.get(_path_str(path)), "sharding", None)
        if saved is None:
            return None
        try:
            return saved.to_jax_sharding()
        except ValueError:  # Orbax's error for devices that differ from the saved ones
            return fallback

    shardings = jax.tree_util.tree_map_with_path(sharding, target)
    return ocp.checkpoint_utils.construct_restore_args(target, shardings)


def _verified_warm_start_step(path: Any, directory: str, step: int) -> int:
    """The newest step at or below `step` whose files match their manifest."""
    explicit = _is_step_dir(epath.Path(_absolute(path)))
    candidates = [step] if explicit else [s for s in reversed(_finalized_steps(directory))]
    errors = []
    for s in candidates:
        step_dir = os.path.join(directory, str(s))
        try:
            if not verify_manifest(step_dir):
                logging.warning(
                    "load_for_warm_start: %s has no %s; loaded without verifying its files.",
                    step_dir,
                    MANIFEST_FILE,
                )
        except CheckpointCorruptError as e:
            logging.warning("load_for_warm_start: skipped damaged checkpoint: %s", e)
            errors.append(str(e))
            continue
        if errors:
            logging.warning(
                "load_for_warm_start: warm start from %s instead of the damaged newer step(s).",
                step_dir,
            )
        return s
    raise CheckpointCorruptError(
        f"load_for_warm_start: no intact checkpoint at {os.fspath(path)!r}: "
        + "; ".join(errors)
        + ". Pass another --config.init_from."
    )


class WarmStartMismatchError(ValueError):
    """A warm-start checkpoint's leaves differ from the model's (`problems`: one per leaf)."""

    def __init__(self, problems: Sequence[str], message: str):
        super().__init__(message)
        self.problems = list(problems)


class _WarmStartMismatch(ValueError):
    """The checkpoint is readable but holds other fields or shapes than the target."""


# Reads retried when the step being read vanished (its run, still training, deleted it).
_WARM_START_TRIES = 5


def load_for_warm_start(
    path: str | os.PathLike[str], abstract_state_subtree: Mapping[str, PyTree]
) -> dict[str, PyTree]:
    """Restores a subtree (e.g. params and batch_stats) of another run's checkpoint.

    The source may still be training and delete old steps while one is read: given a
    workdir or a checkpoints directory, a step that vanished mid-read is replaced by the
    newest step then present; a step directory given explicitly that vanished is refused
    with one line (`CheckpointCorruptError`).

    The optimizer state and step are not read: the new run starts its own. Every leaf of
    the target is compared with the checkpoint's metadata first, so an architecture
    mismatch is reported in full instead of failing on the first array.

    Args:
      path: workdir, checkpoints directory or step directory (`resolve_checkpoint_path`).
      abstract_state_subtree: dict from top-level state field names to abstract
        subtrees, e.g. `{"params": abstract.params, "batch_stats": abstract.batch_stats}`
        with `abstract = jax.eval_shape(create_state)`.

    Returns:
      dict with the same keys and structure, holding the restored arrays.

    Raises:
      FileNotFoundError: from `resolve_checkpoint_path`.
      CheckpointCorruptError: the step named by `path` (or, for a workdir, every step)
        differs from its checksum manifest. Given a workdir or a checkpoints directory,
        damaged newer steps are skipped with a warning (and left in place: the
        directory belongs to another run).
      ValueError: if a key is not in the checkpoint, or leaves differ
        (`WarmStartMismatchError`, whose message lists every differing leaf as
        `path: expected shape dtype, found shape dtype`).
    """
    explicit = _is_step_dir(epath.Path(_absolute(path))) if os.path.exists(path) else False
    for attempt in range(_WARM_START_TRIES):
        reading: list[str] = []
        try:
            return _load_for_warm_start(path, abstract_state_subtree, reading)
        except (_WarmStartMismatch, WarmStartMismatchError):
            raise
        except Exception:
            if not reading or os.path.isdir(reading[-1]):
                raise  # not a vanished step: the error stands
            if explicit or attempt == _WARM_START_TRIES - 1:
                raise CheckpointCorruptError(
                    f"load_for_warm_start: checkpoint {reading[-1]} was deleted while it was "
                    "read (its run is still training and keeps only its newest checkpoints). "
                    "Pass that run's workdir as --config.init_from (its newest step is then "
                    "read), or wait until it has finished."
                ) from None
            logging.warning(
                "load_for_warm_start: %s was deleted while it was read (its run is still "
                "training); reading the newest step instead.",
                reading[-1],
            )
    raise AssertionError("unreachable")


def _load_for_warm_start(
    path: str | os.PathLike[str],
    abstract_state_subtree: Mapping[str, PyTree],
    reading: list[str],
) -> dict[str, PyTree]:
    """`load_for_warm_start`'s body; `reading` collects the step directories it reads."""
    if not isinstance(abstract_state_subtree, Mapping) or not abstract_state_subtree:
        raise ValueError(
            "load_for_warm_start: abstract_state_subtree must be a non-empty dict such as "
            f"{{'params': ..., 'batch_stats': ...}}; got {type(abstract_state_subtree).__name__}."
        )
    directory, step = resolve_checkpoint_path(path)
    reading.append(os.path.join(directory, str(step)))
    step = _verified_warm_start_step(path, directory, step)
    reading.append(os.path.join(directory, str(step)))
    state_path = os.path.join(directory, str(step), STATE_ITEM)
    target = dict(abstract_state_subtree)
    try:
        with _read_only_manager(directory) as manager:
            stored = manager.metadata(step).item_metadata[STATE_ITEM]
            stored = getattr(stored, "tree", stored)
            missing = [k for k in target if k not in stored]
            if missing:
                raise _WarmStartMismatch(
                    f"load_for_warm_start: {state_path} has no field(s) {missing}; it holds "
                    f"{sorted(stored)}. Pass a subtree of those fields."
                )
            found = _flat_leaves({k: stored[k] for k in target})
            problems = _leaf_mismatches(_flat_leaves(target), found)
            if problems:
                raise WarmStartMismatchError(
                    problems,
                    f"load_for_warm_start: {len(problems)} leaf/leaves of {state_path} do not "
                    "match the model (same architecture and embed_dim needed):\n  "
                    + "\n  ".join(problems),
                )
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    **{
                        STATE_ITEM: ocp.args.PyTreeRestore(
                            item=target,
                            restore_args=_partial_restore_args(target, found),
                            partial_restore=True,
                        )
                    }
                ),
            )[STATE_ITEM]
    except (_WarmStartMismatch, WarmStartMismatchError):
        raise
    except Exception as e:  # Orbax, tensorstore and json raise many types on damaged files
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise CheckpointCorruptError(
            f"load_for_warm_start: checkpoint {os.path.join(directory, str(step))} (from "
            f"{os.fspath(path)!r}) cannot be read, it is damaged: {type(e).__name__}: {first}. "
            "Pass another --config.init_from (an older step of that run, or an intact copy)."
        ) from e
    logging.info("load_for_warm_start: restored %s from %s.", sorted(target), state_path)
    return {k: restored[k] for k in target}
