"""The built wheel carries the configs and runs from outside the checkout.

`python -m build` builds the wheel from the checkout; the slow test installs it with
`--no-deps` into a fresh venv whose only other packages are this venv's dependencies
(added as a path, so the checkout's editable install is not seen), and runs a shipped
config by name from an empty folder.
"""

import glob
import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytest.importorskip("build")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), ROOT],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = glob.glob(str(out / "hncl_jax-*.whl"))
    return path


def test_wheel_holds_every_package_and_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in glob.glob(os.path.join(ROOT, "configs", "*.py")):
        assert f"hncl_jax/configs/{os.path.basename(config)}" in names
    for init in glob.glob(os.path.join(ROOT, "hncl_jax", "**", "__init__.py"), recursive=True):
        rel = os.path.relpath(init, ROOT).replace(os.sep, "/")
        assert rel in names, f"{rel} is not in the wheel: add its package to pyproject"
    assert not any(n.startswith(("configs/", "tests/", "colabs/")) for n in names)


@pytest.mark.slow
def test_installed_wheel_runs_a_shipped_config_from_any_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The project venv's packages as a plain path entry: its .pth files (the editable
    # install of this checkout) are not processed, so only the wheel provides hncl_jax.
    with open(os.path.join(site, "project_deps.pth"), "w") as fh:
        fh.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel],
        check=True,
    )
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HNCL_VERBOSE")}
    env["JAX_PLATFORMS"] = "cpu"
    where = subprocess.run(
        [python, "-c", "import hncl_jax.configs as c; print(c.__file__)"],
        cwd=run_dir,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert where.startswith(site), where  # the wheel's copy, not the checkout's
    proc = subprocess.run(
        [python, "-m", "hncl_jax.main", "--config=digits:smoke", "--config.num_epochs=1"],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "runs" / "digits_smoke" / "summary.txt").exists()
