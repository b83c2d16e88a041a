"""How the benchmark measures and records: the timers (`first_and_timed`, `timed`,
`torch_timed`, `ratios`), the equal-loss check of a JAX / PyTorch pair, the machine's
conditions (`machine_info`, `peak_memory_gib`) and the `Sink` that prints every record
as a JSON line and appends it, with its context, to `--out`."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np


def device_info() -> dict[str, Any]:
    d = jax.devices()[0]
    return {"device": f"{d.platform}:{d.device_kind}", "jax_version": jax.__version__}


def machine_info() -> dict[str, Any]:
    """The conditions of a measurement: CPU, cores, memory, load, allocator tuning."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": None if mem is None else round(mem, 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def peak_memory_gib() -> float:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**30
    # CPU: the process's peak resident set (KiB on Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def first_and_timed(fn: Callable[[], Any], *, warmup: int, steps: int) -> tuple[float, list[float]]:
    """Returns (seconds of the first call = compile + run, list of timed seconds)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    for _ in range(warmup):
        jax.block_until_ready(fn())
    return first, timed(fn, steps)


def timed(fn: Callable[[], Any], steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def torch_timed(fn: Callable[[], Any], steps: int) -> list[float]:
    # PyTorch's CPU kernels are synchronous; `.item()` closes the step all the same.
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        float(fn())
        times.append(time.perf_counter() - t0)
    return times


class Sink:
    """Prints JSON lines and appends them, with the run's context, to `--out`."""

    def __init__(self, out: str, argv: Sequence[str]):
        self.out = out
        argv = [a for a in argv if not a.startswith("--out=")]
        self.context = {
            "command": shlex.join(["python", "-m", "hncl_jax.benchmark", *argv]),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ"),
            "machine": machine_info(),
        }

    def emit(self, record: dict[str, Any]) -> dict[str, Any]:
        record = {**record, **device_info()}
        print(json.dumps(record), flush=True)
        if "ratio_eager" in record:
            print(
                f"# {record['mode']} {record.get('model', record.get('estimator'))}: JAX "
                f"{record.get('step_ms', record.get('ms', 0)):.3g} ms, PyTorch eager "
                f"{record['torch_eager_ms']:.3g} ms (JAX/PyTorch {record['ratio_eager']:.2f}), "
                f"compiled {record.get('torch_compile_ms') or float('nan'):.3g} ms (ratio "
                f"{record.get('ratio_compile') or float('nan'):.2f}); parameters "
                f"{record.get('params_jax', '-')} / {record.get('params_torch', '-')}",
                file=sys.stderr,
                flush=True,
            )
        if self.out:
            os.makedirs(os.path.dirname(os.path.abspath(self.out)), exist_ok=True)
            with open(self.out, "a") as fh:
                fh.write(json.dumps({"kind": "benchmark", **record, **self.context}) + "\n")
        return record


def ratios(jax_s: Sequence[float], peer_s: Sequence[float]) -> float:
    return statistics.median(a / b for a, b in zip(jax_s, peer_s, strict=True))


def check_same_loss(what: str, jax_loss: float, torch_loss: float) -> None:
    if not np.isclose(jax_loss, torch_loss, rtol=1e-4, atol=1e-5):
        raise RuntimeError(
            f"{what}: JAX loss {jax_loss!r} and PyTorch loss {torch_loss!r} differ on the same "
            "input and parameters; the two sides do not compute the same thing, so their "
            "times are not comparable."
        )
