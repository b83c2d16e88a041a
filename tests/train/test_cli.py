"""The command line: config names, default workdir, and errors as one or two lines.

The subprocess tests run `python -m hncl_jax.main` as a user would and capture what it
prints; the others call `hncl_jax.train.cli` directly.
"""

import logging
import os
import subprocess
import sys

import pytest

from hncl_jax import data
from hncl_jax.train import cli, validation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _main(*args, cwd, env=None, timeout=300):
    full_env = {k: v for k, v in os.environ.items() if k != cli.VERBOSE_ENV}
    full_env.update({"JAX_PLATFORMS": "cpu", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "hncl_jax.main", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _error_lines(proc) -> list[str]:
    """stderr without absl's INFO lines (the process and devices logged at start)."""
    return [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("I")]


# --------------------------------------------------------------------------- config names
def test_shipped_config_by_name_with_and_without_py_and_arg():
    path = os.path.join(cli.configs_dir(), "digits.py")
    assert cli.resolve_config_spec("digits") == path
    assert cli.resolve_config_spec("digits.py:smoke") == path + ":smoke"
    assert cli.resolve_config_spec("synthetic:hucl,views") == (
        os.path.join(cli.configs_dir(), "synthetic.py") + ":hucl,views"
    )
    assert {"default", "digits", "synthetic", "cifar100"} <= set(cli.shipped_configs())


def test_config_path_is_kept_when_the_file_exists(tmp_path):
    own = tmp_path / "mine.py"
    own.write_text("def get_config(arg=None):\n    return None\n")
    assert cli.resolve_config_spec(f"{own}:x") == f"{own}:x"


def test_missing_config_names_the_flag_and_the_shipped_configs():
    with pytest.raises(cli.CommandLineError, match=r"--config=configs/nosuch.py.*digits"):
        cli.resolve_config_spec("configs/nosuch.py")
    with pytest.raises(cli.CommandLineError, match="no config file 'nosuch'"):
        cli.resolve_config_spec("nosuch:smoke")


def test_default_workdir_is_runs_config_name():
    assert cli.default_workdir("digits") == os.path.join("runs", "digits")
    assert cli.default_workdir("configs/digits.py:smoke") == os.path.join("runs", "digits_smoke")
    assert cli.default_workdir("synthetic:hucl,views") == os.path.join(
        "runs", "synthetic_hucl_views"
    )


def test_unknown_override_names_the_flag_and_the_closest_field():
    argv = ["main", "--config=" + cli.resolve_config_spec("digits"), "--config.loss.bta=5"]
    message = cli.unknown_override(argv)
    assert message.startswith("--config.loss.bta=5: loss has no field 'bta'")
    assert "loss.beta" in message
    argv = ["main", "--config=" + cli.resolve_config_spec("digits"), "--config.lss.beta=5"]
    assert "the config has no field 'lss'. Did you mean loss?" in cli.unknown_override(argv)
    ok = ["main", "--config=" + cli.resolve_config_spec("digits"), "--config.loss.beta=5"]
    assert cli.unknown_override(ok) is None


# --------------------------------------------------------------------------- run_main
def test_run_main_prints_one_line_for_a_config_error(capsys, monkeypatch):
    monkeypatch.delenv(cli.VERBOSE_ENV, raising=False)

    def bad():
        raise validation.ConfigError("config.loss.k=0 must be positive; set --config.loss.k.")

    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(bad)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: config.loss.k=0 must be positive; set --config.loss.k."
    assert len(err) == 2 and "--verbose" in err[1]


def test_run_main_names_an_os_error_and_its_file(capsys, monkeypatch):
    monkeypatch.delenv(cli.VERBOSE_ENV, raising=False)

    def read_only():
        raise PermissionError(13, "Permission denied", "/data/runs/x")

    with pytest.raises(SystemExit):
        cli.run_main(read_only)
    assert "error: PermissionError: Permission denied: /data/runs/x" in capsys.readouterr().err


def test_run_main_keeps_the_traceback_when_verbose(monkeypatch):
    monkeypatch.setenv(cli.VERBOSE_ENV, "1")

    def diverged():
        raise FloatingPointError("non-finite loss at step 3")

    with pytest.raises(FloatingPointError):
        cli.run_main(diverged)


def test_run_main_lets_bugs_keep_their_traceback():
    def bug():
        raise KeyError("a bug, not a user error")

    with pytest.raises(KeyError):
        cli.run_main(bug)


# --------------------------------------------------------------------------- data messages
def test_tinyimagenet_message_gives_the_command_line_fix(tmp_path):
    with pytest.raises(data.DatasetNotPreparedError, match=r"--config\.manual_dir=<that folder>"):
        data.load_dataset("tinyimagenet", "train", data_dir=str(tmp_path))


def test_tfds_variant_folder_warning_is_dropped(tmp_path, caplog):
    (tmp_path / "cifar10" / "3.0.2").mkdir(parents=True)  # a folder left half-prepared
    with caplog.at_level(logging.WARNING), pytest.raises(data.DatasetNotPreparedError):
        data.load_dataset("cifar10", "train", data_dir=str(tmp_path))
    assert "dataset_info.json" not in caplog.text


# --------------------------------------------------------------------------- subprocess
def test_cli_misspelt_field_is_one_line_naming_the_flag(tmp_path):
    proc = _main("--config=digits:smoke", "--config.loss.bta=5", cwd=tmp_path)
    assert proc.returncode == 2
    lines = _error_lines(proc)
    assert lines == ["error: --config.loss.bta=5: loss has no field 'bta'. Did you mean loss.beta?"]
    assert "Traceback" not in proc.stderr


def test_cli_missing_config_file_is_one_line(tmp_path):
    proc = _main("--config=configs/nosuch.py", cwd=tmp_path)
    assert proc.returncode == 2
    lines = _error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("error: --config=configs/nosuch.py: no config")
    assert "Traceback" not in proc.stderr


def test_cli_config_error_is_short_and_verbose_shows_the_traceback(tmp_path):
    args = ("--config=digits:smoke", "--config.loss.beta=-3", f"--workdir={tmp_path / 'w'}")
    proc = _main(*args, cwd=tmp_path)
    assert proc.returncode == 1
    lines = _error_lines(proc)
    assert len(lines) == 2 and "config.loss.beta" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert "JAX process 0/1" in proc.stderr  # the backends were probed ...
    assert "Unable to initialize backend" not in proc.stderr  # ... without the TPU line
    verbose = _main(*args, "--verbose", cwd=tmp_path)
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr
    assert "ConfigError" in verbose.stderr


def test_cli_unwritable_workdir_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = _main("--config=digits:smoke", f"--workdir={blocker / 'run'}", cwd=tmp_path)
    assert proc.returncode == 1
    lines = _error_lines(proc)
    assert len(lines) == 2 and lines[0].startswith("error: ") and "a_file" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_read_only_workdir_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    proc = _main("--config=digits:smoke", f"--workdir={ro / 'run'}", cwd=tmp_path)
    assert proc.returncode == 1
    assert _error_lines(proc)[0].startswith("error: PermissionError")
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_shipped_config_from_another_folder_default_workdir_and_finished_rerun(tmp_path):
    args = ("--config=digits:smoke", "--config.num_epochs=1")
    first = _main(*args, cwd=tmp_path, timeout=1200)  # minutes on a loaded 2-core machine
    assert first.returncode == 0, first.stderr[-3000:]
    workdir = tmp_path / "runs" / "digits_smoke"
    assert (workdir / "summary.txt").exists() and (workdir / "checkpoints").is_dir()
    assert "Unable to initialize backend" not in first.stderr
    again = _main(*args, cwd=tmp_path, timeout=1200)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already finished at step" in again.stdout


def test_configs_load_is_the_command_line_config():
    from hncl_jax import configs

    assert configs.load("synthetic:hucl,views").to_dict() == (
        configs.synthetic.get_config("hucl,views").to_dict()
    )
    assert configs.load("digits.py").dataset == "digits"
    with pytest.raises(ValueError, match="no shipped config 'nosuch'"):
        configs.load("nosuch:smoke")
