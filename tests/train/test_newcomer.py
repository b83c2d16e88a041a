"""What a new user meets first: options a loss ignores, --help, --print_config, config paths.

The subprocess tests run `python -m hncl_jax.main` from an empty folder, as a user would,
and count the lines it prints and check its exit status.
"""

import importlib
import json
import os
import subprocess
import sys
import warnings

import pytest

from hncl_jax import sweep
from hncl_jax.configs import digits, synthetic
from hncl_jax.train import cli, validation

# Every shipped config with each argument it documents, each also with `smoke`.
SHIPPED = {
    "default": [None],
    "synthetic": [None, "hscl", "ucl", "hucl", "views", "hucl,views"],
    "digits": [None],
    "fashion_mnist": [None],
    "clop_fashion_mnist": [None, "50pct", "100pct"],
    "clop_synthetic": [None, "variance"],
    "clop_cifar100": [None],
    "cifar10": [None],
    "cifar100": [None],
    "tinyimagenet": [None],
}


def _shipped_configs():
    for name, args in SHIPPED.items():
        module = importlib.import_module(f"hncl_jax.configs.{name}")
        for arg in args:
            for full in (arg, f"{arg},smoke" if arg else "smoke"):
                yield pytest.param(f"{name}:{full}", module.get_config(full), id=f"{name}:{full}")


def _main(*args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != cli.VERBOSE_ENV}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run(
        [sys.executable, "-m", "hncl_jax.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _lines(text: str) -> list[str]:
    """Non-empty lines, without absl's INFO lines."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("I1")]


# ----------------------------------------------------------------- options a loss ignores
def test_options_a_loss_ignores_are_named():
    c = synthetic.get_config()  # scl
    assert validation.ignored_loss_options(c) == []  # its β = 0 means "no tilt"
    c.loss.beta = 5.0
    assert validation.ignored_loss_options(c) == ["beta"]
    # Set explicitly to the default value (a command line's --config.loss.beta=10).
    c.loss.beta = 10.0
    assert validation.ignored_loss_options(c) == []
    assert validation.ignored_loss_options(c, ["beta", "k"]) == ["beta"]
    c.loss.name, c.loss.k, c.loss.temperature = "nt_xent", 3, 0.2
    assert validation.ignored_loss_options(c) == ["k"]
    assert validation.ignored_loss_options(c, ["beta", "temperature"]) == ["beta"]
    c.loss.name = "hscl"
    assert validation.ignored_loss_options(c, ["beta", "k", "temperature"]) == ["temperature"]
    c.loss.hardening = "polynomial"  # β is exponential hardening's
    assert validation.ignored_loss_options(c, ["beta", "epsilon"]) == ["beta"]
    c.loss.name = "vicreg"
    assert validation.ignored_loss_options(c, ["temperature", "vicreg_sim_weight"]) == [
        "temperature"
    ]


def test_validate_config_warns_once_naming_the_ignored_field():
    c = synthetic.get_config()
    c.loss.beta = 5.0
    with pytest.warns(validation.IgnoredOptionWarning) as record:
        validation.validate_config(c)
    (w,) = [w for w in record if issubclass(w.category, validation.IgnoredOptionWarning)]
    message = str(w.message)
    assert "config.loss.name='scl'" in message and "config.loss.beta=5.0" in message
    assert "\n" not in message


@pytest.mark.parametrize("spec, config", list(_shipped_configs()))
def test_shipped_configs_pass_validation_without_a_warning(spec, config):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning about itself fails the config
        validation.validate_config(config)
    assert validation.ignored_loss_options(config) == [], spec


def test_sweep_warns_for_a_grid_over_a_field_the_loss_ignores(tmp_path):
    plan = sweep.plan_grid(synthetic.get_config(), {"loss.beta": [0.0, 10.0]}, str(tmp_path))
    with pytest.warns(validation.IgnoredOptionWarning) as record:
        sweep.check_plan(plan)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2, messages
    assert messages[0].startswith("grid point loss.beta=0")
    assert all("config.loss.beta" in m for m in messages)
    hscl = sweep.plan_grid(synthetic.get_config("hscl"), {"loss.beta": [0.0, 10.0]}, str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", validation.IgnoredOptionWarning)
        sweep.check_plan(hscl)


def test_overridden_fields_of_a_command_line():
    argv = [
        "main",
        "--config=x",
        "--config.loss.beta=10",
        "--config.loss.k",
        "5",
        "--config.seed=1",
    ]
    assert cli.overridden_fields(argv, "loss.") == ["beta", "k"]


# ----------------------------------------------------------------- configs/<name>.py anywhere
def test_configs_path_outside_the_checkout_is_the_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = os.path.join(cli.configs_dir(), "digits.py")
    assert cli.resolve_config_spec("configs/digits.py:smoke") == shipped + ":smoke"
    assert cli.resolve_config_spec("./configs/digits.py") == shipped
    with pytest.raises(cli.CommandLineError, match="no config file 'configs/nosuch.py'"):
        cli.resolve_config_spec("configs/nosuch.py")
    with pytest.raises(cli.CommandLineError):
        cli.resolve_config_spec("elsewhere/digits.py")  # only the README's configs/ folder
    own = tmp_path / "configs" / "digits.py"  # a file of one's own keeps precedence
    own.parent.mkdir()
    own.write_text("def get_config(arg=None):\n    return None\n")
    assert cli.resolve_config_spec("configs/digits.py") == "configs/digits.py"


# ----------------------------------------------------------------- --help and --print_config
def test_cli_help_exits_0_and_lists_print_config(tmp_path):
    proc = _main("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--print_config" in proc.stdout
    assert not os.listdir(tmp_path)


def test_cli_print_config_prints_the_record_and_trains_nothing(tmp_path):
    (tmp_path / "some_run").mkdir()  # init_from must exist (validated)
    proc = _main(
        "--config=configs/synthetic.py",  # README's path form, from an empty folder
        "--config.loss.beta=10",  # scl reads no β: one warning line
        "--config.init_from=some_run",
        "--print_config",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["loss"]["name"] == "scl" and printed["loss"]["beta"] == 10.0
    assert printed["name"] == "synthetic"
    assert printed["init_from"] == os.path.join(str(tmp_path), "some_run")  # absolute
    assert printed == json.loads(json.dumps(printed, sort_keys=True))
    (warning,) = _lines(proc.stderr)
    assert warning.startswith("warning: config.loss.name='scl' does not read config.loss.beta")
    assert os.listdir(tmp_path) == ["some_run"]  # no workdir, no data


def test_cli_print_config_refuses_a_bad_value_in_two_lines(tmp_path):
    proc = _main("--config=digits:smoke", "--config.loss.k=0", "--print_config", cwd=tmp_path)
    assert proc.returncode == 1
    lines = _lines(proc.stderr)
    assert len(lines) == 2 and lines[0].startswith("error: config.loss.k=0"), lines
    assert proc.stdout == ""


def test_print_config_matches_the_recorded_config_fields():
    # The printed JSON is the run's config.json record (same fields, same values).
    c = digits.get_config("smoke")
    record = json.loads(c.to_json_best_effort())
    assert set(record) == set(c.keys())
