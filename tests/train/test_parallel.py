"""The sharded train step equals the single-device one (8 fake CPU devices, 2 processes)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EIGHT_DEVICES = """
import json, jax
from tests.train.parallel_common import one_step
assert jax.device_count() == 8, jax.devices()
one = one_step(jax.devices()[:1])
eight = one_step(jax.devices())
print(json.dumps({"one": one, "eight": eight}))
"""


def _env(**extra):
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


@pytest.mark.slow
def test_step_on_eight_devices_equals_one_device():
    out = subprocess.run(
        [sys.executable, "-c", EIGHT_DEVICES],
        cwd=ROOT,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    (loss1, sum1), (loss8, sum8) = res["one"], res["eight"]
    # Same global batch, same keys: only the order of the reductions differs.
    np.testing.assert_allclose(loss8, loss1, rtol=1e-5)
    np.testing.assert_allclose(sum8, sum1, rtol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_through_jax_distributed_run_a_step(tmp_path):
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.join(ROOT, "tests", "train", "distributed_worker.py"),
                str(i),
                "2",
                port,
                str(tmp_path / f"p{i}.json"),
            ],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        try:
            _, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-3000:]
    results = [json.load(open(tmp_path / f"p{i}.json")) for i in range(2)]
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-6)
    assert results[0]["param_checksum"] == pytest.approx(results[1]["param_checksum"], rel=1e-6)
    single = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, jax; from tests.train.parallel_common import one_step; "
            "print(json.dumps(one_step(jax.devices()[:1])))",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    loss1, sum1 = json.loads(single.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(results[0]["loss"], loss1, rtol=1e-5)
    np.testing.assert_allclose(results[0]["param_checksum"], sum1, rtol=1e-5)


def test_default_mesh_has_auto_axes():
    """The mesh every user gets (no devices passed) must accept the step's sharding
    constraints: `jax.make_mesh` gives Explicit axes from jax 0.8 on, which they refuse."""
    from jax.sharding import AxisType

    from hncl_jax import train

    assert train.make_mesh().axis_types == (AxisType.Auto,)
