"""Notebook set-up (`hncl_jax.colab`) and the package's lazy public modules.

The install logic runs against a fake "preinstalled jax" environment: a folder of
`.dist-info` metadata read through importlib.metadata, as on a Colab runtime whose
CUDA jax must survive the install.
"""

import collections
import os
import subprocess
import sys

import pytest

import hncl_jax
from hncl_jax import colab


def _fake_env(tmp_path, versions: dict[str, str]) -> str:
    for name, version in versions.items():
        info = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return str(tmp_path)


COLAB_LIKE = {  # a runtime's CUDA jax older than hncl_jax's floor, an old flax, a new numpy
    "jax": "0.4.30",
    "jaxlib": "0.4.30",
    "jax-cuda12-plugin": "0.4.30",
    "flax": "0.8.0",
    "numpy": "2.0.2",
    "absl-py": "2.1.0",
}


def test_preinstalled_jax_is_kept_and_pinned(tmp_path):
    installed = colab.installed_versions([_fake_env(tmp_path, COLAB_LIKE)])
    assert installed["jax"] == "0.4.30" and installed["jax-cuda12-plugin"] == "0.4.30"
    to_install, pins = colab.install_plan(colab.requirements(), installed)
    names = [r.split(">")[0].split("=")[0] for r in to_install]
    assert "jax" not in names and "jaxlib" not in names  # although 0.4.30 < jax>=0.4.35
    assert "flax>=0.10" in to_install  # too old: upgraded (under the pins)
    assert "numpy" not in names and "absl-py" not in names  # satisfied: untouched
    assert "optax>=0.2.3" in to_install  # missing
    assert pins == {"jax": "0.4.30", "jaxlib": "0.4.30", "jax-cuda12-plugin": "0.4.30"}


def test_install_runs_pip_once_with_the_jax_pins(tmp_path, capsys):
    installed = colab.installed_versions([_fake_env(tmp_path, COLAB_LIKE)])
    calls = []

    def record(cmd):
        constraints = cmd[cmd.index("-c") + 1]
        calls.append((cmd, open(constraints).read()))

    done = colab.install_missing_dependencies(run=record, installed=installed)
    assert len(calls) == 1
    cmd, constraints = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--no-deps" not in cmd and done == cmd[cmd.index("-c") + 2 :]
    assert not any(a.startswith(("jax>", "jaxlib")) for a in cmd)
    assert constraints.splitlines() == [
        "jax==0.4.30",
        "jaxlib==0.4.30",
        "jax-cuda12-plugin==0.4.30",
    ]
    assert "kept the runtime's jax 0.4.30" in capsys.readouterr().out


def test_without_jax_it_is_installed_like_any_dependency(tmp_path):
    installed = colab.installed_versions([_fake_env(tmp_path, {"numpy": "2.0.2"})])
    to_install, pins = colab.install_plan(colab.requirements(), installed)
    assert "jax>=0.4.35" in to_install and pins == {}
    assert colab.pip_command(to_install, None)[-len(to_install) :] == to_install


def test_nothing_to_install_runs_nothing():
    calls = []
    assert colab.install_missing_dependencies(run=calls.append) == []  # this venv has all
    assert calls == []


def test_requirements_leave_out_the_extras():
    reqs = colab.requirements()
    assert any(r.startswith("jax") for r in reqs) and any(r.startswith("flax") for r in reqs)
    assert not any("pytest" in r or "tensorflow-cpu" in r for r in reqs)


Device = collections.namedtuple("Device", "platform device_kind")


def test_check_accelerator_names_the_gpu(capsys):
    devices = [Device("gpu", "NVIDIA A100-SXM4-40GB")] * 2
    assert colab.check_accelerator(long_run=True, devices=devices) == "gpu"
    out = capsys.readouterr().out
    assert "accelerator: GPU (2 × NVIDIA A100-SXM4-40GB)" in out and "WARNING" not in out


def test_check_accelerator_warns_before_a_long_cpu_run(capsys):
    cpu = [Device("cpu", "cpu")]
    colab.check_accelerator(long_run=True, devices=cpu)
    assert "WARNING: no GPU or TPU" in capsys.readouterr().out
    colab.check_accelerator(long_run=False, devices=cpu)
    assert "WARNING" not in capsys.readouterr().out


def test_workdir_env_then_drive_then_default(tmp_path, monkeypatch):
    monkeypatch.setattr(colab, "DRIVE_MOUNT", str(tmp_path / "drive"))
    monkeypatch.delenv("HNCL_WORKDIR", raising=False)
    mounted = []
    path = colab.workdir(use_drive=True, mount=mounted.append)
    assert mounted == [str(tmp_path / "drive")]
    assert path == os.path.join(str(tmp_path / "drive"), "MyDrive", "hncl_runs")
    assert os.path.isdir(path)
    assert colab.workdir(default=str(tmp_path / "local")) == str(tmp_path / "local")
    monkeypatch.setenv("HNCL_WORKDIR", str(tmp_path / "env"))
    assert colab.workdir(use_drive=True, mount=mounted.append) == str(tmp_path / "env")
    assert len(mounted) == 1


def test_colab_and_the_package_import_without_jax():
    code = (
        "import sys, hncl_jax, hncl_jax.colab; "
        "assert 'jax' not in sys.modules, 'jax imported'; "
        "assert 'tensorflow_datasets' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_public_modules_are_attributes_and_documented():
    assert hncl_jax.losses.contrastive_loss is not None  # no `import hncl_jax.losses` needed
    assert hncl_jax.configs.__name__ == "hncl_jax.configs"
    for name in hncl_jax._MODULES:
        assert f"`{name}`" in hncl_jax.__doc__, f"package docstring omits {name}"
        assert name in dir(hncl_jax)
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        hncl_jax.nosuch  # noqa: B018


def test_setup_reads_the_size_picks_the_folder_and_names_the_devices(tmp_path, monkeypatch, capsys):
    installs = []
    monkeypatch.setattr(colab, "install_missing_dependencies", lambda: installs.append(1))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("HNCL_QUICK", "1")
    monkeypatch.setenv("HNCL_WORKDIR", str(tmp_path / "runs"))
    cpu = [Device("cpu", "cpu")]
    quick, workdir = colab.setup(use_drive=True, devices=cpu)
    assert quick is True and workdir == str(tmp_path / "runs") and os.path.isdir(workdir)
    assert installs == []  # not on Colab: nothing installed
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"runs are kept in {tmp_path / 'runs'}",
        "accelerator: CPU (1 × cpu)",
        f"devices: {cpu} | QUICK (tiny sizes)",
    ]

    monkeypatch.delenv("HNCL_QUICK")  # unset: full size, and a CPU is worth a warning
    assert colab.setup(devices=cpu) == colab.Setup(False, str(tmp_path / "runs"))
    out = capsys.readouterr().out
    assert "WARNING: no GPU or TPU" in out and out.endswith("| full size\n")


def test_setup_installs_on_colab_only(tmp_path, monkeypatch):
    installs = []
    monkeypatch.setattr(colab, "install_missing_dependencies", lambda: installs.append(1))
    monkeypatch.setenv("HNCL_WORKDIR", str(tmp_path))
    gpu = [Device("gpu", "NVIDIA T4")]
    monkeypatch.setitem(sys.modules, "google.colab", object())
    colab.setup(devices=gpu)
    assert installs == [1]
    colab.setup(devices=gpu, install=False)
    assert installs == [1]
    monkeypatch.delitem(sys.modules, "google.colab")
    colab.setup(devices=gpu, install=True)
    assert installs == [1, 1]


def test_setup_refuses_an_unknown_size_before_installing(monkeypatch):
    installs = []
    monkeypatch.setattr(colab, "install_missing_dependencies", lambda: installs.append(1))
    monkeypatch.setenv("HNCL_QUICK", "yes")
    with pytest.raises(ValueError, match=r"HNCL_QUICK='yes': use 1 .* or 0"):
        colab.setup(install=True, devices=[Device("cpu", "cpu")])
    assert installs == []
