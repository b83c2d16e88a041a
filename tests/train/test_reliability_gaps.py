"""The last reliability gaps: interrupts, damaged inputs, memory and sizes, messages.

Each test reproduces one failure a hostile user met (a kill at an odd moment, a damaged
file, a container's memory limit, a misspelt config argument) and checks the trainer
now answers it with one line, or recovers. Where the user's command is what breaks, the
test runs that command (`python -m hncl_jax.main`, `python -m hncl_jax.sweep`) in a
subprocess.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from hncl_jax.train import memory, validation
from tests.conftest import make_tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GB = 2.0**30
# Most cases run the command line (subprocesses that import JAX and train, interrupt or
# fail): the slow tier.
pytestmark = pytest.mark.slow


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


# ------------------------------------------------------------------ data sizes
def _main(*args, cwd, env=None, timeout=300):
    full_env = {k: v for k, v in os.environ.items() if k != "HNCL_VERBOSE"}
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
    """stderr without absl's INFO/WARNING lines and the traceback hint."""
    return [
        ln
        for ln in proc.stderr.splitlines()
        if ln.strip() and not ln.startswith(("I1", "I0", "W1", "W0")) and "--verbose" not in ln
    ]


SIZED_CONFIG = """
from hncl_jax.configs import synthetic


def get_config(arg=None):
    c = synthetic.get_config("smoke")
    for item in (arg or "").split(","):
        if item:
            key, value = item.split("=")
            if key == "image_size":
                c.image_size = int(value)
            else:
                c.dataset_kwargs[key] = int(value)
    return c
"""


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"per_class": 10**9}, "dataset_kwargs.per_class=1000000000"),
        ({"num_classes": 10**8}, "dataset_kwargs.num_classes=100000000"),
        ({"dim": 10**10}, "dataset_kwargs.dim=10000000000"),
    ],
)
def test_huge_synthetic_sets_are_refused_before_allocating(tiny_config, overrides, named):
    c = tiny_config(**{f"dataset_kwargs.{k}": v for k, v in overrides.items()}, strict=False)
    validation.validate_config(c)  # the fields themselves are fine
    with pytest.raises(validation.ConfigError, match=rf"{named}.* GB of host memory") as e:
        memory.check_data_size(c)
    assert "\n" not in str(e.value)
    # Sizes that fit are let through.
    memory.check_data_size(tiny_config())


def test_huge_data_sizes_fail_in_one_line_from_the_command_line(tmp_path):
    """`per_class=1e9` was OOM-killed silently, `image_size=100000` a numpy traceback."""
    (tmp_path / "sized.py").write_text(SIZED_CONFIG)
    proc = _main("--config=sized.py:per_class=1000000000", "--workdir=w1", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = _error_lines(proc)
    assert len(lines) == 1 and "dataset_kwargs.per_class=1000000000" in lines[0], lines
    assert "GB of host memory" in lines[0] and "Traceback" not in proc.stderr
    proc = _main(
        "--config=digits:smoke", "--config.image_size=100000", "--workdir=w2", cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = _error_lines(proc)
    assert len(lines) == 1 and "image_size=100000 on digits" in lines[0], lines
    assert not (tmp_path / "w1").exists() and not (tmp_path / "w2").exists()


# ------------------------------------------------------------------ sweep messages
def test_sweep_over_a_locked_run_workdir_prints_one_line(tmp_path):
    """A locked run workdir gave a raw WorkdirLockedError traceback (only ValueError was caught)."""
    from hncl_jax import sweep
    from hncl_jax.train import workdir

    base = make_tiny_config(num_epochs=1)
    ((_, _, run_dir),) = sweep.plan_grid(base, {"loss.beta": [1.0]}, str(tmp_path / "root"))
    config_py = tmp_path / "tiny.py"
    config_py.write_text(
        "from tests.conftest import make_tiny_config\n\n\n"
        "def get_config(arg=None):\n    return make_tiny_config(num_epochs=1)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HNCL_VERBOSE"}
    env.update({"JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT})
    with workdir.lock_workdir(run_dir):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "hncl_jax.sweep",
                f"--config={config_py}",
                f"--root={tmp_path / 'root'}",
                "--grid=loss.beta=1.0",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = _error_lines(proc)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"sweep: workdir {run_dir} is in use by"), lines


# ------------------------------------------------------------------ config arguments
def test_unknown_config_argument_is_one_line_with_the_configs_own_arguments(tmp_path):
    """`:hscll` flattened a traceback into the line, and listed only 'smoke' as known."""
    proc = _main("--config=configs/synthetic.py:hscll", f"--workdir={tmp_path / 'w'}", cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = _error_lines(proc)
    assert lines == [
        "error: --config=configs/synthetic.py:hscll: unknown config argument 'hscll'; this "
        "config takes: scl, hscl, ucl, hucl, views, smoke (comma separated). Did you mean "
        "'hscl'?"
    ], lines
    assert "Traceback" not in proc.stderr
    from configs import clop_synthetic, digits

    with pytest.raises(
        ValueError, match=r"takes: smoke \(comma separated\)\. Did you mean 'smoke'"
    ):
        digits.get_config("smok")
    with pytest.raises(ValueError, match=r"takes: variance, smoke .*Did you mean 'variance'"):
        clop_synthetic.get_config("varience")


# ------------------------------------------------------------------ damaged checkpoints
TINY_CONFIG = """
from tests.conftest import make_tiny_config


def get_config(arg=None):
    return make_tiny_config(num_epochs=4, checkpoint_every_epochs=2, max_checkpoints=None)
"""


def _tiny_main(workdir, *args, cwd):
    return _main(
        f"--config={os.path.join(cwd, 'tiny.py')}",
        f"--workdir={workdir}",
        *args,
        cwd=cwd,
        env={"PYTHONPATH": ROOT},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (checkpoints at steps 10 and 20) made from the command line."""
    root = tmp_path_factory.mktemp("trained")
    (root / "tiny.py").write_text(TINY_CONFIG)
    proc = _tiny_main(root / "run", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(root / "run" / "checkpoints")) == ["10", "20"]
    return root


def _copy_run(trained, tmp_path) -> tuple[str, str]:
    shutil.copy(trained / "tiny.py", tmp_path / "tiny.py")
    shutil.copytree(trained / "run", tmp_path / "run")
    return str(tmp_path / "run"), str(tmp_path / "run" / "checkpoints")


def _flip_chunk_byte(step_dir: str) -> None:
    chunks = [
        os.path.join(r, n)
        for r, _, names in os.walk(os.path.join(step_dir, "state"))
        for n in names
        if os.path.basename(r) == "d"
    ]
    target = max(chunks, key=os.path.getsize)
    raw = bytearray(open(target, "rb").read())
    raw[len(raw) // 2] ^= 0x01
    open(target, "wb").write(bytes(raw))


@pytest.mark.slow
def test_flipped_byte_in_checkpoint_metadata_falls_back_instead_of_refusing(trained, tmp_path):
    """Item: the config comparison read the damaged record ('loss.reductmon') unverified."""
    w, ckpts = _copy_run(trained, tmp_path)
    meta = os.path.join(ckpts, "20", "metadata", "metadata")
    text = open(meta, "rb").read()
    assert b"reduction" in text
    open(meta, "wb").write(text.replace(b"reduction", b"reductmon", 1))  # one bit flipped
    proc = _tiny_main(w, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "different config" not in proc.stderr
    assert "resumed from step 10" in proc.stderr
    assert sorted(os.listdir(ckpts)) == ["10", "20", "20.corrupt"]


def test_every_checkpoint_damaged_is_one_line_with_the_options(trained, tmp_path):
    w, ckpts = _copy_run(trained, tmp_path)
    for step in ("10", "20"):
        _flip_chunk_byte(os.path.join(ckpts, step))
    proc = _tiny_main(w, cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [ln for ln in _error_lines(proc) if not ln.startswith(("E1", "E0"))]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: none of the 2 checkpoints in {ckpts} could be restored")
    assert "step 20: its files differ from its checksums.json" in lines[0]
    assert "another --workdir" in lines[0] and "Nothing was changed" in lines[0]
    assert sorted(os.listdir(ckpts)) == ["10", "20"]  # nothing moved or deleted


def test_resuming_another_models_checkpoints_names_the_shapes(trained, tmp_path):
    """allow_config_change over other widths: asyncio tracebacks, RuntimeError, ImportError."""
    w, ckpts = _copy_run(trained, tmp_path)
    proc = _tiny_main(
        w,
        "--config.model_kwargs.hidden_sizes=(24,)",
        "--config.allow_config_change=True",
        cwd=str(tmp_path),
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    for noise in ("Traceback", "Event loop is closed", "ImportError", "RuntimeError"):
        assert noise not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in _error_lines(proc) if not ln.startswith(("E1", "E0"))]
    assert len(lines) == 1, lines
    assert f"checkpoint {os.path.join(ckpts, '20')} holds arrays of other shapes" in lines[0]
    assert "saved (16,), this model (24,)" in lines[0]
    assert sorted(os.listdir(ckpts)) == ["10", "20"]


@pytest.mark.slow
def test_unverified_damaged_step_yields_to_an_older_verified_one(trained, tmp_path):
    """A step without checksums.json and with a flipped byte was restored silently."""
    w, ckpts = _copy_run(trained, tmp_path)
    os.remove(os.path.join(ckpts, "20", "checksums.json"))
    _flip_chunk_byte(os.path.join(ckpts, "20"))
    proc = _tiny_main(w, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "step(s) [20] of" in proc.stderr and "could not be verified" in proc.stderr
    assert "resumed from step 10, whose checksums match" in proc.stderr
    assert sorted(os.listdir(ckpts)) == ["10", "20", "20.unverified"]


@pytest.mark.slow
def test_failed_attempt_with_another_config_leaves_the_record_alone(trained, tmp_path):
    """A NaN attempt under allow_config_change rewrote config.json, then the original
    command was refused as 'a different config'."""
    w, ckpts = _copy_run(trained, tmp_path)
    record = open(os.path.join(w, "config.json"), "rb").read()
    checkpoints = sorted(os.listdir(ckpts))
    proc = _tiny_main(
        w,
        "--config.num_epochs=6",
        "--config.normalization=none",
        "--config.optimizer.learning_rate=1e30",
        "--config.allow_config_change=True",
        cwd=str(tmp_path),
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "non-finite loss or gradients at step 21" in proc.stderr
    assert "nothing already written was overwritten" in proc.stderr
    assert open(os.path.join(w, "config.json"), "rb").read() == record  # true: untouched
    assert sorted(os.listdir(ckpts)) == checkpoints
    proc = _tiny_main(w, cwd=str(tmp_path))  # the original command
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already finished at step 20/20" in proc.stdout


# ------------------------------------------------------------------ Ctrl-C at any moment
_LOG_LINE = re.compile(r"^[IWE]\d{4} ")


def _start_tiny(tmp_path, workdir) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HNCL_VERBOSE"}
    env.update({"JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT})
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hncl_jax.main",
            f"--config={tmp_path / 'tiny.py'}",
            f"--workdir={workdir}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a test run started in the background of a script inherits
        # an ignored SIGINT, which the command (rightly) keeps ignoring.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _signal_at(proc, sig, marker: str | None, delay: float) -> tuple[int, str, str]:
    """Sends `sig` `delay` s after stderr shows `marker` (None: after the start)."""
    seen = []
    deadline = time.monotonic() + 60
    # The command's interrupt watcher is a second thread of a process that has no other
    # yet (before it, Python's own start-up runs with the default handler).
    while len(os.listdir(f"/proc/{proc.pid}/task")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    if marker is not None:
        for line in proc.stderr:
            seen.append(line)
            if marker in line:
                break
    time.sleep(delay)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, "".join(seen) + err


@pytest.mark.parametrize(
    "sig, marker, delay",
    [
        (signal.SIGINT, None, 0.0),  # importing, reading flags, loading the config
        (signal.SIGINT, None, 0.5),  # the same, or the restart of runtime.tune_process
        (signal.SIGINT, "JAX process", 0.0),  # the workdir lock, data, checks, tracing
        (signal.SIGINT, "JAX process", 3.0),  # most likely compiling the step
        (signal.SIGTERM, "JAX process", 1.5),
    ],
)
def test_interrupt_before_the_loop_exits_at_once_with_one_line(tmp_path, sig, marker, delay):
    """Ctrl-C before the loop was ignored ("Exception ignored in _xla_gc_callback") or a
    traceback; now: exit 130 (143 for SIGTERM) and one line, the workdir resumable.
    The run is long (2,000 steps), so that a late signal still lands while it trains and
    never after it has finished."""
    (tmp_path / "tiny.py").write_text(TINY_CONFIG.replace("num_epochs=4", "num_epochs=400"))
    w = tmp_path / "run"
    code, out, err = _signal_at(_start_tiny(tmp_path, w), sig, marker, delay)
    assert code == 128 + sig, err[-3000:]
    for noise in ("Traceback", "Exception ignored", "KeyboardInterrupt"):
        assert noise not in err, err[-3000:]
    if "interrupted at step" in out:  # the loop had started: it checkpointed first
        return
    lines = [
        ln
        for ln in err.splitlines()
        if ln.strip() and not _LOG_LINE.match(ln) and not ln.startswith("train: ")
    ]  # the progress bar of the first step, if it was drawn: the line starts after it
    name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert len(lines) == 1 and lines[0].startswith(f"interrupted ({name}): stopped"), lines
    assert "rerun the same command" in lines[0]


@pytest.mark.slow
def test_a_run_interrupted_while_starting_resumes(tmp_path):
    (tmp_path / "tiny.py").write_text(TINY_CONFIG)
    w = tmp_path / "run"
    code, _, err = _signal_at(_start_tiny(tmp_path, w), signal.SIGINT, "JAX process", 2.0)
    assert code == 130, err[-3000:]
    proc = _tiny_main(w, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # On a loaded machine the signal may land after the first step: a checkpoint of it too.
    assert {"10", "20"} <= set(os.listdir(w / "checkpoints")), os.listdir(w / "checkpoints")
    assert "already finished" not in proc.stdout  # the rerun trained to the end


# ------------------------------------------------------------------ odd workdirs
def test_workdir_that_is_a_broken_link_is_named_as_such(tmp_path):
    """A dangling symlink as --workdir gave a bare FileExistsError."""
    os.symlink(tmp_path / "gone", tmp_path / "w")
    os.symlink(tmp_path / "nowhere", tmp_path / "parent")
    for workdir, link in (
        (tmp_path / "w", tmp_path / "w"),
        (tmp_path / "parent" / "run", tmp_path / "parent"),
    ):
        proc = _main("--config=synthetic:smoke", f"--workdir={workdir}", cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr[-3000:]
        lines = _error_lines(proc)
        assert len(lines) == 1 and "FileExistsError" not in proc.stderr, lines
        assert f"{link} is a broken symbolic link (to '{os.readlink(link)}'" in lines[0]
    assert not os.path.exists(tmp_path / "gone") and not os.path.exists(tmp_path / "nowhere")


# ------------------------------------------------------------------ disk full in outputs
class _FullDisk:
    """A metrics file whose writes fail with ENOSPC from row `after` on."""

    def __init__(self, file, after: int):
        self.file, self.after, self.rows = file, after, 0

    def write(self, text):
        self.rows += 1
        if self.rows > self.after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.file.write(text)

    def __getattr__(self, name):
        return getattr(self.file, name)


def test_disk_full_in_metrics_names_path_bytes_and_last_checkpoint(tmp_path, monkeypatch, capsys):
    from hncl_jax import train
    from hncl_jax.train import cli, reporting, workdir

    init = reporting.MetricWriter.__init__

    def full_after_some_rows(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._file = _FullDisk(self._file, after=8)  # past the checkpoint at step 10

    monkeypatch.setattr(reporting.MetricWriter, "__init__", full_after_some_rows)
    w = str(tmp_path / "run")
    with pytest.raises(workdir.OutputDiskFullError) as info:
        train.train_and_evaluate(make_tiny_config(), w)
    error = info.value
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    message = str(error)
    metrics = os.path.join(w, "metrics.jsonl")
    assert message.startswith(f"no space left on device writing {metrics} (about ")
    assert re.search(r"about \d+ bytes needed for the row of step \d+\)", message)
    assert f"the last good checkpoint is {os.path.join(w, 'checkpoints', '10')}." in message
    assert "\n" not in message
    # From the command line: one line.
    capsys.readouterr()  # the run's own output
    with pytest.raises(SystemExit) as code:
        cli.run_main(lambda: (_ for _ in ()).throw(error))
    assert code.value.code == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err[0] == f"error: OutputDiskFullError: {message}", err


def test_disk_full_in_tensorboard_names_its_folder(tmp_path, monkeypatch):
    from hncl_jax.train import reporting, workdir

    with reporting.MetricWriter(tmp_path) as writer:
        writer.write_scalars(1, {"train/loss": 1.0})

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(writer._tb, "add_scalar", full)
        with pytest.raises(workdir.OutputDiskFullError, match=r"writing .*tensorboard \(about"):
            writer.write_scalars(2, {"train/loss": 0.5})


# ------------------------------------------------------------------ lost metrics
def test_deleted_or_emptied_metrics_beside_checkpoints_is_warned(trained, tmp_path):
    """The earlier rows were lost without a word."""
    w, _ = _copy_run(trained, tmp_path)
    metrics = os.path.join(w, "metrics.jsonl")
    open(metrics, "w").close()  # emptied
    proc = _tiny_main(w, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        f"{metrics} is missing or empty, but the run resumes from its checkpoint at step 20: the "
        "rows "
        "of steps 1..20 (training losses, evaluations) are lost" in proc.stderr
    ), proc.stderr[-3000:]
    os.remove(metrics)  # deleted
    proc = _tiny_main(w, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{metrics} is missing or empty, but the run resumes from its checkpoint" in (
        proc.stderr
    )
    intact = tmp_path / "intact"
    shutil.copytree(trained / "run", intact)
    proc = _tiny_main(intact, cwd=str(tmp_path))  # intact: no warning
    assert proc.returncode == 0 and "are lost" not in proc.stderr, proc.stderr[-3000:]


# ------------------------------------------------------------------ warm starts
@pytest.mark.parametrize("damaged", ["state/_METADATA", "state/_sharding"])
def test_warm_start_from_a_damaged_step_names_the_checkpoint(trained, tmp_path, damaged):
    """A bare 'Expecting property name enclosed in double quotes', naming nothing."""
    src, ckpts = _copy_run(trained, tmp_path)
    step = os.path.join(ckpts, "20")
    os.remove(os.path.join(step, "checksums.json"))  # nothing tells which file changed
    with open(os.path.join(step, damaged), "w") as fh:
        fh.write("{bad")
    proc = _tiny_main(tmp_path / "new", f"--config.init_from={step}", cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [ln for ln in _error_lines(proc) if not ln.startswith(("E1", "E0"))]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, lines
    assert lines[0].startswith(f"error: load_for_warm_start: checkpoint {step} (from '{step}')")
    assert "cannot be read, it is damaged" in lines[0]
    assert "Pass another --config.init_from" in lines[0]


def test_warm_start_from_a_run_still_training_reads_a_step_that_stays(tmp_path, monkeypatch):
    """The source's retention deleted the step mid-read: tensorstore NOT_FOUND, or
    'Checkpoint directory does not exist'."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from hncl_jax.train import checkpointing

    ckpts = str(tmp_path / "src" / "checkpoints")
    with checkpointing.Checkpointer(ckpts, max_to_keep=None) as ckpt:
        for step in (1, 2):
            ckpt.save(step, {"params": {"w": jnp.full((3,), float(step))}})
    target = {"params": {"w": jax.ShapeDtypeStruct((3,), jnp.float32)}}
    restore_args = checkpointing._partial_restore_args

    def retention_strikes(target, found):  # the writer deletes the step being read
        for step in ("2",):
            shutil.rmtree(os.path.join(ckpts, step), ignore_errors=True)
        return restore_args(target, found)

    monkeypatch.setattr(checkpointing, "_partial_restore_args", retention_strikes)
    loaded = checkpointing.load_for_warm_start(str(tmp_path / "src"), target)
    np.testing.assert_array_equal(np.asarray(loaded["params"]["w"]), [1.0, 1.0, 1.0])

    with checkpointing.Checkpointer(ckpts, max_to_keep=None) as ckpt:
        ckpt.save(2, {"params": {"w": jnp.full((3,), 2.0)}})
    with pytest.raises(checkpointing.CheckpointCorruptError) as info:
        checkpointing.load_for_warm_start(os.path.join(ckpts, "2"), target)
    message = str(info.value)
    assert f"checkpoint {os.path.join(ckpts, '2')} was deleted while it was read" in message
    assert "Pass that run's workdir as --config.init_from" in message and "\n" not in message
