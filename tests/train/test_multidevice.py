"""The user's command, `python -m hncl_jax.main --config=digits:smoke`, on 1, 2 and 8 forced
CPU devices and as two `--multihost` processes: every run finishes, and the runs agree.

Tolerance: the runs see the same global batches in the same order (the batch is sharded,
not split into per-device batches: BatchNorm statistics and the loss's negatives are over
the whole batch), so only the order of float32 reductions differs. Measured over the 4 steps
here: losses within 2e-7 relative, parameters within 4e-6 of each array's largest magnitude
(Adam's normalised update turns a rounding difference into at most a few learning-rate
units on near-zero gradients). The tests allow 1e-5 on losses and 1e-4 on parameters;
a run whose batch statistics or negatives were per device, or whose data order changed with
the device count, differs from the first step by 1e-3 or more. A default mesh the
trainer's sharding constraints refuse (Explicit axes) fails the run itself.
"""

import os
import subprocess
import sys

import pytest

from tests.train.multidevice_common import (
    ROOT,
    SMALL,
    assert_runs_agree,
    env,
    free_port,
    train_cli,
)

LOSS_RTOL = 1e-5
PARAM_RTOL = 1e-4


@pytest.mark.slow
def test_cli_on_one_two_and_eight_devices_agree(tmp_path):
    for n in (1, 2, 8):
        out = train_cli(tmp_path / f"d{n}", devices=n)
        assert "summary.txt" in out.stdout  # the console headline names the full summary
        assert "train/epoch_loss" in (tmp_path / f"d{n}" / "summary.txt").read_text()
    assert_runs_agree(tmp_path / "d1", tmp_path / "d2", loss_rtol=LOSS_RTOL, param_rtol=PARAM_RTOL)
    assert_runs_agree(tmp_path / "d1", tmp_path / "d8", loss_rtol=LOSS_RTOL, param_rtol=PARAM_RTOL)


@pytest.mark.slow
def test_cli_multihost_two_processes_agree_with_two_devices(tmp_path):
    """Two processes of one CPU device each (JAX's distributed runtime, gloo collectives),
    found through JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, train one
    run into one workdir; it equals the one-process run on two devices."""
    workdir = tmp_path / "multihost"
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hncl_jax.main", *SMALL, "--multihost", f"--workdir={workdir}"],
            cwd=ROOT,
            env=env(
                JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-4000:]
    assert "JAX process 0/2" in outs[0][1] + outs[0][0] or os.path.exists(workdir)
    train_cli(tmp_path / "d2", devices=2)
    assert_runs_agree(tmp_path / "d2", workdir, loss_rtol=LOSS_RTOL, param_rtol=PARAM_RTOL)
