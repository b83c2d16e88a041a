"""bfloat16 against float32: run one config in both compute dtypes, append one JSON line each.

    python benchmarks/precision.py --config=configs/synthetic.py
    python benchmarks/precision.py --config=configs/digits.py
    python benchmarks/precision.py --config=configs/fashion_mnist.py -- --config.num_epochs=2

Runs `python -m hncl_jax.main --config=<config> --workdir=<fresh folder>
--config.dtype=<dtype> [overrides]` in a subprocess for each `--dtypes` entry (float32 and
bfloat16 by default), everything else equal (same seed, hence the same data order,
initialization and random keys), and appends to `benchmarks/results/precision.jsonl` one
object per run: the command, the dtype, the wall time (start-up, data loading and
compilation included), the CPU time (user + system) of the run's process, the final
evaluation's NC metrics of z on the training and test sets (zero-sum, unit-norm, equal
inner-product, within-class variance), the epoch's mean training loss with the Theorem
2/3 minimum and the gap to it where the run reports them (and `late_gap`: the median and
largest |gap| over the evaluations of the run's second half, since the sampled
estimator's loss moves with the drawn negatives), the accuracies, the machine, the
versions and the load average before and after.

`config.dtype` is the compute dtype of the encoder (parameters, BatchNorm statistics,
the normalization, the loss and the evaluation's classifiers stay float32). On a CPU
without native bfloat16 arithmetic XLA emulates it, so the wall times say nothing about
an accelerator; the numerical effect is what these runs measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
OUT = os.path.join(RESULTS, "precision.jsonl")
DTYPES = ("float32", "bfloat16")
NC = ("zero_sum", "unit_norm", "equal_inner_product", "within_class_variance")
# The final evaluation's keys kept in a record.
KEYS = re.compile(
    r"^(nc/(train|test)/z/(" + "|".join(NC) + r")"
    r"|eval/test/.*(acc|probe_top1)"
    r"|train/(epoch_loss|theorem_bound|loss_gap))$"
)


def final_metrics(workdir: str) -> dict[str, float]:
    """The kept keys of the run's last evaluation row, with its epoch and step."""
    from hncl_jax.train import reporting

    last = reporting.last_evaluation(reporting.read_metrics(workdir))
    if not last:
        raise SystemExit(f"{workdir} holds no evaluation row; did the run finish?")
    return {k: float(v) for k, v in sorted(last.items()) if KEYS.match(k)} | {
        "epoch": last["epoch"],
        "step": last["step"],
    }


def late_gap(workdir: str) -> dict[str, float] | None:
    """|loss − bound| over the evaluations of the run's second half (None without a bound).

    The sampled estimator's loss fluctuates from step to step with the drawn negatives,
    so near the minimum one evaluation's gap is noise: the median over the second half's
    evaluations (epoch > last epoch / 2) is the figure to compare.
    """
    from hncl_jax.train import reporting

    rows = [r for r in reporting.read_metrics(workdir) if reporting.is_evaluation_row(r)]
    if not rows or "train/loss_gap" not in rows[-1]:
        return None
    half = [r for r in rows if 2 * r["epoch"] > rows[-1]["epoch"] and "train/loss_gap" in r]
    gaps = [abs(float(r["train/loss_gap"])) for r in half]
    return {
        "evaluations": len(gaps),
        "first_epoch": half[0]["epoch"],
        "median_abs_gap": statistics.median(gaps),
        "max_abs_gap": max(gaps),
    }


def versions() -> dict[str, str]:
    import flax
    import jax
    import jaxlib
    import numpy
    import optax

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": numpy.__version__,
    }


def machine() -> dict[str, object]:
    import jax

    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "device": jax.devices()[0].device_kind,
    }


def shown_command(config: str, dtype: str, overrides: list[str]) -> str:
    """The run's command as a user would type it (no workdir)."""
    parts = ["python -m hncl_jax.main", f"--config={config}", f"--config.dtype={dtype}"]
    return " ".join(parts + [shlex.quote(o) for o in overrides])


def _children_cpu_s() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(config: str, dtype: str, overrides: list[str], workdir: str) -> dict:
    """Runs the config in `dtype` in a fresh `workdir`; the record of the run."""
    command = [sys.executable, "-m", "hncl_jax.main", f"--config={config}"]
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_s()
    start = time.perf_counter()
    subprocess.run(
        [*command, f"--workdir={workdir}", f"--config.dtype={dtype}", *overrides],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    cpu = _children_cpu_s() - cpu_before
    return {
        "kind": "precision",
        "config": config,
        "dtype": dtype,
        "overrides": list(overrides),
        "command": shown_command(config, dtype, overrides),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "metrics": final_metrics(workdir),
        "late_gap": late_gap(workdir),
        "machine": machine(),
        "versions": versions(),
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "loadavg_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="config path, e.g. configs/digits.py")
    p.add_argument(
        "--dtypes", default=",".join(DTYPES), help="comma-separated compute dtypes, in run order"
    )
    p.add_argument("--workdir", default=None, help="parent of the runs' folders (default: temp)")
    p.add_argument("--out", default=OUT)
    p.add_argument("overrides", nargs="*", help="extra --config.<field>=<value> flags (after --)")
    args = p.parse_args(argv)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not dtypes or any(d not in DTYPES for d in dtypes):
        raise SystemExit(f"--dtypes must name some of {DTYPES}, got {args.dtypes!r}.")
    if any(o.startswith("--config.dtype") for o in args.overrides):
        raise SystemExit("the dtype is set by --dtypes, not by an override.")
    parent = args.workdir or tempfile.mkdtemp(prefix="hncl_precision_")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    for dtype in dtypes:
        workdir = os.path.join(parent, dtype)
        if os.path.exists(workdir):
            raise SystemExit(f"{workdir} exists; give a fresh --workdir.")
        record = run_one(args.config, dtype, args.overrides, workdir)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
        print(json.dumps(record, indent=1, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
