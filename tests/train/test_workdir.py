"""One run per workdir, damaged workdirs and checkpoints, disk full (library and CLI runs).

The lock tests hold the lock in a child process (the lock is per open file, so a
second holder must be another process). The CLI tests run
`python -m hncl_jax.main --config=configs/digits.py` in real subprocesses with small
overrides (300 examples, batch 64: 4 steps per epoch, checkpoints at steps 4 and 8),
on copies of one finished run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from hncl_jax.train import reporting, workdir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
SMALL = [
    "--config.num_epochs=2",
    "--config.dataset_kwargs.max_examples=300",
    "--config.batch_size=64",
    "--config.loss.k=16",
    "--config.eval_every_epochs=1",
    "--config.checkpoint_every_epochs=1",
    "--config.linear_probe=off",
    "--config.plots=False",
    "--config.knn_k=(5,)",
]


def _hold_lock(path) -> subprocess.Popen:
    """A child process that takes the lock of `path`, says so, and sleeps."""
    code = (
        "import sys, time\n"
        "from hncl_jax.train import workdir\n"
        "with workdir.lock_workdir(sys.argv[1]):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_holder_is_refused_with_pid_and_host(tmp_path):
    holder = _hold_lock(tmp_path / "run")
    try:
        t0 = time.perf_counter()
        with pytest.raises(workdir.WorkdirLockedError) as info:
            with workdir.lock_workdir(tmp_path / "run"):
                pytest.fail("took a lock that another process holds")
        assert time.perf_counter() - t0 < 1.0  # refused at once, no waiting
        message = str(info.value)
        assert f"is in use by PID {holder.pid} on host {socket.gethostname()}" in message
        assert "pass another --workdir" in message
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the dead holder's lock: the workdir can be locked again.
    with workdir.lock_workdir(tmp_path / "run") as path:
        assert os.path.exists(os.path.join(path, workdir.LOCK_FILE))
    assert not os.path.exists(tmp_path / "run" / workdir.LOCK_FILE)


def test_lock_leaves_no_trace_and_keeps_outputs(tmp_path):
    new = tmp_path / "a" / "b"
    with workdir.lock_workdir(new):
        assert new.is_dir()
    assert not (tmp_path / "a").exists()  # created for the lock, left empty: removed
    with workdir.lock_workdir(new):
        (new / "metrics.jsonl").write_text("{}\n")
    assert sorted(os.listdir(new)) == ["metrics.jsonl"]  # outputs stay, the lock file goes
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(workdir.WorkdirError, match="is a file, not a folder"):
        with workdir.lock_workdir(f):
            pass


@pytest.mark.parametrize(
    "name,make",
    [
        ("checkpoints", lambda p: p.write_text("not a folder")),
        ("tensorboard", lambda p: p.write_text("")),
        ("metrics.jsonl", lambda p: p.mkdir()),
        ("config.json", lambda p: p.mkdir()),
        ("checkpoints", lambda p: p.symlink_to(p.parent / "missing")),
    ],
)
def test_outputs_of_the_wrong_kind_are_refused(tmp_path, name, make):
    make(tmp_path / name)
    with pytest.raises(workdir.WorkdirError, match="nothing was changed"):
        workdir.check_layout(str(tmp_path))
    workdir.check_layout(str(tmp_path / "does-not-exist"))


# --------------------------------------------------------------------------- CLI runs
def cli(workdir_path, *extra, wait: bool = True, timeout: int = 600):
    args = [sys.executable, "-m", "hncl_jax.main", "--config=configs/digits.py"]
    args += [f"--workdir={workdir_path}", *SMALL, *extra]
    if not wait:
        return subprocess.Popen(
            args, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(args, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def explain(proc) -> str:
    out, err = proc.stdout[-3000:], proc.stderr[-3000:]
    return f"rc={proc.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"


def snapshot(path) -> dict[str, bytes]:
    """Every file under `path` (relative name -> bytes)."""
    out = {}
    for root, _, names in os.walk(path):
        for n in names:
            full = os.path.join(root, n)
            out[os.path.relpath(full, path)] = open(full, "rb").read()
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished small digits run: checkpoints 4 and 8, 4 steps per epoch."""
    w = tmp_path_factory.mktemp("digits") / "run"
    proc = cli(w)
    assert proc.returncode == 0, explain(proc)
    assert sorted(os.listdir(w / "checkpoints")) == ["4", "8"]
    for step in ("4", "8"):
        assert os.path.exists(w / "checkpoints" / step / "checksums.json")
    return w


def copy_of(finished, tmp_path):
    w = tmp_path / "run"
    shutil.copytree(finished, w)
    return w


@pytest.mark.slow
def test_cli_second_run_on_a_busy_workdir_is_refused(tmp_path):
    w = tmp_path / "run"
    first = cli(w, "--config.num_epochs=1000", wait=False)
    try:
        deadline = time.time() + 300
        while not os.path.exists(w / workdir.LOCK_FILE):
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline
            time.sleep(0.2)
        second = cli(w, "--config.num_epochs=1000")
        assert second.returncode != 0
        assert f"is in use by PID {first.pid} on host {socket.gethostname()}" in second.stderr
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # SIGKILL released the lock: a rerun on the workdir is not refused.
    proc = cli(w)
    assert proc.returncode == 0, explain(proc)


@pytest.mark.slow
def test_cli_flipped_byte_in_a_checkpoint_is_caught_and_skipped(finished, tmp_path):
    w = copy_of(finished, tmp_path)
    data = [
        os.path.join(r, n)
        for r, _, ns in os.walk(w / "checkpoints" / "8" / "state")
        for n in ns
        if os.sep + "d" + os.sep in os.path.join(r, n)
    ]
    target = max(data, key=os.path.getsize)  # the chunk file holding the arrays
    raw = bytearray(open(target, "rb").read())
    raw[len(raw) // 2] ^= 0x01
    open(target, "wb").write(bytes(raw))
    proc = cli(w)
    assert proc.returncode == 0, explain(proc)
    assert "does not match its checksums.json" in proc.stderr
    assert "resumed from step 4" in proc.stderr
    names = os.listdir(w / "checkpoints")
    assert "8.corrupt" in names and "8" in names  # quarantined, and step 8 redone
    rows = reporting.read_metrics(str(w))
    assert [r["step"] for r in rows] == [r["step"] for r in reporting.read_metrics(str(finished))]


@pytest.mark.slow
def test_cli_odd_workdir_fails_before_changing_anything(finished, tmp_path):
    w = copy_of(finished, tmp_path)
    shutil.rmtree(w / "checkpoints")
    (w / "checkpoints").write_text("")  # a file where the checkpoints were
    before = snapshot(w)
    proc = cli(w)
    assert proc.returncode != 0
    assert f"{w / 'checkpoints'} should be a folder" in proc.stderr, explain(proc)
    assert snapshot(w) == before

    # The checkpoints are gone altogether: a fresh start would drop every metric row.
    os.remove(w / "checkpoints")
    before = snapshot(w)
    proc = cli(w)
    assert proc.returncode != 0
    assert "has no checkpoint: its checkpoints" in proc.stderr, explain(proc)
    assert "were lost or moved" in proc.stderr
    assert snapshot(w) == before


@pytest.mark.slow
def test_cli_config_change_is_refused_whatever_record_is_missing(finished, tmp_path):
    w = copy_of(finished, tmp_path)
    assert not os.path.exists(w / "run_fingerprint.json")  # config.json is the one record
    before = snapshot(w)
    proc = cli(w, "--config.loss.beta=5")
    assert proc.returncode != 0
    assert "loss.beta: 2.0 → 5.0" in proc.stderr, explain(proc)
    assert snapshot(w) == before
    # Without config.json the config stored in the latest checkpoint still decides.
    os.remove(w / "config.json")
    before = snapshot(w)
    proc = cli(w, "--config.loss.beta=5")
    assert proc.returncode != 0
    assert "holds a run of a different config (loss.beta: 2.0 → 5.0" in proc.stderr, explain(proc)
    assert "recorded in its latest checkpoint" in proc.stderr
    assert snapshot(w) == before
    # The explicit override still continues the run (and records the new config).
    proc = cli(w, "--config.loss.beta=5", "--config.allow_config_change=True")
    assert proc.returncode == 0, explain(proc)
    assert json.load(open(w / "config.json"))["loss"]["beta"] == 5.0


def _mount_tmpfs(path, size: str) -> bool:
    path.mkdir()
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@pytest.mark.slow
def test_cli_disk_full_is_one_line_naming_the_space_needed(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "96k"):
        pytest.skip("mounting a small tmpfs needs root (mount -t tmpfs)")
    try:
        proc = cli(disk / "run")
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if "no space left on device" in ln]
    assert len(lines) == 1, explain(proc)
    line = lines[0]
    assert f"no space left on device at {disk / 'run' / 'checkpoints'}; " in line
    assert " MB needed for checkpoint 4; the last good checkpoint is none" in line
    assert "RESOURCE_EXHAUSTED" not in proc.stderr  # no tensorstore dump
    assert "Traceback" not in proc.stderr, explain(proc)  # no thread/asyncio/unraisable dump
