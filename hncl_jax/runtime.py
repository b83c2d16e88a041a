"""Process tuning that must happen before the work starts: XLA:CPU's flags, read when JAX
starts its CPU backend, and the allocator's huge pages, read when Python starts.

**XLA:CPU flags** (`configure_xla`, called by `import hncl_jax`). The jaxlib releases
that route every convolution through XLA's YNNPACK library by default (0.10 among them)
run the convolutions of a small CNN's train step 1.5-2.5× slower on a CPU than XLA's
Eigen kernels do, the backward-filter convolution most of all. `configure_xla` adds
`--xla_cpu_experimental_ynn_fusion_type=-individual_convolution` (YNNPACK keeps the
reductions and elementwise work it does well) to `XLA_FLAGS`, where the installed
jaxlib knows that flag and the user has not set it: results are unchanged up to the
order of float32 sums. JAX reads `XLA_FLAGS` once, when its CPU backend starts, so the
package must be imported before any JAX computation runs; otherwise it warns and
changes nothing. `HNCL_JAX_XLA_DEFAULTS=0` keeps XLA's own defaults. BENCHMARKS.md
("XLA:CPU convolutions", under "Recorded results") has the measured effect.

**Huge pages** (`tune_process`).

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

import functools
import glob
import importlib.util
import logging
import mmap
import os
import sys
import warnings

TUNABLE = "glibc.malloc.hugetlb"
# Guards against a loop if the exec'd process does not see the variable.
_MARKER = "HNCL_JAX_REEXECED"
_OPT_OUT = "HNCL_JAX_NO_REEXEC"


# --------------------------------------------------------------------------- XLA flags
_YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"
# The flags `configure_xla` adds to XLA_FLAGS (each guarded by `_XLA_FLAG_SYMBOLS`).
XLA_CPU_FLAGS = (f"--{_YNN_FLAG}=-individual_convolution",)
# XLA aborts the process on an unknown flag in XLA_FLAGS, so a flag is only added when
# the installed jaxlib holds its name and its value's enum name.
_XLA_FLAG_SYMBOLS = (_YNN_FLAG.encode(), b"LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION")
_XLA_OPT_OUT = "HNCL_JAX_XLA_DEFAULTS"


@functools.cache
def jaxlib_knows(*symbols: bytes) -> bool:
    """Whether the installed jaxlib's native libraries contain every one of `symbols`.

    Reads the libraries without importing jaxlib (a page-cache scan, milliseconds when
    the symbols are there); False when jaxlib is not installed.
    """
    spec = importlib.util.find_spec("jaxlib")
    if spec is None or not spec.submodule_search_locations:
        return False
    missing = set(symbols)
    for folder in spec.submodule_search_locations:
        for pattern in ("*.so*", "*.dylib", "*.pyd"):
            for path in sorted(glob.glob(os.path.join(folder, pattern))):
                try:
                    with (
                        open(path, "rb") as fh,
                        mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m,
                    ):
                        missing = {s for s in missing if m.find(s) < 0}
                except (OSError, ValueError):
                    continue
                if not missing:
                    return True
    return False


def xla_flags(environ: dict[str, str] | None = None) -> str | None:
    """The `XLA_FLAGS` value with the library's XLA:CPU defaults, or None to keep it.

    Args:
      environ: the environment (default `os.environ`).

    Returns:
      `XLA_FLAGS` with `XLA_CPU_FLAGS` appended (the user's flags kept, in front), or None
      when the user opted out (`HNCL_JAX_XLA_DEFAULTS=0`), already set the YNNPACK
      fusion flag (to any value: the user's choice wins), or the installed jaxlib does
      not know the flag.
    """
    env = os.environ if environ is None else environ
    if env.get(_XLA_OPT_OUT) == "0":
        return None
    flags = env.get("XLA_FLAGS", "")
    if _YNN_FLAG in flags or not jaxlib_knows(*_XLA_FLAG_SYMBOLS):
        return None
    return " ".join([flags, *XLA_CPU_FLAGS]).strip()


def _backends_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # a JAX without this module: assume it has not started
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started and started())


def configure_xla() -> bool:
    """Adds the library's XLA:CPU defaults (`xla_flags`) to `os.environ["XLA_FLAGS"]`.

    Called by `import hncl_jax`. Child processes inherit the setting. When JAX's
    backends have already started (a JAX computation ran before the import), the flags
    no longer reach this process: on a CPU it warns, with the fix.

    Returns:
      Whether this process's XLA:CPU runs with the library's defaults (False also when
      they do not apply: opted out, a user's own setting, an older jaxlib).
    """
    flags = xla_flags()
    if flags is None:
        return False
    started = _backends_started()
    os.environ["XLA_FLAGS"] = flags
    if started:
        import jax

        if jax.default_backend() == "cpu":
            warnings.warn(
                "JAX's CPU backend started before hncl_jax was imported, so this process "
                "runs convolutions through XLA's slower YNNPACK path (train steps of a "
                "CNN up to 2x slower on a CPU). Import hncl_jax before running any JAX "
                "computation, or start Python with XLA_FLAGS="
                f"{XLA_CPU_FLAGS[0]} (HNCL_JAX_XLA_DEFAULTS=0 silences this).",
                RuntimeWarning,
                stacklevel=3,
            )
        return False
    return True


# --------------------------------------------------------------------------- huge pages
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
