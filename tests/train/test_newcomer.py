"""What a new user meets first: options a loss ignores, --help, --print_config, config paths.

The subprocess tests run `python -m hncl_jax.main` from an empty folder, as a user would,
and count the lines it prints and check its exit status.
"""

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import warnings

import pytest

from hncl_jax import sweep
from hncl_jax.configs import digits, synthetic
from hncl_jax.train import cli, loop, validation

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
    # β = 10 is ignored by scl; β = 0 is neutral (scl is hscl at β = 0, as the paper grids
    # write it), so that point is not flagged.
    assert len(messages) == 1, messages
    assert messages[0].startswith("grid point loss.beta=10")
    assert all("config.loss.beta" in m for m in messages)
    paper = sweep.plan_grid(
        synthetic.get_config(), {}, str(tmp_path), points=[{"loss.name": "scl", "loss.beta": 0.0}]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", validation.IgnoredOptionWarning)
        sweep.check_plan(paper)
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


# ----------------------------------------------------------------- the run's summaries
def _final_metrics(num_classes: int) -> dict:
    m = {"epoch": 2, "train/epoch_loss": 0.7, "train/theorem_bound": 0.28, "train/loss_gap": 0.42}
    for rep in "hz":
        m.update({f"eval/test/{rep}/ncm_acc": 0.4, f"eval/train/{rep}/ncm_acc": 0.5})
        m.update({f"eval/test/{rep}/knn5_acc": 0.6, f"eval/test/{rep}/knn200_acc": 0.2})
        m.update({f"eval/test/{rep}/probe_top1": 0.41, f"eval/test/{rep}/probe_top5": 0.87})
        for split in ("train", "test"):
            m[f"nc/{split}/{rep}/dc_rank"] = num_classes - 1
            m[f"nc/{split}/{rep}/rankme"] = 4.1
    for split in ("train", "test"):
        for key in ("zero_sum", "unit_norm", "equal_inner_product", "within_class_variance"):
            m[f"nc/{split}/z/{key}"] = 0.1
        for key in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc2_maxangle", "nc3", "nc4"):
            m[f"nc/{split}/z/{key}"] = 0.2
        m[f"nc/{split}/z/dc_sv_min"] = 7e-6
        for c in range(num_classes):
            m[f"nc/{split}/z/class{c}/mean_norm"] = 0.2
            m[f"nc/{split}/z/class{c}/within_class_variance"] = 0.001
            m[f"nc/{split}/z/dc_spectrum/{c}"] = 1.0 / (c + 1)
    return m


@pytest.mark.parametrize("num_classes", [10, 100])
def test_console_headline_is_short_whatever_the_classes(tmp_path, num_classes):
    from hncl_jax.train import reporting

    config = digits.get_config("smoke")
    final = _final_metrics(num_classes)
    kwargs = dict(config=config, step=8, total_steps=8, wall_time_s=3.0, steps_per_sec=2.0)
    headline = reporting.headline_text(final, tmp_path, **kwargs).splitlines()
    full = reporting.summary_text(final, tmp_path, **kwargs).splitlines()
    assert len(headline) <= 15, "\n".join(headline)
    assert len(full) > 4 * num_classes  # the file keeps every value
    text = "\n".join(headline)
    for figure in ("NCM 0.4", "knn5 0.6", "probe 0.41", "gap 0.42", "dc_rank z", "NC1 0.2"):
        assert figure in text
    assert f"all {len(final)} final metrics" in text and "summary.txt" in text
    assert headline[1:8] == full[1:8]  # the same header: config, loss, data, model, ...


def test_summary_records_the_batch_used_and_the_warm_start(tmp_path):
    from hncl_jax.train import reporting

    config = digits.get_config()
    config.batch_size = 512
    config.init_from = "other_run"
    text = reporting.summary_text({}, tmp_path, config=config, batch_size=300)
    assert "batch 300 (config 512, clamped" in text
    assert f"warm start: from {os.path.abspath('other_run')}" in text
    config.init_from = ""
    text = reporting.summary_text({}, tmp_path, config=config, batch_size=512)
    assert "batch 512\n" in text and "warm start" not in text


@pytest.mark.slow
def test_cli_run_prints_a_short_summary_and_records_the_clamped_batch(tmp_path):
    proc = _main(
        "--config=digits:smoke",
        "--config.batch_size=512",  # clamped to the training examples of :smoke
        "--config.num_epochs=1",
        "--config.linear_probe=off",
        "--config.plots=False",
        "--workdir=run",
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = _lines(proc.stdout)
    assert 8 <= len(out) <= 15, proc.stdout
    summary = (tmp_path / "run" / "summary.txt").read_text()
    assert re.search(r"batch \d+ \(config 512, clamped", summary), summary
    assert len(summary.splitlines()) > len(out)


# ----------------------------------------------------------------- warm start of another model
def _other_model_run(root) -> str:
    """A workdir holding a checkpoint of another model (a resnet18 config) and its record."""
    import jax.numpy as jnp

    from hncl_jax.train import checkpointing
    from hncl_jax.train import workdir as workdir_lib

    workdir = os.path.join(root, "source")
    other = digits.get_config()
    other.model = "resnet18"
    workdir_lib.save_config(json.loads(other.to_json_best_effort()), workdir)
    state = {"params": {"conv": {"kernel": jnp.ones((3, 3, 1, 4))}}, "batch_stats": {}}
    with checkpointing.Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        ckpt.save(1, state)
    return workdir


def test_warm_start_mismatch_message_names_both_models(tmp_path):
    source = _other_model_run(tmp_path)
    config = digits.get_config("smoke")
    config.init_from = source
    message = loop.warm_start_mismatch_message(config, 7)
    assert "\n" not in message
    assert "model='resnet18'" in message and "model='tiny_cnn'" in message
    assert "7 parameter array(s)" in message and "--verbose" in message
    os.remove(os.path.join(source, "config.json"))
    assert "not recorded" in loop.warm_start_mismatch_message(config, 7)


def test_run_main_prints_the_headline_of_an_error_with_details(capsys):
    def main():
        raise validation.WarmStartMismatch("one line naming both models", "  leaf 1\n  leaf 2")

    with pytest.raises(SystemExit) as info:
        cli.run_main(main)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: one line naming both models\n") and "leaf" not in err


@pytest.mark.slow
def test_cli_warm_start_from_another_model_is_two_lines_and_verbose_lists_leaves(tmp_path):
    source = _other_model_run(tmp_path)
    args = ("--config=digits:smoke", f"--config.init_from={source}", "--workdir=run")
    proc = _main(*args, cwd=tmp_path)
    assert proc.returncode == 1
    lines = [ln for ln in _lines(proc.stderr) if not ln.startswith("warning:")]
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("error: config.init_from=") and "model='resnet18'" in lines[0]
    assert "model='tiny_cnn'" in lines[0]
    assert not (tmp_path / "run").exists()
    verbose = _main(*args, "--verbose", cwd=tmp_path)
    assert verbose.returncode == 1
    assert "params/conv/kernel" in verbose.stderr  # the leaf-by-leaf list


# ----------------------------------------------------------------- notebooks
@pytest.mark.skipif(
    importlib.util.find_spec("ipywidgets") is not None, reason="ipywidgets draws a widget"
)
def test_progress_bar_in_jupyter_without_ipywidgets_prints_no_warning():
    pytest.importorskip("IPython")
    code = (
        "import sys, types, warnings\n"
        "sys.modules['ipykernel.zmqshell'] = types.ModuleType('ipykernel.zmqshell')\n"
        "import IPython\n"
        "class ZMQInteractiveShell: pass\n"
        "IPython.get_ipython = lambda: ZMQInteractiveShell()\n"  # as in a notebook kernel
        "warnings.simplefilter('always')\n"
        "from hncl_jax.train import reporting\n"
        "reporting.ProgressBar(3, enabled=False).close()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "IProgress" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
