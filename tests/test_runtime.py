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
