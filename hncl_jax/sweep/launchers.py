"""Where a sweep's runs train: here, in parallel processes, or as a SLURM job array.

* `local` (the default): one run after another in this process (`grid.run_grid`).
* `local` with `devices_per_run=N`: the machine's GPUs (CUDA_VISIBLE_DEVICES of the command,
  else those `nvidia-smi -L` lists, or an explicit `devices` list) split into groups of N;
  each group trains one run at a time in its own process whose CUDA_VISIBLE_DEVICES is the
  group, so an 8-GPU node trains 8 runs at once (`run_parallel`).
* `slurm`: the unfinished runs that SLURM does not already hold go to SLURM as one job array
  through submitit (`hncl_jax.sweep.slurm`).

Every launcher trains a run with `grid.train_point`, so a run's workdir and its
`sweep_result.json` are the same whichever launcher trained it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from hncl_jax.sweep import grid

LAUNCHERS = ("local", "slurm")
# A run's pickled (assignments, config, workdir, train_output), for its process or job.
SPEC_FILE = "sweep_spec.pkl"
# The console of a run trained in a child process.
LOG_FILE = "sweep_log.txt"


def check_launcher(name: str) -> str:
    """`name` if it is a known launcher, else ValueError naming the known ones."""
    if name not in LAUNCHERS:
        raise ValueError(
            f"--launcher={name!r} is not a launcher; use one of {', '.join(LAUNCHERS)} "
            "(local: this machine, with --devices_per_run=N one run per N GPUs at once; "
            "slurm: a SLURM job array)."
        )
    return name


# --------------------------------------------------------------------------- several devices
def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (none: [])."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, _ in enumerate(x for x in out.splitlines() if x.startswith("GPU "))]


def device_groups(devices: Sequence[str], per_run: int) -> list[str]:
    """`devices` cut into CUDA_VISIBLE_DEVICES values of `per_run` devices each.

    Raises:
      ValueError: per_run < 1, or fewer devices than one run needs.
    """
    if per_run < 1:
        raise ValueError(f"--devices_per_run={per_run} must be >= 1.")
    devices = list(devices)
    if len(devices) < per_run:
        raise ValueError(
            f"--devices_per_run={per_run} needs {per_run} devices, but only {len(devices)} "
            f"are given ({','.join(devices) or 'none'}): set CUDA_VISIBLE_DEVICES or "
            "--devices=0,1,..., or lower --devices_per_run."
        )
    n = len(devices) // per_run
    return [",".join(devices[i * per_run : (i + 1) * per_run]) for i in range(n)]


def write_spec(assignments, config, workdir: str, train_output: bool) -> str:
    """Pickles what `run_spec` needs to train the run; returns the file's path."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, SPEC_FILE)
    with open(path, "wb") as fh:
        pickle.dump((dict(assignments), config, workdir, bool(train_output)), fh)
    return path


def run_spec(path: str) -> dict[str, Any]:
    """Trains the run pickled at `path` (`write_spec`); returns its `sweep_result.json`."""
    import functools

    from hncl_jax import train

    with open(path, "rb") as fh:
        assignments, config, workdir, train_output = pickle.load(fh)
    train_fn = functools.partial(train.train_and_evaluate, verbose=train_output)
    return grid.train_point(assignments, config, workdir, train_fn)


def run_parallel(
    plan: Sequence[tuple[dict[str, Any], Any, str]],
    groups: Sequence[str],
    *,
    train_output: bool = False,
    verbose: bool = True,
    poll_s: float = 0.5,
) -> list[dict[str, Any]]:
    """Trains the plan's unfinished runs in parallel processes, one per device group.

    Each run is `python -m hncl_jax.sweep.worker <workdir>/sweep_spec.pkl` with
    CUDA_VISIBLE_DEVICES set to its group; its console goes to `<workdir>/sweep_log.txt`
    (and to this console as well with `train_output`). A group takes the next run as soon
    as its run ends. Ctrl-C (or SIGTERM) passes SIGTERM to the runs, which save a
    checkpoint and stop; rerunning the command resumes them.

    Returns:
      The table (as `grid.run_grid`), in plan order.

    Raises:
      RuntimeError: some runs failed (each named with its log); the others finished.
    """
    if not groups:
        raise ValueError("run_parallel: no device group to run on.")
    todo = [
        (i, a, c, w) for i, (a, c, w) in enumerate(plan, 1) if grid.finished_record(c, w) is None
    ]
    if verbose and len(todo) < len(plan):
        print(f"[sweep] {len(plan) - len(todo)} of {len(plan)} runs finished already", flush=True)
    free = list(groups)
    running: dict[str, tuple[subprocess.Popen, int, str, Any, float]] = {}
    failed: list[str] = []
    try:
        while todo or running:
            while todo and free:
                i, a, c, w = todo.pop(0)
                group = free.pop(0)
                spec = write_spec(a, c, w, train_output)
                log = open(os.path.join(w, LOG_FILE), "a")  # noqa: SIM115 (closed below)
                env = dict(os.environ, CUDA_VISIBLE_DEVICES=group)
                proc = subprocess.Popen(
                    [sys.executable, "-m", "hncl_jax.sweep.worker", spec],
                    env=env,
                    stdout=None if train_output else log,
                    stderr=subprocess.STDOUT if not train_output else None,
                )
                running[group] = (proc, i, w, log, time.perf_counter())
                if verbose:
                    print(
                        f"[sweep] run {i}/{len(plan)} on devices {group}: {os.path.basename(w)}",
                        flush=True,
                    )
            time.sleep(poll_s)
            for group, (proc, i, w, log, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[group]
                free.append(group)
                name = os.path.basename(w)
                if proc.returncode != 0:
                    failed.append(f"{name} (exit {proc.returncode}; log {w}/{LOG_FILE})")
                    if verbose:
                        print(f"[sweep] run {i}/{len(plan)} FAILED: {failed[-1]}", flush=True)
                elif verbose:
                    record = grid.load_record(w)
                    print(
                        f"[sweep] run {i}/{len(plan)} done in {time.perf_counter() - t0:.0f} s: "
                        f"{name}" + grid.result_text(record["final"] if record else {}),
                        flush=True,
                    )
    except KeyboardInterrupt:
        for proc, *_ in running.values():
            proc.send_signal(signal.SIGTERM)  # the trainer saves a checkpoint and stops
        for proc, *_ in running.values():
            proc.wait()
        raise
    rows = [grid.row(r, w) for _, c, w in plan if (r := grid.finished_record(c, w)) is not None]
    root = os.path.dirname(plan[0][2]) if plan else "."
    if rows:
        grid.write_table(rows, os.path.join(root, grid.TABLE_FILE))
    if failed:
        raise RuntimeError(
            f"{len(failed)} run(s) failed: {'; '.join(failed)}. The other runs finished; "
            "rerun the same command to retry the failed ones."
        )
    return rows


def launch(
    plan: Sequence[tuple[dict[str, Any], Any, str]],
    root: str,
    *,
    launcher: str = "local",
    devices: Sequence[str] | None = None,
    devices_per_run: int = 0,
    slurm_options: Any = None,
    wait: bool = False,
    poll_s: float = 30.0,
    train_fn: Any = None,
    train_output: bool = False,
    verbose: bool = True,
) -> list[dict[str, Any]] | None:
    """Trains (or submits) a plan's runs with the chosen launcher; every option is checked
    and every run's config validated before the first run trains or is submitted.

    Args:
      plan: `grid.plan_grid`'s runs (several grids may be concatenated; a run whose
        `init_from` is another run's workdir comes after it, or, on SLURM, waits for its
        job).
      root: where the table (`results.csv`) and SLURM's logs go.
      launcher: "local" or "slurm".
      devices, devices_per_run: local: one run per `devices_per_run` devices in parallel
        processes (0: one after another in this process, with `train_fn`).
      slurm_options: slurm: `slurm.options` values (a mapping, or text for
        `slurm.parse_options`).
      wait, poll_s: slurm: block until every run is finished.

    Returns:
      The table's rows in plan order; None from slurm while runs are queued or running.
    """
    from hncl_jax.sweep import slurm

    check_launcher(launcher)
    if launcher == "slurm":
        opts = (
            slurm.parse_options(slurm_options)
            if isinstance(slurm_options, str)
            else slurm.options(slurm_options)
        )
        slurm.check_available()
        grid.check_plan(plan, num_devices=max(1, opts["gpus_per_run"]))
        return slurm.run(plan, opts, root, wait=wait, poll_s=poll_s, train_output=train_output)
    if devices_per_run:
        groups = device_groups(visible_gpus() if devices is None else devices, devices_per_run)
        grid.check_plan(plan, num_devices=devices_per_run)
        return run_parallel(plan, groups, train_output=train_output, verbose=verbose)
    grid.check_plan(plan)
    if train_fn is None:
        import functools

        from hncl_jax import train

        train_fn = functools.partial(train.train_and_evaluate, verbose=train_output)
    return grid.run_plan(plan, root, train_fn=train_fn, verbose=verbose)
