"""The notebooks' install cell cannot dead-end: where the repository address cannot be
reached it stops with one message saying how to upload the wheel (the route that works)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLABS = os.path.join(ROOT, "colabs")
NOTEBOOKS = ["theory", "synthetic_collapse", "cifar_collapse", "near_nc_warm_start", "clop"]

jupytext = pytest.importorskip("jupytext")


def _install_cell(name: str) -> str:
    cells = jupytext.read(os.path.join(COLABS, f"{name}.py")).cells
    (cell,) = [c.source for c in cells if c.cell_type == "code" and "REPOSITORY =" in c.source]
    return cell


def test_every_notebook_has_the_same_install_cell():
    assert len({_install_cell(name) for name in NOTEBOOKS}) == 1


def test_unreachable_repository_stops_with_one_message_naming_the_wheel_route(tmp_path):
    cell = _install_cell("theory")
    lines = cell.splitlines()
    (i,) = [i for i, ln in enumerate(lines) if ln.startswith("REPOSITORY = ")]
    lines[i] = f'REPOSITORY = "file://{tmp_path}/no_such_repository"'  # cannot be reached
    # As on Colab: google.colab is imported; no wheel in /content, SOURCE unset.
    code = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')\n"
    proc = subprocess.run(
        [sys.executable, "-c", code + "\n".join(lines)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    (message,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert message.startswith(f"hncl_jax could not be installed from git+file://{tmp_path}")
    assert "Upload an hncl_jax wheel to /content" in message and "SOURCE" in message
    assert "python -m build" in message
    assert proc.stdout == ""
