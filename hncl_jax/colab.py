"""Notebook set-up: install without replacing the runtime's jax, name the accelerator, workdir.

A Colab runtime comes with a CUDA-enabled jax and jaxlib matched to its GPU driver;
`pip install hncl_jax` could replace them with CPU-only or mismatched wheels. The
notebooks therefore install hncl_jax itself with `pip install --no-deps <source>` (this
module imports only the standard library, so it works before any dependency is there) and
then call `setup()`, which installs only the requirements the runtime lacks, with every
preinstalled jax package pinned to its version (`install_missing_dependencies`), reads
the notebook's size, picks the run folder and names the accelerator:

    !pip install -q --no-deps git+https://github.com/<owner>/hncl_jax   # or a wheel / zip
    from hncl_jax import colab
    QUICK, WORKDIR = colab.setup(use_drive=True)   # runs on Google Drive resume next session
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

# Never upgraded, downgraded or replaced when already installed: the runtime's own
# accelerator build of JAX (with its CUDA / TPU plugins).
PROTECTED = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "libtpu")
DEFAULT_WORKDIR = "/tmp/hncl_colabs"
DRIVE_MOUNT = "/content/drive"
# The environment variable that shrinks every notebook run to CPU size ("1").
QUICK_VARIABLE = "HNCL_QUICK"


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_versions(path: Sequence[str] | None = None) -> dict[str, str]:
    """{canonical distribution name: version} of what is installed (on `path`: sys.path)."""
    dists = importlib.metadata.distributions(**({"path": list(path)} if path else {}))
    return {_canonical(d.metadata["Name"]): d.version for d in dists if d.metadata["Name"]}


def requirements(dist: str = "hncl_jax") -> list[str]:
    """The installed `dist`'s run-time requirements (no extras), e.g. ["jax>=0.4.35", ...]."""
    from packaging.requirements import Requirement

    out = []
    for line in importlib.metadata.requires(dist) or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(line)
    return out


def install_plan(
    reqs: Iterable[str], installed: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """What to install so that `reqs` hold, never touching a preinstalled jax.

    Args:
      reqs: requirement strings ("flax>=0.10").
      installed: {distribution name: version} of the environment (`installed_versions`).

    Returns:
      (to_install, pins): the requirements that are missing or unsatisfied, except
      those on an installed `PROTECTED` package, which are kept as they are; and the
      `{name: version}` constraints pinning every installed `PROTECTED` package, to pass
      to pip so that installing (say) flax cannot pull in another jax.
    """
    from packaging.requirements import Requirement

    installed = {_canonical(k): v for k, v in installed.items()}
    pins = {name: installed[name] for name in PROTECTED if name in installed}
    to_install = []
    for line in reqs:
        req = Requirement(line)
        name = _canonical(req.name)
        if name in pins:
            continue
        version = installed.get(name)
        if version is None or not req.specifier.contains(version, prereleases=True):
            to_install.append(line)
    return to_install, pins


def pip_command(to_install: Sequence[str], constraints_file: str | None) -> list[str]:
    """The `pip install` argv for `to_install` under an optional constraints file."""
    cmd = [sys.executable, "-m", "pip", "install", "-q"]
    if constraints_file:
        cmd += ["-c", constraints_file]
    return cmd + list(to_install)


def install_missing_dependencies(
    dist: str = "hncl_jax",
    *,
    run: Callable[[list[str]], object] | None = None,
    installed: Mapping[str, str] | None = None,
) -> list[str]:
    """Installs the requirements of `dist` the environment lacks; keeps jax/jaxlib as they are.

    Args:
      dist: the distribution whose requirements to satisfy (installed with --no-deps).
      run: runs a command (default: `subprocess.run(cmd, check=True)`); tests pass a
        recorder.
      installed: the environment's versions (default: `installed_versions()`).

    Returns:
      the requirement strings that were installed (empty when nothing was missing).
    """
    installed = installed_versions() if installed is None else installed
    to_install, pins = install_plan(requirements(dist), installed)
    if not to_install:
        print("hncl_jax: every dependency is already installed")
        return []
    run = run or (lambda cmd: subprocess.run(cmd, check=True))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("".join(f"{name}=={version}\n" for name, version in pins.items()))
    try:
        run(pip_command(to_install, fh.name if pins else None))
    finally:
        os.unlink(fh.name)
    kept = ", ".join(f"{k} {v}" for k, v in pins.items()) or "none preinstalled"
    print(f"hncl_jax: installed {', '.join(to_install)}; kept the runtime's {kept}")
    return to_install


def accelerator(devices: Sequence | None = None) -> tuple[str, str]:
    """(platform, description) of the default JAX devices, e.g. ("gpu", "1 × NVIDIA A100")."""
    if devices is None:
        import jax

        devices = jax.devices()
    platform = devices[0].platform
    kinds = sorted({getattr(d, "device_kind", platform) for d in devices})
    return platform, f"{len(devices)} × {', '.join(kinds)}"


def check_accelerator(long_run: bool, devices: Sequence | None = None) -> str:
    """Prints the accelerator; warns, before a long run, when there is only a CPU.

    Args:
      long_run: whether the notebook is about to run at full size.
      devices: the devices to describe (default `jax.devices()`).

    Returns:
      the platform ("gpu", "tpu" or "cpu").
    """
    platform, description = accelerator(devices)
    print(f"accelerator: {platform.upper()} ({description})")
    if platform == "cpu" and long_run:
        print(
            "WARNING: no GPU or TPU. The full-size runs of this notebook take hours to days "
            "on a CPU. On Colab: Runtime > Change runtime type > GPU, then rerun; or set "
            "HNCL_QUICK=1 for the CPU-sized check."
        )
    return platform


def workdir(
    use_drive: bool = False,
    folder: str = "hncl_runs",
    *,
    default: str = DEFAULT_WORKDIR,
    mount: Callable[[str], object] | None = None,
    long_run: bool = True,
) -> str:
    """The notebook's run folder: $HNCL_WORKDIR, else Google Drive (when asked), else `default`.

    On Google Drive (`use_drive=True` on Colab) the runs outlive the runtime: rerunning a
    cell in a later session resumes each run from its last checkpoint. Before a long run
    on Colab without Drive (nor $HNCL_WORKDIR) it warns that a recycled runtime loses them.

    Args:
      use_drive: mount Google Drive (Colab only) and keep the runs in `MyDrive/<folder>`.
      folder: the folder inside MyDrive.
      default: the folder used otherwise.
      mount: mounts Drive at a path (default `google.colab.drive.mount`).
      long_run: the runs are full-size ones (hours), worth keeping (`setup`: not QUICK).

    Returns:
      the folder, created if needed.
    """
    path = os.environ.get("HNCL_WORKDIR")
    if not path and use_drive:
        if mount is None:
            if "google.colab" not in sys.modules:
                print("use_drive: not on Colab, using", default)
            else:
                from google.colab import drive  # type: ignore[import-not-found]

                mount = drive.mount
        if mount is not None:
            mount(DRIVE_MOUNT)
            path = os.path.join(DRIVE_MOUNT, "MyDrive", folder)
    if not path and long_run and "google.colab" in sys.modules:
        print(
            f"WARNING: the runs are kept on this runtime's disk ({default}), which a recycled "
            "runtime loses with every checkpoint; set USE_DRIVE = True (Google Drive) before "
            "long runs, so that a later session resumes them."
        )
    path = path or default
    os.makedirs(path, exist_ok=True)
    print("runs are kept in", path)
    return path


def quick_mode() -> bool:
    """Whether $HNCL_QUICK asks for the CPU-sized runs: "1" yes; "0" or unset, full size."""
    value = os.environ.get(QUICK_VARIABLE, "0")
    if value not in ("0", "1"):
        raise ValueError(
            f"{QUICK_VARIABLE}={value!r}: use 1 for the CPU-sized runs (every run shrunk to "
            "run top to bottom on a CPU in one to two CPU-minutes) or 0 for the full size."
        )
    return value == "1"


class Setup(NamedTuple):
    """What `setup` found: the notebook's size and its run folder."""

    quick: bool
    workdir: str


def setup(
    use_drive: bool = False,
    folder: str = "hncl_runs",
    *,
    install: bool | None = None,
    devices: Sequence | None = None,
    mount: Callable[[str], object] | None = None,
) -> Setup:
    """A notebook's set-up in one call, once hncl_jax itself is installed.

    1. On Colab (or with `install=True`) installs the dependencies the runtime lacks,
       keeping its jax (`install_missing_dependencies`); elsewhere installs nothing.
    2. Reads the size from $HNCL_QUICK (`quick_mode`).
    3. Picks the run folder (`workdir`): $HNCL_WORKDIR, else Google Drive with
       `use_drive`, else /tmp/hncl_colabs.
    4. Names the accelerator, warning before a full-size run on a CPU
       (`check_accelerator`), and prints the devices and the size.

    Args:
      use_drive: keep the runs on Google Drive (Colab), so a later session resumes them.
      folder: the folder inside MyDrive.
      install: install the missing dependencies (default: only on Colab).
      devices: the devices to describe (default `jax.devices()`).
      mount: mounts Drive at a path (default `google.colab.drive.mount`).

    Returns:
      Setup(quick, workdir), e.g. `QUICK, WORKDIR = colab.setup()`.

    Raises:
      ValueError: for an $HNCL_QUICK other than 0 or 1 (before installing anything).
    """
    quick = quick_mode()
    if install is None:
        install = "google.colab" in sys.modules
    if install:
        install_missing_dependencies()
        importlib.invalidate_caches()  # so that the packages just installed import
    path = workdir(use_drive, folder, mount=mount, long_run=not quick)
    check_accelerator(long_run=not quick, devices=devices)
    if devices is None:
        import jax

        devices = jax.devices()
    print("devices:", list(devices), "| QUICK (tiny sizes)" if quick else "| full size")
    return Setup(quick, path)
