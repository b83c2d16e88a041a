"""Throughput benchmarks: the train step, a full epoch and the loss kernel, optionally
side by side with PyTorch.

Prints one JSON line per measurement (times are medians of timed dispatches after
warm-up, each closed by `block_until_ready`):

    # (a) the jitted train step on a device-resident synthetic batch
    python -m hncl_jax.benchmark --mode=step --model=resnet50 --batch=512 --dtype=bfloat16
    # (b) a full epoch from a device-resident uint8 dataset (CIFAR-shaped by default),
    #     batch sampling, two SimCLR views and augmentation included
    python -m hncl_jax.benchmark --mode=epoch --model=resnet50 --batch=512 --positives=views
    # (c) the loss alone (loss + gradient w.r.t. z) over N, k and the estimators,
    #     against a naive per-anchor loop with host-side sampling (the papers' code)
    python -m hncl_jax.benchmark --mode=loss
    # any mode against the same network, loss and Adam in PyTorch (eager and compiled)
    python -m hncl_jax.benchmark --mode=step --model=tiny_cnn --batch=256 --peer=torch

Fields: `images_per_sec`, `step_ms`, `compile_s`, `peak_memory_gib` (device allocator on
GPU/TPU, the process's peak RSS on CPU), `tflops` (achieved, from the analytic FLOP
count of `models.model_flops` × 3 for a train step), `device`, `jax_version`. With
`--peer=torch` a line also holds `torch_eager_ms`, `torch_compile_ms`, the ratios
`ratio_eager` / `ratio_compile` (JAX time / PyTorch time, medians of per-repetition
ratios of interleaved runs), both parameter counts and both losses on the same input,
which are checked equal before anything is timed. `--out=FILE` appends the lines, with
the command, the date and the machine, to a results file (see `benchmarks/`).

The benchmark builds its trainer config in place (an `ml_collections.ConfigDict`, as
the trainer's); it needs no dataset. PyTorch is optional (the CPU-only wheel:
`pip install torch --index-url https://download.pytorch.org/whl/cpu`; BENCHMARKS.md).

The package's modules, one per part of the benchmark:

* `options`: the flags and their checks (`options_from_flags`, `BenchmarkError`).
* `trainer`: modes `step` and `epoch` (`bench_train`, `make_bench_config`).
* `loss`: mode `loss` (`bench_loss`, `naive_loss`).
* `peer`: the PyTorch side of `--peer=torch`, checked against JAX's loss.
* `torch_peer`: the PyTorch twins of the models, the loss and the train step.
* `timing`: the timers, the machine's conditions and the JSON-lines `Sink`.
* `runner`: `run(argv)`, the benchmark in this process; `__main__` the command line.

The names callers use are re-exported here (`benchmark.run`, `benchmark.BenchmarkError`,
...) and load on first use.
"""

from __future__ import annotations

import importlib

# Every name re-exported here → the module of this package that defines it.
_EXPORTS = {
    "BenchmarkError": "options",
    "LOSS_CASES": "options",
    "MODES": "options",
    "PEERS": "options",
    "options_from_flags": "options",
    "bench_train": "trainer",
    "make_bench_config": "trainer",
    "bench_loss": "loss",
    "naive_loss": "loss",
    "machine_info": "timing",
    "run": "runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Loaded on first use, so that `import hncl_jax.benchmark` imports neither JAX nor
    # PyTorch.
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
