"""`python -m hncl_jax.sweep --launcher=slurm` and `srun ... --multihost` on a real SLURM.

These tests need a SLURM controller and node that answer (`sinfo`) and submitit. CI starts
a one-node SLURM with `.ci/slurm.sh start DIR` (and stops it after the slow tier); outside
CI the tests skip and say so. Under CI=true they fail instead of skipping.

The runs are digits:smoke (the tiny CNN on 256 real 8x8 images) with plots and the linear
probe off; SLURM runs them in their own processes, and every comparison with the local
launcher is exact: the same program on the same machine gives the same floats.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.train.multidevice_common import ROOT, SMALL, env, final_params, train_cli

SETUP = (
    "start a one-node SLURM with `sudo .ci/slurm.sh start /tmp/slurm` and "
    "`export SLURM_CONF=/tmp/slurm/slurm.conf` (Debian: apt-get install -y "
    "--no-install-recommends slurmctld slurmd slurm-client munge; pip install "
    "submitit)"
)


def _why_no_slurm() -> str | None:
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed"
    for tool in ("sbatch", "squeue", "sinfo", "scancel", "srun"):
        if shutil.which(tool) is None:
            return f"{tool} is not on the PATH"
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or not out.stdout.strip():
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no SLURM controller answers (sinfo: {last[:200]})"
    return None


@pytest.fixture
def slurm():
    why = _why_no_slurm()
    if why:
        message = f"SLURM tests: {why}; {SETUP}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


# Two values of beta, two lengths: 1 epoch (4 steps) and 1,000 epochs (4,000 steps, about
# 16 s of training on 2 idle cores and more under load, evaluated and checkpointed at the
# end only), so a run is still training when the test cancels it after its first 100 steps.
GRID = ["--grid=loss.beta=0,2", "--grid=num_epochs=1,1000"]
LONG_RUN = "loss.beta=0,num_epochs=1000"
SWEEP = [
    *SMALL[:1],  # --config=digits:smoke
    *SMALL[2:],
    "--config.eval_every_epochs=1000",
    "--config.checkpoint_every_epochs=1000",
    "--config.log_every_steps=100",
    *GRID,
]


def sweep(root, *args, base=SWEEP, timeout=900, check=True):
    out = subprocess.run(
        [sys.executable, "-m", "hncl_jax.sweep", *base, f"--root={root}", *args],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    return out


def table(root) -> list[dict]:
    """results.csv without the workdir column (the roots differ)."""
    with open(os.path.join(root, "results.csv")) as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        del r["workdir"]
    return rows


def job_of(workdir) -> str:
    with open(os.path.join(workdir, "slurm_job.json")) as fh:
        return json.load(fh)["job_id"]


def in_squeue(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True)
    return job_id in out.stdout.split()


def wait_for(predicate, what: str, timeout: float = 600, every: float = 1.0):
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"gave up waiting for {what}"
        time.sleep(every)


def start_now(job: str, extra=()) -> None:
    """Starts a requeued job at once (SLURM holds one for 2 minutes), with `extra` changes
    (e.g. "TimeLimit=30"). Waits until the requeue has made it pending, as an update
    before that is overwritten."""

    def started() -> bool:
        cmd = ["squeue", "-h", "-j", job, "-o", "%T %r"]
        state = subprocess.run(cmd, capture_output=True, text=True).stdout.split()
        if state[:1] == ["RUNNING"]:
            return True
        if state[:1] != ["PENDING"]:
            return False
        update = ["scontrol", "update", f"JobId={job}", "StartTime=now", *extra]
        subprocess.run(update, capture_output=True)
        state = subprocess.run(cmd, capture_output=True, text=True).stdout.split()
        return state[:1] == ["RUNNING"] or state[1:2] != ["BeginTime"]

    wait_for(started, f"job {job} to start again", 120, every=0.5)


def trained_steps(workdir) -> int:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path) as fh:
        return max((json.loads(line)["step"] for line in fh if line.strip()), default=0)


@pytest.mark.slow
def test_grid_as_a_slurm_array_survives_scancel_and_equals_local(slurm, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    sweep(local)
    t0 = time.monotonic()
    out = sweep(remote, "--launcher=slurm", "--slurm.parallelism=2", "--slurm.time_min=30")
    returned_in = time.monotonic() - t0
    assert "submitted 4 run(s) to SLURM as job array" in out.stdout, out.stdout
    assert "(2 at a time)" in out.stdout and "squeue -j" in out.stdout
    assert not (remote / "results.csv").exists()  # it returned before the runs finished
    assert returned_in < 120, returned_in

    # Cancel the long run mid-training: the trainer saves on SIGTERM and stops.
    long_dir = remote / LONG_RUN
    job = job_of(long_dir)
    wait_for(lambda: trained_steps(long_dir) >= 100, f"{LONG_RUN} to train 100 steps")
    subprocess.run(["scancel", job], check=True)
    wait_for(lambda: not in_squeue(job), f"job {job} to leave the queue")
    assert not (long_dir / "sweep_result.json").exists()
    log = open(json.load(open(long_dir / "slurm_job.json"))["log"]).read()
    assert "interrupted at step" in log, log[-2000:]

    # Rerunning the command resubmits the cancelled run alone (the others are finished,
    # queued or running); with --wait it blocks until all are finished, then prints the table.
    again = sweep(remote, "--launcher=slurm", "--slurm.parallelism=2", "--wait", "--poll_s=2")
    assert "submitted 1 run(s)" in again.stdout, again.stdout
    assert f"  {LONG_RUN}" in again.stdout
    assert "| run |" in again.stdout
    assert job_of(long_dir) != job
    assert table(remote) == table(local)
    # The resumed run equals the uninterrupted one to the bit.
    a, b = final_params(local / LONG_RUN), final_params(long_dir)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # Nothing left to do: the rerun prints the table without submitting anything.
    done = sweep(remote, "--launcher=slurm")
    assert "submitted" not in done.stdout and "| run |" in done.stdout


@pytest.mark.slow
def test_a_run_at_its_time_limit_saves_is_requeued_and_resumes(slurm, tmp_path):
    """A 2-minute limit with SIGUSR2 60 s before it: SLURM checks its limits every 30 s and
    sends the signal up to 30 s early, so 30 to 60 s after the start, once training runs.
    The trainer stops at the next step and saves, submitit requeues the job, and the
    requeued job resumes from the save. Once the first save is seen, the test lifts the
    requeued job's limit so it finishes in one go (the exactness of a resume is the
    scancel test's)."""
    # 40,000 steps (4 per epoch): on an idle machine about 2.5 minutes, so the run is still
    # training when the signal comes however fast the machine is (8,000 steps once ended
    # in 32 s, before any signal).
    run = "loss.beta=0,num_epochs=10000"
    remote = tmp_path / "slurm"
    base = [
        *SMALL[:1],
        *SMALL[2:],
        "--config.eval_every_epochs=10000",
        "--config.checkpoint_every_epochs=10000",
        "--config.log_every_steps=100",
        "--grid=loss.beta=0",
        "--grid=num_epochs=10000",
    ]
    out = sweep(
        remote,
        "--launcher=slurm",
        "--slurm.time_min=2",
        "--slurm.signal_delay_s=60",
        "--slurm.max_requeues=6",
        base=base,
    )
    assert "submitted 1 run(s)" in out.stdout
    job = job_of(remote / run)
    log_path = json.load(open(remote / run / "slurm_job.json"))["log"]
    log = lambda: open(log_path).read() if os.path.exists(log_path) else ""
    # SLURM holds a requeued job for 2 minutes; the test starts each requeued attempt at
    # once. A signal that comes before training starts is submitit's alone (it requeues,
    # nothing was trained); after the first attempt that saved, the limit is lifted.
    requeues, lifted = 0, False
    while not lifted:
        wait_for(lambda: log().count("Requeued job") > requeues, "a requeue", 600)  # noqa: B023
        requeues += 1
        lifted = "interrupted at step" in log()
        start_now(job, ["TimeLimit=30"] if lifted else [])
    assert requeues <= 6
    again = sweep(remote, "--launcher=slurm", "--wait", "--poll_s=2", base=base, timeout=900)
    assert "submitted" not in again.stdout  # the requeued job finished the run
    text = log()
    saved = int(text.split("interrupted at step ")[1].split("/")[0])
    assert 0 < saved < 40000
    record = json.load(open(remote / run / "sweep_result.json"))
    assert record["final"]["step"] == 40000
    # Resumed from the save, not from the start: no step was trained (logged) twice.
    with open(remote / run / "metrics.jsonl") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    steps = [r["step"] for r in rows if "train/loss" in r]
    assert len(steps) == len(set(steps)) and steps == sorted(steps), steps


@pytest.mark.slow
def test_srun_two_tasks_multihost_agrees_with_two_devices(slurm, tmp_path):
    """`srun -n 2 python -m hncl_jax.main ... --multihost`: jax.distributed.initialize()
    finds the coordinator, the process count and its index in SLURM's environment."""
    workdir = tmp_path / "srun"
    out = subprocess.run(
        [
            "srun",
            "-n",
            "2",
            "--time=10",
            sys.executable,
            "-m",
            "hncl_jax.main",
            *SMALL,
            "--multihost",
            f"--workdir={workdir}",
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])
    assert "JAX process 0/2" in out.stderr and "JAX process 1/2" in out.stderr, out.stderr[-3000:]
    from tests.train.multidevice_common import assert_runs_agree
    from tests.train.test_multidevice import LOSS_RTOL, PARAM_RTOL

    train_cli(tmp_path / "d2", devices=2)
    assert_runs_agree(tmp_path / "d2", workdir, loss_rtol=LOSS_RTOL, param_rtol=PARAM_RTOL)


@pytest.mark.slow
def test_a_warm_start_runs_after_its_source_as_a_job_dependency(slurm, tmp_path, monkeypatch):
    """Both runs submitted at once: the warm start's array waits (afterok) for its source's
    job, and starts from the source's final parameters."""
    from configs import digits
    from hncl_jax import sweep
    from hncl_jax.sweep import slurm as slurm_lib

    base = digits.get_config("smoke")
    base.num_epochs, base.plots, base.linear_probe = 1, False, "off"
    source = str(tmp_path / "loss.beta=0")
    points = [{"loss.beta": 0.0}, {"loss.beta": 2.0, "init_from": source}]
    plan = sweep.plan_grid(base, {}, str(tmp_path), points=points)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # the jobs inherit it
    rows = slurm_lib.run(plan, slurm_lib.options(), str(tmp_path), wait=True, poll_s=2)
    assert [r["run"] for r in rows] == [os.path.basename(w) for _, _, w in plan]
    first, second = (sweep.load_record(w)["launch"] for _, _, w in plan)
    assert second["started"] >= first["ended"], (first, second)
    assert first["slurm_job_id"] != second["slurm_job_id"]
    with open(os.path.join(plan[1][2], "config.json")) as fh:
        assert json.load(fh)["init_from"] == source
