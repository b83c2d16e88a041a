"""On Colab, long runs are not left on a disk a recycled runtime loses without a warning."""

import collections
import sys
import types

from hncl_jax import colab

Device = collections.namedtuple("Device", "platform device_kind")


def test_workdir_on_colab_without_drive_warns_that_runs_are_lost(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HNCL_WORKDIR", raising=False)
    monkeypatch.setattr(colab, "DRIVE_MOUNT", str(tmp_path / "drive"))
    colab.workdir(default=str(tmp_path / "local"))  # not on Colab: nothing to warn about
    assert "WARNING" not in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    colab.workdir(default=str(tmp_path / "local"))
    out = capsys.readouterr().out
    assert "WARNING: the runs are kept on this runtime's disk" in out
    assert "USE_DRIVE = True" in out
    colab.workdir(default=str(tmp_path / "local"), long_run=False)  # QUICK runs: no matter
    assert "WARNING" not in capsys.readouterr().out
    colab.workdir(use_drive=True, mount=lambda path: None)  # on Drive: kept
    assert "WARNING" not in capsys.readouterr().out


def test_setup_warns_before_full_size_runs_only(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HNCL_WORKDIR", raising=False)
    monkeypatch.setitem(colab.workdir.__kwdefaults__, "default", str(tmp_path / "local"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    gpu = [Device("gpu", "NVIDIA T4")]
    monkeypatch.setenv("HNCL_QUICK", "0")
    colab.setup(install=False, devices=gpu)
    assert "WARNING: the runs are kept on this runtime's disk" in capsys.readouterr().out
    monkeypatch.setenv("HNCL_QUICK", "1")
    colab.setup(install=False, devices=gpu)
    assert "WARNING" not in capsys.readouterr().out
