"""The user's training command in a subprocess, and what two of its workdirs are compared by.

Shared by the multi-device tests (forced CPU devices, `--multihost`) and the SLURM tests.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# digits:smoke (256 real 8x8 images, the tiny CNN with BatchNorm, batch 64, hard negatives)
# for one epoch: 4 steps, each a global batch split over the devices. No plots or probe:
# they do not depend on the device count and cost most of a smoke run's time.
SMALL = [
    "--config=digits:smoke",
    "--config.num_epochs=1",
    "--config.plots=False",
    "--config.linear_probe=off",
]


def env(devices: int | None = None, **extra) -> dict:
    """The environment of a child: CPU only, this checkout importable, `devices` forced."""
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    out = dict(os.environ, PYTHONPATH=path, JAX_PLATFORMS="cpu")
    out.pop("XLA_FLAGS", None)
    if devices is not None:
        out["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out.update(extra)
    return out


def train_cli(workdir, *, devices: int | None = None, args=(), timeout=600, **extra_env):
    """`python -m hncl_jax.main <SMALL> --workdir=...`; asserts it finished."""
    out = subprocess.run(
        [sys.executable, "-m", "hncl_jax.main", *SMALL, *args, f"--workdir={workdir}"],
        cwd=ROOT,
        env=env(devices, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_losses(workdir) -> np.ndarray:
    """The per-step training losses of a run's metrics.jsonl, in step order."""
    with open(os.path.join(workdir, "metrics.jsonl")) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    rows = [r for r in rows if "train/loss" in r]
    return np.asarray([r["train/loss"] for r in sorted(rows, key=lambda r: r["step"])])


def final_params(workdir) -> dict:
    """{path: array} of the parameters in the run's latest checkpoint, read with orbax alone
    (no model built, so it does not depend on the trainer's code)."""
    import jax
    import orbax.checkpoint as ocp

    ckpts = os.path.join(workdir, "checkpoints")
    step = max(int(s) for s in os.listdir(ckpts) if s.isdigit())
    path = os.path.join(ckpts, str(step), "state")
    checkpointer = ocp.PyTreeCheckpointer()
    meta = checkpointer.metadata(path)
    tree = getattr(meta, "item_metadata", meta)
    tree = getattr(tree, "tree", tree)
    args = jax.tree.map(
        lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
        tree,
        is_leaf=lambda x: hasattr(x, "shape"),
    )
    params = checkpointer.restore(path, restore_args=args)["params"]
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}


def assert_runs_agree(a, b, *, loss_rtol: float, param_rtol: float) -> None:
    """Same number of steps, per-step losses within `loss_rtol`, every parameter array
    within `param_rtol` of its largest magnitude (rtol 0: bit-identical)."""
    la, lb = train_losses(a), train_losses(b)
    assert la.shape == lb.shape and la.size > 0, (la, lb)
    if loss_rtol == 0:
        np.testing.assert_array_equal(la, lb)
    else:
        np.testing.assert_allclose(lb, la, rtol=loss_rtol)
    pa, pb = final_params(a), final_params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        if param_rtol == 0:
            np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
        else:
            scale = float(np.max(np.abs(pa[k]))) or 1.0
            np.testing.assert_allclose(pb[k], pa[k], rtol=0, atol=param_rtol * scale, err_msg=k)
