"""`python -m hncl_jax.benchmark` as a user runs it: a refused option or a missing PyTorch
is one line with the fix (exit 2), and BENCHMARKS.md gives the CPU-only torch install."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

# The benchmark's command line in subprocesses: the slow tier.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def _benchmark(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "HNCL_VERBOSE"}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run(
        [sys.executable, "-m", "hncl_jax.benchmark", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("I1")]


def test_refused_option_is_one_line_with_the_fix(tmp_path):
    proc = _benchmark("--mode=epoch", "--dataset_size=2", "--batch=4", cwd=tmp_path)
    assert proc.returncode == 2
    assert _lines(proc.stderr) == [
        "error: --dataset_size=2 is smaller than --batch=4: an epoch would have no step; "
        "raise --dataset_size or lower --batch."
    ]
    assert proc.stdout == ""


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_peer_torch_without_torch_is_one_line_with_the_install_command(tmp_path):
    proc = _benchmark("--peer=torch", "--mode=step", "--model=tiny_cnn", cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = _lines(proc.stderr)
    assert line.startswith("error: --peer=torch needs PyTorch") and CPU_TORCH in line


def test_benchmarks_md_and_the_error_give_the_cpu_only_torch_command(monkeypatch):
    assert CPU_TORCH in (ROOT / "BENCHMARKS.md").read_text()
    from hncl_jax.benchmark import torch_peer

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails as if absent
    with pytest.raises(ImportError) as info:
        torch_peer.import_torch()
    assert CPU_TORCH in str(info.value) and "'.[bench]'" in str(info.value)
