"""One run per workdir: an exclusive lock held for the whole run, and a layout check.

Two trainers writing one workdir destroy each other's work: Orbax deletes the other
process's unfinished save at start-up, both append to `metrics.jsonl`, and retention
forgets steps the other one wrote. `lock_workdir` makes the second one fail at once:

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

`check_layout` refuses a workdir whose known outputs have the wrong kind or cannot be
read (a regular file named `checkpoints`, an unreadable `metrics.jsonl`) before any
of them is read as "absent", truncated or rewritten.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator

import jax
import numpy as np
from absl import logging

from hncl_jax.train import validation

LOCK_FILE = ".hncl_lock"
# (name, kind) of every output a run writes into its workdir; "dir" or "file".
OUTPUTS = (
    ("checkpoints", "dir"),
    ("tensorboard", "dir"),
    ("plots", "dir"),
    ("metrics.jsonl", "file"),
    ("config.json", "file"),
    ("run_fingerprint.json", "file"),
    ("summary.txt", "file"),
)

__all__ = ["LOCK_FILE", "WorkdirError", "WorkdirLockedError", "check_layout", "lock_workdir"]


class WorkdirError(validation.ConfigError):
    """The workdir cannot hold this run (a file in its place, damaged outputs).

    A `validation.ConfigError` (hence a ValueError): `--workdir` is part of the run's
    configuration.
    """


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
