"""`python -m hncl_jax.benchmark [--mode=...] ...`: the benchmark's command line (absl);
`--help` prints the package's documentation and the benchmark's flags."""

from __future__ import annotations

import sys

from absl import app, flags

import hncl_jax.benchmark as package
from hncl_jax import runtime
from hncl_jax.benchmark.options import BENCHMARK_FLAGS, BenchmarkError
from hncl_jax.benchmark.runner import run_parsed
from hncl_jax.train import cli


def _parse(argv: list[str]) -> list[str]:
    """absl `flags_parser`: the benchmark's flags, then absl's own (--help, logging)."""
    try:
        rest = BENCHMARK_FLAGS(argv, known_only=True)
    except flags.Error as e:
        sys.exit(f"FATAL Flags parsing error: {e}\nPass --helpfull to see all flags.")
    if any(a in ("--help", "-h", "--helpfull", "-?") for a in rest[1:]):
        print(package.__doc__ + "\nFlags:\n" + BENCHMARK_FLAGS.get_help(), file=sys.stdout)
        sys.exit(0)
    return flags.FLAGS(rest)


def main(argv: list[str]) -> None:
    """absl entry point (`python -m hncl_jax.benchmark ...`)."""
    if len(argv) > 1:
        raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
    runtime.quiet_logs()
    try:
        run_parsed(sys.argv[1:])
    except BenchmarkError as e:  # one line saying what to change (absl would add the usage)
        cli.fail(str(e), code=2, traceback_hint=False)


if __name__ == "__main__":
    runtime.tune_process()
    app.run(main, flags_parser=_parse)
