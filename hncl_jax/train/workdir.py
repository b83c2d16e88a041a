"""The workdir: the names of its files, its exclusive lock, its layout check, the run record.

Every file and folder a run writes into its workdir is named once, in the table below
(`CHECKPOINTS_DIR`, `METRICS_FILE`, `CONFIG_FILE`, ...); the trainer, `checkpointing`
and `reporting` take the names from here.

**The run record.** `config.json` holds the full config of the workdir's last run
(`save_config_record`); its fields but `validation.RESUMABLE_FIELDS` define the run, and
`check_workdir` refuses a workdir that holds a run of a different config. Older runs
wrote `run_fingerprint.json` instead: still read (and checked) where present, removed
when the config record is next written.

**The lock.** Two trainers writing one workdir destroy each other's work: Orbax deletes
the other process's unfinished save at start-up, both append to `metrics.jsonl`, and
retention forgets steps the other one wrote. `lock_workdir` makes the second one fail at
once:

    with workdir.lock_workdir("/tmp/run"):   # raises WorkdirLockedError if held
        ...                                  # the run

The lock is `fcntl.flock(LOCK_EX | LOCK_NB)` on `<workdir>/.hncl_lock`. The kernel
drops it when the holding process dies, SIGKILL included, so a crashed run never
leaves a stale lock behind; the file only records who holds it (PID, host, start
time) for the error message. On NFS, Linux implements `flock` with POSIX byte-range
locks, which the server arbitrates between hosts. A filesystem that does not support
locking at all (some FUSE mounts) is logged as a warning and the run proceeds
unlocked. The file is removed on release; the acquire step checks that the file it
locked is still the one at that path, so a release racing an acquire never lets two
processes hold it.

In a multi-host run only process 0 takes the lock (the workdir is one shared folder);
the other processes wait for its outcome and fail with the same message if it was
refused.

**The layout.** `check_layout` refuses a workdir whose known outputs have the wrong kind
or cannot be read (a regular file named `checkpoints`, an unreadable `metrics.jsonl`)
before any of them is read as "absent", truncated or rewritten.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging as pylogging
import math
import os
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from hncl_jax.train import validation

# --------------------------------------------------------------------------- file names
# Every file and folder a run writes into its workdir.
CHECKPOINTS_DIR = "checkpoints"  # Orbax checkpoints, one folder per step (`checkpointing`)
TENSORBOARD_DIR = "tensorboard"  # TensorBoard events (`reporting.MetricWriter`)
PLOTS_DIR = "plots"  # the run's figures (`reporting.plot_all`)
METRICS_FILE = "metrics.jsonl"  # one JSON object per `MetricWriter.write_scalars` call
CONFIG_FILE = "config.json"  # the run record: the full config of the last run
FINGERPRINT_FILE = "run_fingerprint.json"  # older runs' record (still read, then removed)
SPECTRA_FILE = "spectra.npz"  # every evaluation's DC spectra (`reporting.write_spectra`)
SUMMARY_FILE = "summary.txt"  # the run's plain-text summary (`reporting.write_summary`)
WANDB_ID_FILE = "wandb_id.txt"  # the W&B run a resumed run continues (`WandbLogger`)
LOCK_FILE = ".hncl_lock"  # who holds the workdir's lock (`lock_workdir`)
# (name, kind) of the outputs `check_layout` checks; "dir" or "file".
OUTPUTS = (
    (CHECKPOINTS_DIR, "dir"),
    (TENSORBOARD_DIR, "dir"),
    (PLOTS_DIR, "dir"),
    (METRICS_FILE, "file"),
    (CONFIG_FILE, "file"),
    (FINGERPRINT_FILE, "file"),
    (SUMMARY_FILE, "file"),
)

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "FINGERPRINT_FILE",
    "LOCK_FILE",
    "METRICS_FILE",
    "OUTPUTS",
    "PLOTS_DIR",
    "SPECTRA_FILE",
    "SUMMARY_FILE",
    "TENSORBOARD_DIR",
    "WANDB_ID_FILE",
    "WorkdirError",
    "WorkdirLockedError",
    "check_layout",
    "check_workdir",
    "json_safe",
    "load_config_json",
    "lock_workdir",
    "save_config",
    "save_config_record",
    "save_fingerprint",
]


class WorkdirError(validation.ConfigError):
    """The workdir cannot hold this run (a file in its place, damaged outputs).

    A `validation.ConfigError` (hence a ValueError): `--workdir` is part of the run's
    configuration.
    """


class OutputDiskFullError(OSError):
    """The disk filled up while a run's outputs (metrics.jsonl, TensorBoard) were written."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return self.strerror or super().__str__()


class WorkdirLockedError(OSError):
    """Another live process holds the workdir's lock (an OSError, like EWOULDBLOCK)."""


def _holder(path: str) -> str:
    try:
        with open(path) as fh:
            info = json.load(fh)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"PID {info['pid']} on host {info['host']} (started {started})"
    except (OSError, ValueError, KeyError, TypeError):
        # The holder has opened the file but not yet written its record.
        return "a process that has not yet recorded its PID and host"


def _broken_link(path: str) -> str | None:
    """`path` or the nearest of its parents that is a symbolic link to nothing, if any."""
    while path:
        if os.path.islink(path) and not os.path.exists(path):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return None


def _created_dirs(path: str) -> list[str]:
    """The directories `os.makedirs(path)` would create, deepest first."""
    missing = []
    while path and not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


class _Lock:
    """The held lock of one workdir (see `lock_workdir`)."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_FILE)
        self.fd: int | None = None
        self.created = _created_dirs(workdir)

    def acquire(self) -> None:
        if os.path.exists(self.workdir) and not os.path.isdir(self.workdir):
            raise WorkdirError(
                f"workdir {self.workdir} is a file, not a folder; pass another --workdir."
            )
        broken = _broken_link(self.workdir)
        if broken is not None:
            raise WorkdirError(
                f"workdir {self.workdir}: {broken} is a broken symbolic link (to "
                f"{os.readlink(broken)!r}, which does not exist); create its target, fix the "
                "link, or pass another --workdir."
            )
        os.makedirs(self.workdir, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self.fd = None
                self.remove_created_dirs()
                raise WorkdirLockedError(
                    f"workdir {self.workdir} is in use by {_holder(self.path)} (lock file "
                    f"{self.path}). Wait for that run to end or stop it, or pass another "
                    "--workdir; two runs on one workdir overwrite each other's checkpoints "
                    "and metrics."
                ) from None
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                logging.warning(
                    "the filesystem of %s does not support file locks (%s); running without "
                    "the workdir lock: do not start a second run on this workdir.",
                    self.workdir,
                    e,
                )
                self.fd = fd
                break
            # A releasing holder unlinks the file after we opened it: our lock is then on
            # a deleted inode that nobody else will ever look at; open the path again.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                break
            os.close(fd)
        record = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        )
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, record.encode() + b"\n", 0)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still holding it (see acquire)
        os.close(self.fd)
        self.fd = None
        self.remove_created_dirs()

    def remove_created_dirs(self) -> None:
        """Removes the folders this lock created if the run left them empty."""
        for d in self.created:
            try:
                os.rmdir(d)
            except OSError:  # not empty (the run wrote outputs) or already gone
                break


@contextlib.contextmanager
def lock_workdir(workdir: str | os.PathLike[str]) -> Iterator[str]:
    """Holds the workdir's exclusive lock for the duration of the `with` block.

    Creates the workdir if needed; on exit removes the lock file, and the folders it
    created if nothing was written into them (a run refused by a config check leaves
    no trace).

    Args:
      workdir: the run's folder.

    Yields:
      The absolute workdir path.

    Raises:
      WorkdirLockedError: another process holds the lock; the message names its PID
        and host.
      WorkdirError: `workdir` is a regular file.
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(workdir)))
    lock = _Lock(path)
    error = ""
    if jax.process_index() == 0:
        try:
            lock.acquire()
        except (WorkdirLockedError, WorkdirError) as e:
            error = str(e)
            if jax.process_count() == 1:
                raise
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        # The other processes wait here for process 0's outcome, and share its refusal.
        refused = multihost_utils.broadcast_one_to_all(np.int32(bool(error)))
        if int(refused):
            raise WorkdirLockedError(error or f"process 0 could not lock workdir {path}.")
    try:
        yield path
    finally:
        lock.release()


def check_layout(workdir: str) -> None:
    """Refuses a workdir whose known outputs have the wrong kind or cannot be read.

    Reads only. Runs before anything in the workdir is read as absent, truncated or
    rewritten, so a damaged workdir is never mistaken for a fresh one.

    Args:
      workdir: the run's folder (it need not exist).

    Raises:
      WorkdirError: naming the path, what was expected and what to do.
    """
    if not os.path.exists(workdir):
        return
    if not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir} is a file, not a folder; pass another --workdir.")
    for name, kind in OUTPUTS:
        path = os.path.join(workdir, name)
        if not os.path.lexists(path):
            continue
        if kind == "dir" and not os.path.isdir(path):
            raise WorkdirError(
                f"{path} should be a folder of this run's {name} but is not (a file or a "
                "broken link); nothing was changed. Restore it, move it away, or pass "
                "another --workdir."
            )
        if kind == "file" and not os.path.isfile(path):
            raise WorkdirError(
                f"{path} should be a file but is not (a folder or a broken link); nothing "
                "was changed. Move it away or pass another --workdir."
            )
        if not os.access(path, os.R_OK | os.W_OK | (os.X_OK if kind == "dir" else 0)):
            raise WorkdirError(
                f"{path} cannot be read or written by this user; nothing was changed. Fix "
                "its permissions or pass another --workdir."
            )
        if kind == "file":
            try:
                with open(path, "rb") as fh:
                    fh.read(1)
            except OSError as e:
                raise WorkdirError(
                    f"{path} cannot be read ({e}); nothing was changed. Restore or move it, "
                    "or pass another --workdir."
                ) from e


# --------------------------------------------------------------------------- run record
def json_safe(value: Any) -> Any:
    if hasattr(value, "to_dict") and callable(value.to_dict):  # ml_collections.ConfigDict
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [json_safe(v) for v in items]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic | np.ndarray) or hasattr(value, "__array__"):
        return json_safe(np.asarray(value).tolist())
    return str(value)


def save_config(config: Any, workdir: str | os.PathLike[str]) -> str:
    """Writes `<workdir>/config.json` (keys sorted, values made JSON-safe).

    Tuples become lists, numpy values Python numbers, non-finite floats and unknown
    objects their string form. The file is replaced atomically.

    Args:
      config: a dict or an `ml_collections.ConfigDict` (anything with `to_dict()`).
      workdir: run directory (created if missing).

    Returns:
      The path written.
    """
    safe = json_safe(config)
    if not isinstance(safe, dict):
        raise ValueError(
            f"save_config: config must be a dict or ConfigDict; got {type(config).__name__}."
        )
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(os.fspath(workdir), CONFIG_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(safe, f, sort_keys=True, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return path


def load_config_json(workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads the dict written by `save_config`.

    Raises:
      FileNotFoundError: if `<workdir>/config.json` does not exist.
    """
    path = os.path.join(os.fspath(workdir), CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"load_config_json: {path} does not exist; is {os.fspath(workdir)!r} a run "
            "directory written by train_and_evaluate?"
        )
    with open(path) as f:
        return json.load(f)


def check_workdir(
    workdir: str,
    fingerprint: dict,
    allow_change: bool,
    *,
    has_checkpoint: bool = False,
    checkpoint_fingerprint: dict | None = None,
) -> None:
    """Refuses a workdir that holds a run of a different config (unless allowed).

    The run's config is recorded in `config.json` (`save_config_record`) and in every
    checkpoint's metadata (`checkpoint_fingerprint`); an older workdir's
    `run_fingerprint.json` is read too. Every record found must match, so deleting one
    file does not let a changed config through. A workdir holding a checkpoint but no
    record at all is refused too: nothing could tell whether its config is this one.
    Reads only: a missing workdir passes.

    Args:
      workdir: the run directory.
      fingerprint: the fields that define the run (`config_fingerprint`).
      allow_change: log a warning instead of raising (`config.allow_config_change`).
      has_checkpoint: the workdir holds a finalized checkpoint.
      checkpoint_fingerprint: the fingerprint saved with its latest checkpoint, if any.

    Raises:
      ConfigError: the workdir is a file, a record is unreadable, a record holds a
        different config (the message lists every differing field), or the workdir
        holds a checkpoint without any record of its config.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise validation.ConfigError(
            f"workdir {workdir} is a file, not a folder; pass another --workdir."
        )
    records = [
        (path, record)
        for path, record in (
            (os.path.join(workdir, CONFIG_FILE), _read_record(workdir, CONFIG_FILE)),
            (os.path.join(workdir, FINGERPRINT_FILE), _read_record(workdir, FINGERPRINT_FILE)),
        )
        if record is not None
    ]
    if checkpoint_fingerprint is not None:
        records.append(("its latest checkpoint", checkpoint_fingerprint))
    if not records and has_checkpoint:
        msg = (
            f"workdir {workdir} holds checkpoints but no record of their config "
            f"({CONFIG_FILE} and the checkpoints' own record are both missing), so a "
            "changed config cannot be ruled out. Use a new --workdir, or pass "
            "--config.allow_config_change=True to continue it with the current config."
        )
        if not allow_change:
            raise validation.ConfigError(msg)
        pylogging.warning("%s (allowed by config.allow_config_change)", msg)
        return
    for where, old in records:
        _compare_fingerprints(workdir, where, old, fingerprint, allow_change)


def _read_record(workdir: str, name: str) -> dict | None:
    """The run-defining fields recorded in `<workdir>/<name>` (None: no such file)."""
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as fh:
            record = json.load(fh)
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
    except (OSError, ValueError) as e:
        raise validation.ConfigError(
            f"{path} (the config of the run in workdir {workdir}) cannot be read ({e}); "
            "restore it, use a new --workdir, or delete the file to continue this run "
            "with the current config."
        ) from e
    return validation.fingerprint_of(record) if name == CONFIG_FILE else record


def _compare_fingerprints(
    workdir: str, where: str, old: dict, fingerprint: dict, allow_change: bool
) -> None:
    if old == fingerprint:
        return
    if not isinstance(old, dict):
        old = {"<record>": old}
    old, new = _flatten(old), _flatten(fingerprint)
    diffs = sorted(
        f"{k}: {old.get(k, '<unset>')!r} → {new.get(k, '<unset>')!r}"
        for k in set(old) | set(new)
        if old.get(k, "<unset>") != new.get(k, "<unset>")
    )
    own_file = where.endswith((CONFIG_FILE, FINGERPRINT_FILE))
    source = "" if own_file else f", recorded in {where}"
    msg = (
        f"workdir {workdir} holds a run of a different config ({'; '.join(diffs)}{source}). "
        "Use a new --workdir, or pass --config.allow_config_change=True to continue it anyway."
    )
    if not allow_change:
        raise validation.ConfigError(msg)
    pylogging.warning("%s (allowed by config.allow_config_change)", msg)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"loss": {"beta": 1}} -> {"loss.beta": 1}, so a difference names the exact field."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def save_config_record(workdir: str, config: ml_collections.ConfigDict) -> str:
    """Writes the workdir's one config record, `config.json` (atomically); returns its path.

    An older workdir's `run_fingerprint.json` is removed once the new record is in
    place, so the two cannot disagree after a change allowed by
    `config.allow_config_change`.
    """
    path = save_config(json.loads(config.to_json_best_effort()), workdir)
    legacy = os.path.join(workdir, FINGERPRINT_FILE)
    if os.path.exists(legacy):
        os.remove(legacy)
    return path


def save_fingerprint(workdir: str, fingerprint: dict) -> None:
    """Writes an older workdir's `run_fingerprint.json` (still read by `check_workdir`).

    Runs record their config with `save_config_record`; this writes the record older
    runs left, for tools and tests that recreate such a workdir.

    Args:
      workdir: the run directory (must exist).
      fingerprint: JSON-serializable dict (`config_fingerprint`).
    """
    path = os.path.join(workdir, FINGERPRINT_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(fingerprint, fh, sort_keys=True, indent=1)
    os.replace(tmp, path)
