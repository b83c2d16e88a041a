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


# ------------------------------------------------------------------------- XLA:CPU flags
needs_ynn_flag = pytest.mark.skipif(
    not runtime.jaxlib_knows(*runtime._XLA_FLAG_SYMBOLS),
    reason="the installed jaxlib has no YNNPACK fusion flag",
)


@needs_ynn_flag
def test_xla_flags_are_added_after_the_users_own():
    flag = runtime.XLA_CPU_FLAGS[0]
    assert runtime.xla_flags({}) == flag
    assert runtime.xla_flags({"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}) == (
        f"--xla_force_host_platform_device_count=8 {flag}"
    )


@pytest.mark.parametrize(
    "environ",
    [
        {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=individual_dot"},  # user's wins
        {"HNCL_JAX_XLA_DEFAULTS": "0"},
    ],
)
def test_xla_flags_keep_a_users_setting_and_the_opt_out(environ):
    assert runtime.xla_flags(environ) is None


def test_no_flag_for_a_jaxlib_that_does_not_know_it(monkeypatch):
    # XLA aborts the whole process on an unknown flag in XLA_FLAGS: never add one blindly.
    assert not runtime.jaxlib_knows(b"no such symbol in any library \x00\x01")
    monkeypatch.setattr(runtime, "jaxlib_knows", lambda *symbols: False)
    assert runtime.xla_flags({}) is None


def _run_python(code: str, **env_overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "HNCL_JAX_XLA_DEFAULTS")}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


# A 32-channel convolution: lax's own lowering in both cases, so only the flag decides
# whether XLA:CPU hands it to YNNPACK.
_CONV_HLO = (
    "import jax, jax.numpy as jnp\n"
    "x, k = jnp.ones((2, 8, 8, 32)), jnp.ones((3, 3, 32, 32))\n"
    "f = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME',"
    " dimension_numbers=('NHWC', 'HWIO', 'NHWC'))\n"
    "hlo = jax.jit(f).lower(x, k).compile().as_text()\n"
    "print('ynn' if '__ynn_fusion' in hlo else 'eigen')\n"
)


@needs_ynn_flag
def test_importing_the_package_first_takes_convolutions_off_ynnpack():
    out = _run_python("import os, hncl_jax\n" + _CONV_HLO + "print(os.environ['XLA_FLAGS'])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["eigen", runtime.XLA_CPU_FLAGS[0]]
    # Without the package's flag this jaxlib runs the same convolution through YNNPACK:
    # the test above would not see a difference if it had none.
    out = _run_python(_CONV_HLO)
    assert out.stdout.split() == ["ynn"], out.stderr


@needs_ynn_flag
def test_a_backend_started_before_the_import_is_named_with_the_fix():
    out = _run_python("import jax.numpy as jnp\njnp.ones(1)\nimport hncl_jax\n")
    assert out.returncode == 0, out.stderr
    assert "started before hncl_jax was imported" in out.stderr
    assert "Import hncl_jax before running any JAX computation" in out.stderr
    quiet = _run_python(
        "import jax.numpy as jnp\njnp.ones(1)\nimport hncl_jax\n", HNCL_JAX_XLA_DEFAULTS="0"
    )
    assert quiet.returncode == 0 and "started before" not in quiet.stderr
