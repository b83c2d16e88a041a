"""runtime.tune_process re-executes once with the huge-page malloc tunable, keeping a
user's own setting and the opt-out."""

import os
import subprocess
import sys

import pytest

from hncl_jax import runtime

needs_glibc = pytest.mark.skipif(
    runtime.tuned_environment({}) is None,
    reason="needs glibc >= 2.35 and transparent huge pages",
)


@needs_glibc
def test_the_tunable_is_added_to_the_others():
    env = runtime.tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "A": "b"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert env["A"] == "b"
    assert runtime.tuned_environment({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


@pytest.mark.parametrize(
    "environ",
    [
        {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"},  # the user's choice wins
        {"HNCL_JAX_NO_REEXEC": "1"},
        {"HNCL_JAX_REEXECED": "1"},  # already re-executed: never loop
    ],
)
def test_nothing_changes_when_set_opted_out_or_done(environ):
    assert runtime.tuned_environment(environ) is None


@needs_glibc
def test_tune_process_reexecutes_once_with_the_same_arguments():
    code = (
        "import os, sys\n"
        "print('start', flush=True)\n"
        "from hncl_jax import runtime\n"
        "runtime.tune_process()\n"
        "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "HNCL_JAX_NO_REEXEC")}
    env.pop("HNCL_JAX_REEXECED", None)
    out = subprocess.run(
        [sys.executable, "-c", code, "x", "--y=1"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # The script started twice (once as launched, once re-executed) and ran to the end once.
    assert out == ["start", "start", "glibc.malloc.hugetlb=1 ['x', '--y=1']"]
    env["HNCL_JAX_NO_REEXEC"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["start", "None []"]


def test_benchmark_console_has_no_platform_probe_lines(tmp_path):
    """`python -m hncl_jax.benchmark` on a CPU does not print JAX's probe of the TPU
    backend ("Unable to initialize backend 'tpu'"), which absl would show at INFO."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    env["HNCL_JAX_NO_REEXEC"] = "1"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hncl_jax.benchmark",
            "--mode=loss",
            "--loss_n=16",
            "--loss_k=4",
            "--loss_cases=reweighted",
            "--naive_max_n=0",
            "--steps=1",
            "--warmup=1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"mode": "loss"' in proc.stdout
    assert "Unable to initialize backend" not in proc.stderr + proc.stdout


def test_quiet_logs_keeps_warnings_and_drops_the_probe(caplog):
    import logging

    runtime.quiet_logs()
    probe = logging.getLogger("jax._src.xla_bridge")
    with caplog.at_level(logging.INFO):
        probe.info("Unable to initialize backend 'tpu'")
        probe.warning("a real warning")
    assert [r.getMessage() for r in caplog.records if r.name == probe.name] == ["a real warning"]
