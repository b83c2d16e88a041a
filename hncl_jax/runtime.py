"""Process tuning that must happen before Python starts: the allocator's huge pages.

XLA:CPU allocates and frees its temporaries with `malloc` on every call of a compiled
program. glibc serves large blocks with fresh `mmap`s in 4 KiB pages, so each call
re-faults them page by page (hundreds of thousands of minor page faults per train step
of a small CNN on a CPU). With the glibc tunable `glibc.malloc.hugetlb=1` (glibc ≥ 2.35)
malloc marks its memory for transparent huge pages (2 MiB): far fewer faults and a
faster step, with identical results (only where memory lives changes). glibc reads
tunables once, at process start, so setting the variable from Python is too late:
`tune_process()` re-executes the process once with it set. The command-line entry
points call it first thing; see BENCHMARKS.md for the measured difference.

Set `HNCL_JAX_NO_REEXEC=1` to keep a process as started (e.g. under a debugger).
"""

from __future__ import annotations

import logging
import os
import sys

TUNABLE = "glibc.malloc.hugetlb"
# Guards against a loop if the exec'd process does not see the variable.
_MARKER = "HNCL_JAX_REEXECED"
_OPT_OUT = "HNCL_JAX_NO_REEXEC"


def glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the running glibc, or None on another C library or system."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    except (AttributeError, ValueError, OSError):
        return None
    if name != "glibc":
        return None
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def _thp_available() -> bool:
    """Whether transparent huge pages can back madvise'd memory (Linux)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            mode = fh.read()
    except OSError:
        return False
    return "[never]" not in mode


def tuned_environment(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment to re-execute with, or None when nothing needs to change.

    Args:
      environ: the current environment (default `os.environ`).

    Returns:
      A copy of `environ` with `glibc.malloc.hugetlb=1` added to `GLIBC_TUNABLES`
      (other tunables kept), or None if the tunable is already set (to any value, so a
      user's choice wins), the process was already re-executed, the user opted out with
      `HNCL_JAX_NO_REEXEC=1`, or the system lacks glibc ≥ 2.35 or transparent huge pages.
    """
    env = dict(os.environ if environ is None else environ)
    if env.get(_OPT_OUT) == "1" or env.get(_MARKER) == "1":
        return None
    tunables = env.get("GLIBC_TUNABLES", "")
    if TUNABLE in tunables:
        return None
    version = glibc_version()
    if version is None or version < (2, 35) or not _thp_available():
        return None
    env["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}=1" if tunables else f"{TUNABLE}=1"
    env[_MARKER] = "1"
    return env


def tune_process() -> None:
    """Re-executes this Python process once with the huge-page allocator tunable set.

    Call it first thing in a command-line entry point, before any long work (the
    process starts over, so work done before is repeated). Does nothing when
    `tuned_environment()` returns None, or when the original command line is not known
    (an embedded interpreter). Never returns otherwise.
    """
    env = tuned_environment()
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv or not sys.executable:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def quiet_logs() -> None:
    """Keeps the command-line entry points' console to what a user needs.

    JAX reports every platform it probes ("Unable to initialize backend 'tpu'") at INFO,
    and Orbax logs every save step at INFO through absl; both are kept at warnings.
    """
    absl_logger = logging.getLogger("absl")
    absl_logger.setLevel(logging.INFO)
    absl_logger.addFilter(lambda r: r.levelno >= logging.WARNING or "orbax" not in r.pathname)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
