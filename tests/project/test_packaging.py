"""The release: sdist and wheel build, pass `twine check`, and the wheel runs anywhere.

`python -m build` builds the sdist from the checkout and the wheel from the sdist (so the
sdist is complete); `twine check` accepts both; the sdist installs; the slow test
installs the wheel with `--no-deps` into a fresh venv whose only other packages are this
venv's dependencies (added as a path, so the checkout's editable install is not seen),
and runs a shipped config by name from an empty folder.
"""

import glob
import os
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile

import pytest

import hncl_jax

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytest.importorskip("build")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(sdist, wheel) of `python -m build`: the wheel is built from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), ROOT],
        check=True,
        capture_output=True,
        text=True,
    )
    (sdist,) = glob.glob(str(out / "hncl_jax-*.tar.gz"))
    (wheel,) = glob.glob(str(out / "hncl_jax-*.whl"))
    return sdist, wheel


@pytest.fixture(scope="module")
def wheel(dist):
    return dist[1]


def test_twine_accepts_sdist_and_wheel(dist):
    pytest.importorskip("twine")
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *dist],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_release_carries_licence_changelog_and_the_one_version(dist):
    sdist, wheel = dist
    version = hncl_jax.__version__
    assert os.path.basename(sdist) == f"hncl_jax-{version}.tar.gz"
    assert os.path.basename(wheel) == f"hncl_jax-{version}-py3-none-any.whl"
    names = tarfile.open(sdist).getnames()
    for name in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml"):
        assert f"hncl_jax-{version}/{name}" in names, name
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(f"hncl_jax-{version}.dist-info/METADATA").decode()
        assert f"hncl_jax-{version}.dist-info/licenses/LICENSE" in zf.namelist()
    assert "License-Expression: Apache-2.0" in metadata
    assert f"Version: {version}\n" in metadata
    with open(os.path.join(ROOT, "LICENSE")) as fh:
        assert "Apache License" in fh.read(400)
    with open(os.path.join(ROOT, "CHANGELOG.md")) as fh:
        assert f"## [{version}]" in fh.read(), "CHANGELOG.md has no section for this version"
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    assert "version" not in project and "version" in project["dynamic"]  # __init__.py only


def test_sdist_installs(dist, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            dist[0],
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (target / "hncl_jax" / "configs" / "digits.py").is_file()
    assert (target / "hncl_jax" / "data" / "__init__.py").is_file()
    assert glob.glob(str(target / f"hncl_jax-{hncl_jax.__version__}.dist-info"))


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
