"""The last reliability gaps: interrupts, damaged inputs, memory and sizes, messages.

Each test reproduces one failure a hostile user met (a kill at an odd moment, a damaged
file, a container's memory limit, a misspelt config argument) and checks the trainer
now answers it with one line, or recovers. Where the user's command is what breaks, the
test runs that command (`python -m hncl_jax.main`, `python -m hncl_jax.sweep`) in a
subprocess.
"""

from __future__ import annotations

import os

import pytest

from hncl_jax.train import memory, validation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GB = 2.0**30


# ------------------------------------------------------------------ container memory
def _fake_cgroup(root, cgroup_lines, files):
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "self" / "cgroup").write_text("\n".join(cgroup_lines) + "\n")
    for rel, text in files.items():
        path = root / "sys" / "fs" / "cgroup" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def test_container_memory_limit_reads_cgroup_v2_and_v1(tmp_path):
    v2 = tmp_path / "v2"
    _fake_cgroup(v2, ["0::/box/job"], {"box/job/memory.max": "max", "box/memory.max": str(3 << 30)})
    assert memory.container_memory_limit(str(v2)) == 3 << 30
    v1 = tmp_path / "v1"
    _fake_cgroup(
        v1,
        ["4:memory:/docker/abc", "1:cpu:/"],
        # A namespaced container: its own cgroup is the mount's root.
        {"memory/memory.limit_in_bytes": str(2 << 30)},
    )
    assert memory.container_memory_limit(str(v1)) == 2 << 30
    unlimited = tmp_path / "none"
    _fake_cgroup(unlimited, ["4:memory:/"], {"memory/memory.limit_in_bytes": str(2**63 - 4096)})
    assert memory.container_memory_limit(str(unlimited)) is None
    assert memory.container_memory_limit(str(tmp_path / "nothing")) is None


def test_memory_check_uses_a_container_limit_below_host_ram(monkeypatch, tiny_config):
    """A 7 GB step in a 3 GB container is refused before compiling, naming the limit."""
    monkeypatch.setattr(memory, "container_memory_limit", lambda root="/": 3 * GB)
    limit, where = memory.available_memory()
    assert (limit, where) == (3 * GB, "the container's memory limit")
    c = tiny_config()
    c.loss.k, c.loss.draw = 64, "pair"
    kw = {"batch_size": 2048, "input_shape": (8,), "num_params": 1000}
    estimate = memory.estimate_step_memory(c, **kw)
    assert estimate["total"] > 3 * GB
    with pytest.raises(validation.ConfigError, match="the container's memory limit is 3 GB"):
        memory.check_memory(c, **kw)
    monkeypatch.setattr(memory, "container_memory_limit", lambda root="/": None)
    assert memory.available_memory()[1] == "host RAM"
