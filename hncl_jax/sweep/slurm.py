"""A sweep on a SLURM cluster: its unfinished runs as one job array, through submitit.

    python -m hncl_jax.sweep --launcher=slurm --config=digits --root=/scratch/grid \\
        --grid=loss.beta=0,2,5,10 --slurm.partition=gpu --slurm.gpus_per_run=1 \\
        --slurm.time_min=240 --slurm.parallelism=8

`submit` validates the options, skips the finished runs and those SLURM already holds
(pending or running), and submits the rest as one array; it returns at once. Each run's
workdir records the job given to it (`slurm_job.json`), so a rerun of the command knows,
without SLURM's accounting, which runs are finished (their `sweep_result.json`), which are
queued or running (`squeue`) and which ended unfinished (cancelled, failed, out of time):
those are submitted again and resume from their last checkpoint.

Time limits and preemption: SLURM sends SIGUSR2 `signal_delay_s` seconds before a job's
time limit (`--signal=USR2@<delay>`, as submitit asks; up to 30 s earlier, as SLURM checks
its limits every 30 s). The trainer treats it like SIGTERM:
it stops at the next step, saves a checkpoint and exits; the job then hands over to
submitit, which requeues it (at most `max_requeues` times for time limits); the requeued
job resumes from the checkpoint. A preempted job (SIGTERM) saves the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from hncl_jax.sweep import grid

# In a run's workdir: the SLURM job last given to the run.
JOB_FILE = "slurm_job.json"
INSTALL = "pip install submitit (in a checkout: pip install -e '.[slurm]')"

# The per-run resources and array options (`--slurm.<name>` on the command line).
DEFAULTS: dict[str, Any] = {
    "partition": "",  # "" : the cluster's default partition
    "account": "",
    "gpus_per_run": 0,
    "cpus_per_run": 1,
    "mem_gb": 0.0,  # 0: the partition's default
    "time_min": 60,
    "parallelism": 0,  # runs at once (0: no limit)
    "signal_delay_s": 120,  # SIGUSR2 this many seconds before the time limit: save, requeue
    "max_requeues": 3,  # time-limit requeues of one run
    "extra": "",  # more sbatch options, 'key=value,key=value', e.g. 'qos=high,constraint=a100'
}


def defaults() -> ml_collections.ConfigDict:
    """The `--slurm` section's defaults (the flags' types come from these values)."""
    return ml_collections.ConfigDict(DEFAULTS)


def options(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`DEFAULTS` updated by `values`, each checked; "extra" parsed into a dict.

    Raises:
      ValueError: an unknown option, a value of the wrong type or out of range.
    """
    values = dict(values or {})
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown SLURM option(s) {unknown}; known: {sorted(DEFAULTS)}.")
    out = {**DEFAULTS, **values}
    for key, default in DEFAULTS.items():
        v = out[key]
        kind = type(default)
        ok = isinstance(v, kind) and not isinstance(v, bool)
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            out[key], ok = float(v), True
        if not ok:
            raise ValueError(
                f"--slurm.{key}={v!r} must be a{'n' if kind is int else ''} "
                f"{kind.__name__}, e.g. --slurm.{key}={default!r}."
            )
    for key in ("gpus_per_run", "mem_gb", "parallelism", "signal_delay_s", "max_requeues"):
        if out[key] < 0:
            raise ValueError(f"--slurm.{key}={out[key]} must be >= 0.")
    for key in ("cpus_per_run", "time_min"):
        if out[key] < 1:
            raise ValueError(f"--slurm.{key}={out[key]} must be >= 1.")
    if out["signal_delay_s"] >= 60 * out["time_min"]:
        raise ValueError(
            f"--slurm.signal_delay_s={out['signal_delay_s']} must be shorter than the time "
            f"limit ({out['time_min']} min): the run saves that long before the limit."
        )
    extra = {}
    for item in filter(None, (s.strip() for s in out["extra"].split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"--slurm.extra={out['extra']!r}: {item!r} is not 'option=value' (sbatch's "
                "long option without its dashes, e.g. 'qos=high,constraint=a100')."
            )
        extra[key.strip().replace("-", "_")] = value.strip()
    out["extra"] = extra
    return out


def import_submitit():
    """submitit, imported without its logging set-up in this process.

    On import submitit calls `logging.config.dictConfig`, which closes every logging
    handler the process has (absl's among them); the submitting process keeps its own.
    Its jobs import it as usual, so their logs hold submitit's lines.
    """
    if "submitit" in sys.modules and sys.modules["submitit"] is not None:
        return sys.modules["submitit"]
    old = os.environ.get("SUBMITIT_LOG_LEVEL")
    os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
    try:
        import submitit
    finally:
        if old is None:
            del os.environ["SUBMITIT_LOG_LEVEL"]
        else:
            os.environ["SUBMITIT_LOG_LEVEL"] = old
    return submitit


def parse_options(text: str) -> dict[str, Any]:
    """`"partition=gpu,gpus_per_run=1,time_min=240"` -> checked `options` (each value read
    as its option's type; `extra` takes the rest of the text, e.g. `extra=qos=high`).

    Raises:
      ValueError: an item that is not option=value, an unknown option, a bad value.
    """
    values: dict[str, Any] = {}
    text = text.strip()
    head, sep, extra = text.partition("extra=")
    if sep:
        values["extra"] = extra
    for item in filter(None, (s.strip() for s in head.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in DEFAULTS:
            raise ValueError(
                f"--slurm={text!r}: {item!r} is not option=value with an option of "
                f"{sorted(DEFAULTS)}, e.g. --slurm=partition=gpu,gpus_per_run=1,time_min=240"
            )
        kind = type(DEFAULTS[key])
        try:
            values[key] = kind(value.strip())
        except ValueError:
            raise ValueError(
                f"--slurm: {key}={value.strip()!r} must be a{'n' if kind is int else ''} "
                f"{kind.__name__}, e.g. {key}={DEFAULTS[key]!r}"
            ) from None
    return options(values)


def check_available() -> None:
    """Raises ValueError unless submitit imports and sbatch is on the PATH."""
    try:
        import_submitit()
    except ImportError:
        raise ValueError(f"--launcher=slurm needs submitit: {INSTALL}") from None
    for tool in ("sbatch", "squeue"):
        if shutil.which(tool) is None:
            raise ValueError(
                f"--launcher=slurm: {tool} is not on the PATH; run the command where SLURM's "
                "client commands work (a login node), or use --launcher=local."
            )


def active_jobs() -> set[str]:
    """The ids of the jobs SLURM holds (pending, running, requeued), array tasks one by one
    ("123_4"). A job that waits on a dependency that can no longer be met (its warm-start
    source failed or was cancelled) is cancelled and left out: it would never run."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i %r"], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0:
        raise RuntimeError(f"squeue failed: {out.stderr.strip()}")
    active, stuck = set(), []
    for line in out.stdout.splitlines():
        job_id, _, reason = line.strip().partition(" ")
        if not job_id:
            continue
        if reason.strip() == "DependencyNeverSatisfied":
            stuck.append(job_id)
        else:
            active.add(job_id)
    if stuck:
        subprocess.run(["scancel", *stuck], capture_output=True, timeout=60)
    return active


def read_job(workdir: str) -> dict | None:
    """The workdir's `slurm_job.json` (None if the run was never submitted)."""
    try:
        with open(os.path.join(workdir, JOB_FILE)) as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None


def status(plan: Sequence[tuple[dict, Any, str]]) -> list[str]:
    """Each run's state: "finished", "active" (queued or running in SLURM) or "todo".

    SLURM is asked first, the workdirs read after, so a job that ends in between counts
    as finished (it wrote its record before it ended) or as todo, never as lost.
    """
    jobs = active_jobs()
    states = []
    for _, config, workdir in plan:
        job = read_job(workdir)
        if grid.finished_record(config, workdir) is not None:
            states.append("finished")
        elif job is not None and job.get("job_id") in jobs:
            states.append("active")
        else:
            states.append("todo")
    return states


class _Run:
    """One run inside its SLURM job: trains it, and on the time-limit signal saves first,
    then lets submitit requeue the job (submitit's `Checkpointable` protocol)."""

    def __init__(self, train_output: bool = False):
        self.train_output = train_output

    def __call__(self, assignments, config, workdir):
        import functools

        from hncl_jax import train

        train_fn = functools.partial(train.train_and_evaluate, verbose=self.train_output)
        try:
            return grid.train_point(assignments, config, workdir, train_fn)["final"]
        except SystemExit as e:
            # The trainer caught submitit's signal (SIGUSR2 before the time limit, or on
            # preemption), saved a checkpoint and stopped: now submitit's own handler,
            # which the trainer restored, requeues the job and exits.
            usr = _usr_signal()
            handler = signal.getsignal(usr)
            if e.code == 128 + usr and callable(handler):
                handler(usr, None)
            raise

    def checkpoint(self, *args, **kwargs):
        """What submitit requeues: this same call (the trainer resumes from its workdir)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _usr_signal() -> int:
    import_submitit()
    from submitit.slurm.slurm import SlurmJobEnvironment

    return int(SlurmJobEnvironment._usr_sig())


def submit(
    plan: Sequence[tuple[dict, Any, str]],
    opts: Mapping[str, Any],
    folder: str,
    *,
    train_output: bool = False,
    name: str = "hncl_sweep",
    after: Sequence[str] = (),
) -> list[str]:
    """Submits the plan's runs as one job array; returns their job ids ("123_0", ...).

    Each run's workdir gets `slurm_job.json` (its job id and log) before this returns.
    `after`: job ids that must end successfully before any of these runs starts
    (`--dependency=afterok:...`).
    """
    submitit = import_submitit()
    executor = submitit.SlurmExecutor(folder=os.path.join(folder, "%A"))
    executor.max_num_timeout = opts["max_requeues"]
    params: dict[str, Any] = {
        "job_name": name,
        "time": opts["time_min"],
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": opts["cpus_per_run"],
        "signal_delay_s": opts["signal_delay_s"],
        "array_parallelism": opts["parallelism"] or len(plan),
        "additional_parameters": dict(opts["extra"]),
    }
    if after:
        params["additional_parameters"]["dependency"] = "afterok:" + ":".join(after)
    if opts["gpus_per_run"]:
        params["gpus_per_node"] = opts["gpus_per_run"]
    if opts["mem_gb"]:
        params["mem"] = f"{int(opts['mem_gb'] * 1024)}MB"
    if opts["partition"]:
        params["partition"] = opts["partition"]
    if opts["account"]:
        params["account"] = opts["account"]
    executor.update_parameters(**params)
    jobs = executor.map_array(
        _Run(train_output),
        [a for a, _, _ in plan],
        [c for _, c, _ in plan],
        [w for _, _, w in plan],
    )
    for job, (_, _, workdir) in zip(jobs, plan, strict=True):
        os.makedirs(workdir, exist_ok=True)
        record = {"job_id": job.job_id, "log": str(job.paths.stdout), "submitted": time.time()}
        with open(os.path.join(workdir, JOB_FILE), "w") as fh:
            json.dump(record, fh, indent=1)
    return [job.job_id for job in jobs]


def _source(config, workdirs: Mapping[str, str]) -> str | None:
    """The workdir (a key of `workdirs`) a run warm-starts from, if it is a run of the plan."""
    source = config.get("init_from") or ""
    path = os.path.abspath(os.path.expanduser(source)) if source else ""
    return path if path in workdirs else None


def run(
    plan: Sequence[tuple[dict, Any, str]],
    opts: Mapping[str, Any],
    root: str,
    *,
    wait: bool = False,
    poll_s: float = 30.0,
    train_output: bool = False,
) -> list[dict[str, Any]] | None:
    """The SLURM launcher: submits what is left of the plan, then reports or waits.

    The finished runs are skipped and the runs SLURM holds are left alone; the others are
    submitted as one job array. A run that warm-starts from another run of the plan
    (`init_from` = its workdir) goes in a later array that starts after its source's job
    has ended successfully (`afterok`), or at once if the source is finished.

    Returns:
      The table's rows (plan order) once every run has finished, else None (printed:
      how many are finished, which are queued or running). With `wait`, it polls every
      `poll_s` seconds until all are finished.

    Raises:
      RuntimeError: with `wait`, runs whose jobs ended without finishing (cancelled,
        failed, out of requeues); rerunning resubmits them.
    """
    root = os.path.abspath(root)
    folder = os.path.join(root, "slurm")
    states = status(plan)
    by_workdir = {os.path.abspath(w): i for i, (_, _, w) in enumerate(plan)}
    job_of = {
        os.path.abspath(w): (read_job(w) or {}).get("job_id")
        for (_, _, w), s in zip(plan, states, strict=True)
        if s == "active"
    }
    todo = [i for i, s in enumerate(states) if s == "todo"]
    while todo:  # in waves: the runs whose sources are finished or already have a job
        wave = [
            i
            for i in todo
            if (src := _source(plan[i][1], by_workdir)) is None
            or states[by_workdir[src]] == "finished"
            or src in job_of
        ]
        if not wave:
            raise ValueError("the plan's warm starts form a cycle (init_from of each other).")
        groups: dict[tuple[str, ...], list[int]] = {}
        for i in wave:
            src = _source(plan[i][1], by_workdir)
            after = (
                (job_of[src],) if src in job_of and states[by_workdir[src]] != "finished" else ()
            )
            groups.setdefault(after, []).append(i)
        for after, members in groups.items():
            runs = [plan[i] for i in members]
            ids = submit(runs, opts, folder, train_output=train_output, after=after)
            for i, job_id in zip(members, ids, strict=True):
                job_of[os.path.abspath(plan[i][2])] = job_id
            _print_submitted(runs, ids, opts, root, after)
        todo = [i for i in todo if i not in wave]
    while True:
        states = status(plan)
        done = sum(s == "finished" for s in states)
        if done == len(plan):
            break
        if not wait:
            active = [
                os.path.basename(w)
                for (_, _, w), s in zip(plan, states, strict=True)
                if s == "active"
            ]
            print(
                f"[sweep] {done} of {len(plan)} runs finished; {len(active)} queued or running "
                f"in SLURM: {', '.join(active)}",
                flush=True,
            )
            return None
        lost = [w for (_, _, w), s in zip(plan, states, strict=True) if s == "todo"]
        if lost:
            text = "; ".join(
                f"{os.path.basename(w)} (job {(read_job(w) or {}).get('job_id')}, "
                f"log {(read_job(w) or {}).get('log')})"
                for w in lost
            )
            raise RuntimeError(
                f"{len(lost)} run(s) ended in SLURM without finishing (cancelled, failed or "
                f"out of requeues): {text}. Rerun the same command to resubmit them; they "
                "resume from their last checkpoint."
            )
        time.sleep(poll_s)
    rows = [grid.row(grid.finished_record(c, w), w) for _, c, w in plan]
    grid.write_table(rows, os.path.join(root, grid.TABLE_FILE))
    return rows


def _print_submitted(runs, ids, opts, root, after) -> None:
    array = ids[0].split("_")[0]
    at_once = min(opts["parallelism"] or len(runs), len(runs))
    then = f", after job(s) {', '.join(after)} succeed" if after else ""
    print(
        f"[sweep] submitted {len(runs)} run(s) to SLURM as job array {array} "
        f"({at_once} at a time{then}):",
        flush=True,
    )
    for job_id, (_, _, workdir) in zip(ids, runs, strict=True):
        print(f"[sweep]   {job_id}  {os.path.basename(workdir)}", flush=True)
    print(
        f"[sweep] follow them with: squeue -j {array}   (logs: {root}/slurm/{array}/)\n"
        "[sweep] rerun this command to resubmit runs that end unfinished and, once all "
        "are finished, print the table (--wait blocks until then).",
        flush=True,
    )
