"""Time to accuracy of a shipped config: run it, time it, append one JSON line.

    python benchmarks/time_to_accuracy.py --config=configs/fashion_mnist.py
    python benchmarks/time_to_accuracy.py --config=configs/digits.py

Runs `python -m hncl_jax.main --config=<config> --workdir=<fresh folder>` in a
subprocess, measures its wall time (start-up, data loading and compilation included)
and appends to `benchmarks/results/time_to_accuracy.jsonl` one object with the command,
the wall time, the final evaluation's accuracies, the machine and the versions, and the
load average before and after (other work on the machine slows the run).
`--time_log` instead reads a run that was already timed by GNU `time -v` (its log holds
"Elapsed (wall clock) time") in `--workdir`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
OUT = os.path.join(RESULTS, "time_to_accuracy.jsonl")
KEYS = re.compile(r"^eval/test/.*(acc|probe_top1)$")


def final_metrics(workdir: str) -> dict[str, float]:
    from hncl_jax.train import reporting

    rows = [r for r in reporting.read_metrics(workdir) if "epoch" in r]
    if not rows:
        raise SystemExit(f"{workdir} holds no evaluation row; did the run finish?")
    last = rows[-1]
    return {k: float(v) for k, v in sorted(last.items()) if KEYS.match(k)} | {
        "epoch": last["epoch"],
        "step": last["step"],
    }


# The accuracy a config's docstring quotes, by config (default: the linear probe on h).
QUOTED = {"configs/clop_fashion_mnist.py": "eval/test/z/knn5_acc"}


def latest(records: list[dict], config: str) -> dict | None:
    """The last recorded run of `config` as shipped (no overrides), or None."""
    shipped = f"python -m hncl_jax.main --config={config}"
    rows = [r for r in records if r.get("config") == config and r.get("command") == shipped]
    return rows[-1] if rows else None


def summary_line(record: dict) -> str:
    """The sentence a config's docstring quotes from its latest time-to-accuracy run."""
    key = QUOTED.get(record["config"], "eval/test/h/probe_top1")
    what = {
        "eval/test/h/probe_top1": "linear-probe top-1 (h)",
        "eval/test/z/knn5_acc": "kNN-5 accuracy (z)",
    }[key]
    wall = record["wall_s"]
    took = f"{wall:.0f} s" if wall < 120 else f"{wall / 60:.0f} min"
    return (
        f'Measured on a {record["machine"]["cpu_count"]}-core CPU (BENCHMARKS.md, "Time to '
        f'accuracy"): {what} {record["metrics"][key]:.3f} in {took}.'
    )


def elapsed_from_time_log(path: str) -> float:
    text = open(path).read()
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if not m:
        raise SystemExit(f"{path} has no GNU time -v 'Elapsed (wall clock) time' line.")
    parts = [float(p) for p in m.group(1).split(":")]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="config path, e.g. configs/digits.py")
    p.add_argument("--workdir", default=None, help="run folder (default: a fresh temp dir)")
    p.add_argument("--time_log", default=None, help="GNU time -v log of a finished run")
    p.add_argument("--out", default=OUT)
    p.add_argument("overrides", nargs="*", help="extra --config.<field>=<value> flags")
    args = p.parse_args(argv)
    import jax

    command = [sys.executable, "-m", "hncl_jax.main", f"--config={args.config}"]
    shown = f"python -m hncl_jax.main --config={args.config}"
    if args.overrides:
        shown += " " + " ".join(shlex.quote(o) for o in args.overrides)
    load_before = os.getloadavg()
    if args.time_log:
        if not args.workdir:
            raise SystemExit("--time_log needs the run's --workdir.")
        wall = elapsed_from_time_log(args.time_log)
        workdir = args.workdir
    else:
        workdir = args.workdir or tempfile.mkdtemp(prefix="hncl_tta_")
        start = time.perf_counter()
        subprocess.run(
            [*command, f"--workdir={workdir}", *args.overrides],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
    record = {
        "kind": "time_to_accuracy",
        "config": args.config,
        "command": shown,
        "wall_s": round(wall, 1),
        "metrics": final_metrics(workdir),
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "device": jax.devices()[0].device_kind,
        },
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d"),
        # The machine's 1-minute load around the run (not known for a --time_log run).
        "loadavg_1min": None
        if args.time_log
        else {"before": load_before[0], "after": os.getloadavg()[0]},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
    print(json.dumps(record, indent=1, sort_keys=True))
    print(f"The config's docstring quotes: {summary_line(record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
