"""`run(argv)`: the benchmark for a list of flags, in this process (tests, notebooks);
`python -m hncl_jax.benchmark` runs the same with the command line's flags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hncl_jax.benchmark.loss import bench_loss
from hncl_jax.benchmark.options import BENCHMARK_FLAGS, options_from_flags
from hncl_jax.benchmark.timing import Sink
from hncl_jax.benchmark.trainer import bench_train


def _reset_flags() -> None:
    for name in list(BENCHMARK_FLAGS):
        BENCHMARK_FLAGS[name].unparse()


def run(argv: Sequence[str]) -> list[dict[str, Any]]:
    """Runs the benchmark for flags `argv` (without the program name).

    Args:
      argv: e.g. `["--mode=step", "--model=tiny_cnn", "--batch=32"]`; unspecified flags
        take their defaults (also when `run` was called before in this process).

    Returns:
      The printed records (dicts).

    Raises:
      flags.Error: for an unknown flag or a bad value (e.g. `--loss=hsc`).
      BenchmarkError: for options that cannot work together.
    """
    _reset_flags()
    BENCHMARK_FLAGS(["hncl_jax.benchmark", *argv])
    return run_parsed(list(argv))


def run_parsed(argv: list[str]) -> list[dict[str, Any]]:
    """Runs the benchmark for the flags already parsed from `argv` (recorded with the
    results as the command)."""
    o = options_from_flags(BENCHMARK_FLAGS)
    sink = Sink(o.out, argv)
    if o.mode == "loss":
        return bench_loss(o, sink)
    return [bench_train(o, sink)]
