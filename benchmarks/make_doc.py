"""Writes the measured figures of BENCHMARKS.md from the JSON lines in benchmarks/results/.

    python benchmarks/make_doc.py            # rewrite the generated part of BENCHMARKS.md
    python benchmarks/make_doc.py --check    # exit 1 if BENCHMARKS.md disagrees

Every figure between the markers `<!-- BEGIN generated:results -->` and
`<!-- END generated:results -->` comes from a results file: `*.jsonl` lines of
`python -m hncl_jax.benchmark --out=...` (`"kind": "benchmark"`) and, if present,
`time_to_accuracy.jsonl` (`"kind": "time_to_accuracy"`: `config`, `command`, `wall_s`,
`metrics`, `machine`, `jax`) and `precision.jsonl` (`"kind": "precision"`, written by
`benchmarks/precision.py`: `config`, `dtype`, `command`, `wall_s`, `metrics`, `machine`,
`versions`). The summary at the top, between `<!-- BEGIN generated:summary -->` and
`<!-- END generated:summary -->`, is written from the same files. Text outside the
markers is not touched.

Uses the standard library only.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import statistics
import sys
from collections.abc import Iterable, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- BEGIN generated:results -->"
END = "<!-- END generated:results -->"
# The summary at the top of BENCHMARKS.md, written from the same results.
SUMMARY_BEGIN = "<!-- BEGIN generated:summary -->"
SUMMARY_END = "<!-- END generated:summary -->"


def read_results(results_dir: pathlib.Path = RESULTS) -> list[dict[str, Any]]:
    """Every JSON line of the results folder's `*.jsonl` files, with its file name.

    Raises:
      ValueError: for a line that is not a JSON object (naming the file and line).
    """
    records = []
    for path in sorted(pathlib.Path(results_dir).glob("*.jsonl")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not a JSON line ({e}).") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}.")
            rec["_file"] = path.name
            records.append(rec)
    return records


def _num(x: Any, unit: str = "") -> str:
    """Three significant digits, thousands separated; '—' for a missing value."""
    if x is None:
        return "—"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,} {unit}".rstrip()
    x = float(x)
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.3g}"
    return f"{s} {unit}".rstrip()


def _ratio(x: Any) -> str:
    return "—" if x is None else f"{float(x):.2f}×"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _run(r: dict[str, Any]) -> str:
    """The results file a row comes from (its date and machine kind), e.g. 2026-12-06-cpu."""
    return r["_file"].removesuffix(".jsonl")


def _model(r: dict[str, Any]) -> str:
    """The model's name, with its non-default options (`--depth`)."""
    return r["model"] + (f" (depth {r['depth']})" if r.get("depth") else "")


def _short(cmd: str) -> str:
    """The command without the results-file plumbing, in backticks."""
    return "`" + cmd.replace("python -m hncl_jax.benchmark ", "") + "`"


def _conditions(records: list[dict[str, Any]]) -> list[str]:
    out = []
    by_file: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_file.setdefault(r["_file"], []).append(r)
    for name, recs in sorted(by_file.items()):
        m = recs[0].get("machine", {})
        loads = [r.get("machine", {}).get("load_avg_1min") for r in recs]
        loads = [x for x in loads if x is not None]
        dates = sorted(r.get("date", "") for r in recs)
        versions = sorted({f"JAX {r['jax_version']}" for r in recs if "jax_version" in r})
        versions += sorted({f"PyTorch {r['torch_version']}" for r in recs if "torch_version" in r})
        load = f", 1-minute load average {min(loads):.1f}–{max(loads):.1f}" if loads else ""
        out.append(
            f"- `benchmarks/results/{name}`: {recs[0].get('device', '?')}, {m.get('cpu', '?')}, "
            f"{m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB, "
            f"{', '.join(versions)}; {dates[0]} to {dates[-1]}{load}."
        )
    return out


def _allocator(records: list[dict[str, Any]]) -> list[str]:
    """Huge-page malloc off/on: consecutive pairs of the same command, in run order."""
    rows, pairs, notes = [], [], []
    by_cmd: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("mode") == "step" and "peer" not in r:
            by_cmd.setdefault(r["command"], []).append(r)
    for cmd, recs in by_cmd.items():
        off = [r for r in recs if "hugetlb" not in r.get("machine", {}).get("glibc_tunables", "")]
        on = [r for r in recs if r not in off]
        if not off or not on:
            continue
        ratios = [b["step_ms"] / a["step_ms"] for a, b in zip(off, on, strict=False)]
        pairs += ratios
        if statistics.median(ratios) > 1:
            notes.append(_slower_note(cmd, off, on, statistics.median(ratios)))
        rows.append(
            (
                _short(cmd),
                " / ".join(_num(r["step_ms"]) for r in off),
                " / ".join(_num(r["step_ms"]) for r in on),
                _ratio(statistics.median(ratios)),
            )
        )
    if not rows:
        return []
    return [
        "### Huge-page malloc (`hncl_jax.runtime.tune_process`)",
        "",
        "Step times (ms) of runs in turn without (`HNCL_JAX_NO_REEXEC=1`) and with the",
        "tunable `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which the command-line entry",
        "points now set themselves; the ratio is the median of on/off over consecutive pairs.",
        "",
        *_table(("command", "off (ms)", "on (ms)", "on / off"), rows),
        "",
        *(line for note in notes for line in (note, "")),
    ]


def _slower_note(cmd: str, off: list[dict[str, Any]], on: list[dict[str, Any]], ratio: float):
    """A sentence on a row whose ratio is above 1: within the runs' own spread, or not."""
    lo_off, hi_off = min(r["step_ms"] for r in off), max(r["step_ms"] for r in off)
    lo_on, hi_on = min(r["step_ms"] for r in on), max(r["step_ms"] for r in on)
    overlap = lo_on <= hi_off and lo_off <= hi_on
    steps = re.search(r"--steps=(\d+)", cmd)
    timed = f" of {steps.group(1)} timed steps each" if steps else ""
    verdict = (
        "the two ranges overlap, so the difference is within the runs' own spread on a loaded "
        "machine, not evidence of a slowdown"
        if overlap
        else "the ranges do not overlap: a measured slowdown"
    )
    return (
        f"The ratio above 1 ({_ratio(ratio)}, {_short(cmd)}) compares runs{timed} whose "
        f"step times range over {_num(lo_off)}–{_num(hi_off)} ms off and "
        f"{_num(lo_on)}–{_num(hi_on)} ms on: {verdict}."
    )


XLA_DEFAULT_FLAG = "xla_cpu_experimental_ynn_fusion_type"


def _library_flags(r: dict[str, Any]) -> bool:
    """Whether a benchmark ran with the library's XLA:CPU flag (recorded in its machine)."""
    return XLA_DEFAULT_FLAG in r.get("machine", {}).get("xla_flags", "")


def _xla_defaults(records: list[dict[str, Any]]) -> list[str]:
    """The library's XLA:CPU flags off and on: step runs of one command in one results
    file, without (`HNCL_JAX_XLA_DEFAULTS=0`) and with the flag, in run order."""
    rows = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("mode") == "step" and r.get("peer") == "torch":
            groups.setdefault((r["_file"], r["command"]), []).append(r)
    for (_, cmd), recs in groups.items():
        on = [r for r in recs if _library_flags(r)]
        off = [r for r in recs if r not in on]
        if not off or not on:
            continue
        pairs = list(zip(off, on, strict=False))
        rows.append(
            (
                _run(recs[0]),
                _model(recs[0]),
                " / ".join(_num(a["step_ms"]) for a, _ in pairs),
                " / ".join(_num(b["step_ms"]) for _, b in pairs),
                _ratio(statistics.median(b["step_ms"] / a["step_ms"] for a, b in pairs)),
                " / ".join(_ratio(a.get("ratio_eager")) for a, _ in pairs),
                " / ".join(_ratio(b.get("ratio_eager")) for _, b in pairs),
                _short(cmd),
            )
        )
    if not rows:
        return []
    header = (
        "results",
        "model",
        "XLA's defaults (ms)",
        "the library's (ms)",
        "library / XLA",
        "JAX / PyTorch eager, XLA's",
        "JAX / PyTorch eager, the library's",
        "command",
    )
    return [
        "### XLA:CPU convolutions (`hncl_jax.runtime.configure_xla`)",
        "",
        "Train steps of the same command in turn with XLA's own defaults",
        "(`HNCL_JAX_XLA_DEFAULTS=0`: every convolution through YNNPACK) and with the flag",
        f"`--{XLA_DEFAULT_FLAG}=-individual_convolution` that `import hncl_jax` adds",
        "(XLA's Eigen convolutions); each run also times PyTorch eager in the same process.",
        "",
        *_table(header, rows),
        "",
    ]


def _peer_steps(records: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in records:
        if r.get("mode") != "step" or r.get("peer") != "torch":
            continue
        rows.append(
            (
                _run(r),
                _model(r),
                f"{r['batch']} × {'×'.join(str(s) for s in r['image_shape'])}",
                f"{r['params_jax']:,} / {r['params_torch']:,}",
                _num(r["step_ms"]),
                _num(r.get("torch_eager_ms")),
                _num(r.get("torch_compile_ms")),
                _ratio(r.get("ratio_eager")),
                _ratio(r.get("ratio_compile")),
                str(r.get("torch_threads", "—")),
                "library's" if _library_flags(r) else "XLA's",
                _short(r["command"]),
            )
        )
    if not rows:
        return []
    header = (
        "results",
        "model",
        "batch",
        "parameters JAX / PyTorch",
        "JAX (ms)",
        "eager (ms)",
        "compiled (ms)",
        "JAX / eager",
        "JAX / compiled",
        "torch threads",
        "XLA:CPU flags",
        "command",
    )
    return ["### (a) Train step against PyTorch", "", *_table(header, rows), ""]


def _epochs(records: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in records:
        if r.get("mode") != "epoch":
            continue
        rows.append(
            (
                _run(r),
                _model(r),
                f"{r['dataset_size']:,} × {'×'.join(str(s) for s in r['image_shape'])}",
                str(r["batch"]),
                _num(r["epoch_s"], "s"),
                _num(r.get("torch_eager_epoch_s"), "s"),
                _num(r.get("torch_compile_epoch_s"), "s"),
                _ratio(r.get("ratio_eager")),
                _ratio(r.get("ratio_compile")),
                str(r.get("recompiles", "—")),
                _short(r["command"]),
            )
        )
    if not rows:
        return []
    header = (
        "results",
        "model",
        "dataset",
        "batch",
        "JAX epoch",
        "eager epoch",
        "compiled epoch",
        "JAX / eager",
        "JAX / compiled",
        "recompiles",
        "command",
    )
    return ["### (b) Full epoch", "", *_table(header, rows), ""]


def _loss(records: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in records:
        if r.get("mode") != "loss":
            continue
        est = r["estimator"] + (f", per {r['draw']}" if r["estimator"] == "sampled" else "")
        rows.append(
            (
                _run(r),
                str(r["n"]),
                str(r["k"]),
                est.replace("_", " "),
                _num(r["ms"]),
                _num(r.get("torch_eager_ms")),
                _num(r.get("torch_compile_ms")),
                _ratio(r.get("ratio_eager")),
                _ratio(r.get("ratio_compile")),
            )
        )
    if not rows:
        return []
    cmds = sorted({_short(r["command"]) for r in records if r.get("mode") == "loss"})
    header = (
        "results",
        "N",
        "k",
        "estimator",
        "JAX (ms)",
        "eager (ms)",
        "compiled (ms)",
        "JAX / eager",
        "JAX / compiled",
    )
    return [
        "### (c) Loss + gradient w.r.t. z (d = 128, HSCL β = 10)",
        "",
        *_table(header, rows),
        "",
        "Command: " + ", ".join(cmds) + ". The naive loop computes the value only.",
        "",
    ]


def _time_to_accuracy(records: list[dict[str, Any]]) -> list[str]:
    recs = [r for r in records if r.get("kind") == "time_to_accuracy"]
    if not recs:
        return []
    keys = sorted({k for r in recs for k in r.get("metrics", {})})
    rows = []
    for r in recs:
        m = r.get("machine", {})
        machine = m if isinstance(m, str) else m.get("cpu") or m.get("device") or "?"
        metrics = r.get("metrics", {})
        load = r.get("loadavg_1min", {})
        rows.append(
            (
                f"`{r['config']}`",
                _num(r["wall_s"], "s"),
                *(_num(metrics.get(k)) if k in metrics else "—" for k in keys),
                f"{_num(load.get('before'))} → {_num(load.get('after'))}" if load else "—",
                str(machine),
                str(r.get("jax", "—")),
                f"`{r['command']}`",
            )
        )
    load_col = "load (1 min, start → end)"
    header = ("config", "wall time", *keys, load_col, "machine", "JAX", "command")
    note = (
        "The load is the machine's 1-minute load average when the run started and ended: "
        "other work on the 2 cores lengthens the wall time."
    )
    return ["### Time to accuracy", "", note, "", *_table(header, rows), ""]


# The precision table's columns: (metric key, header).
PRECISION_COLUMNS = (
    ("train/epoch_loss", "loss"),
    ("train/theorem_bound", "Theorem bound"),
    ("train/loss_gap", "loss − bound"),
    ("nc/train/z/zero_sum", "zero-sum"),
    ("nc/train/z/unit_norm", "unit-norm"),
    ("nc/train/z/equal_inner_product", "equal inner-product"),
    ("nc/train/z/within_class_variance", "within-class variance"),
    ("eval/test/z/ncm_acc", "test NCM (z)"),
    ("eval/test/z/knn5_acc", "test kNN-5 (z)"),
    ("eval/test/z/probe_top1", "test probe (z)"),
    ("eval/test/h/probe_top1", "test probe (h)"),
)


def _sig6(x: Any) -> str:
    return "—" if x is None else f"{float(x):.6g}"


def _late_gap(late: dict[str, Any] | None) -> str:
    """The median and largest |loss − bound| of the second half's evaluations, and their count."""
    if not late:
        return "—"
    n = late["evaluations"]
    return f"{_num(late['median_abs_gap'])} ({_num(late['max_abs_gap'])}), {n} eval{'s' * (n > 1)}"


def _precision(records: list[dict[str, Any]]) -> list[str]:
    """bfloat16 against float32: one row per run of benchmarks/precision.py.

    The runs of one config and overrides are adjacent (groups in the order of their first
    run, runs in run order within a group).
    """
    recs = [r for r in records if r.get("kind") == "precision"]
    if not recs:
        return []
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in recs:
        groups.setdefault((r["config"], tuple(r.get("overrides", []))), []).append(r)
    recs = [r for group in groups.values() for r in group]
    rows = []
    for r in recs:
        metrics = r.get("metrics", {})
        load = r.get("loadavg_1min", {})
        extra = " ".join(r.get("overrides", []))
        rows.append(
            (
                f"`{r['config']}`" + (f" `{extra}`" if extra else ""),
                r["dtype"],
                str(metrics.get("epoch", "—")),
                # The loss and the bound to 6 digits: they agree to 3 at the minimum.
                *(_sig6(metrics.get(key)) for key, _ in PRECISION_COLUMNS[:2]),
                _num(metrics.get(PRECISION_COLUMNS[2][0])),
                _late_gap(r.get("late_gap")),
                *(_num(metrics.get(key)) for key, _ in PRECISION_COLUMNS[3:]),
                _num(r["wall_s"], "s"),
                _num(r.get("cpu_s"), "s"),
                f"{_num(load.get('before'))} → {_num(load.get('after'))}" if load else "—",
            )
        )
    header = (
        "config",
        "compute dtype",
        "epoch",
        *(h for _, h in PRECISION_COLUMNS[:3]),
        "median (max) abs(loss − bound), 2nd half",
        *(h for _, h in PRECISION_COLUMNS[3:]),
        "wall time",
        "CPU time",
        "load (1 min, start → end)",
    )
    machines = sorted(
        {
            f"{r['machine'].get('device', '?')} ({r['machine'].get('processor', '?')}, "
            f"{r['machine'].get('cpu_count', '?')} cores)"
            for r in recs
        }
    )
    vers = sorted(
        {", ".join(f"{k} {v}" for k, v in sorted(r.get("versions", {}).items())) for r in recs}
    )
    dates = sorted(r.get("date", "") for r in recs)
    return [
        "### bfloat16 against float32",
        "",
        "Each config run twice by `benchmarks/precision.py`, with `--config.dtype=float32` and",
        "`--config.dtype=bfloat16` and everything else equal (seed, data order, random keys).",
        "The dtype is the encoder's compute dtype; parameters, BatchNorm statistics, the",
        "normalization, the loss and the classifiers are float32 in both. The figures are",
        "the final evaluation's: the epoch's mean training loss, the Theorem 2/3 minimum and",
        "the gap to it (where the run reports them; the sampled estimator's loss moves with",
        "the drawn negatives, so one evaluation's gap near the minimum is mostly that noise,",
        "and the median and largest absolute gap over the evaluations of the run's second",
        "half are the figures to compare), the NC metrics of z on the training set (0 at",
        "Neural Collapse) and the test accuracies. The wall and CPU times (user + system of",
        "the run's process; other work on the shared cores lengthens the wall time) are",
        "those of a CPU and say nothing about bfloat16 on an accelerator, where it runs on",
        "the matrix units: the numbers to read are the metrics.",
        *(
            [
                "A config run with two seeds (`--config.seed` among the overrides) shows how far",
                "two runs of one dtype move apart without any change of dtype.",
            ]
            if any(o.startswith("--config.seed=") for r in recs for o in r.get("overrides", []))
            else []
        ),
        "",
        f"Machine: {', '.join(machines)}; {'; '.join(vers)}; {dates[0]} to {dates[-1]}.",
        "",
        *_table(header, rows),
        "",
        "Command: `python benchmarks/precision.py --config=CONFIG [-- OVERRIDES]` with each",
        "row's config and overrides; it runs `python -m hncl_jax.main --config=CONFIG",
        "--config.dtype=DTYPE OVERRIDES` once per dtype.",
        "",
    ]


def render(results_dir: pathlib.Path = RESULTS) -> str:
    """The generated part of BENCHMARKS.md (between the markers) for a results folder."""
    records = read_results(results_dir)
    bench = [r for r in records if r.get("kind") == "benchmark"]
    lines = [BEGIN, "", "<!-- written by benchmarks/make_doc.py from benchmarks/results/ -->", ""]
    if bench:
        lines += ["Conditions:", "", *_conditions(bench), ""]
    lines += _allocator(bench) + _xla_defaults(bench) + _peer_steps(bench)
    lines += _epochs(bench) + _loss(bench)
    lines += _time_to_accuracy(records) + _precision(records)
    if len(lines) == 4:
        lines += ["No results recorded yet.", ""]
    return "\n".join([*lines, END])


def _median_ratio(records: list[dict[str, Any]], key: str = "ratio_eager") -> float | None:
    values = [r[key] for r in records if isinstance(r.get(key), int | float)]
    return statistics.median(values) if values else None


def render_summary(results_dir: pathlib.Path = RESULTS) -> str:
    """The summary block at the top of BENCHMARKS.md: what is measured, the headline
    ratios (medians over the recorded runs) and which devices the figures come from."""
    bench = [r for r in read_results(results_dir) if r.get("kind") == "benchmark"]
    lines = [SUMMARY_BEGIN, ""]
    lines.append(
        "- **What is measured**: the trainer's jitted train step (a), whole epochs (b) and "
        "the loss with its gradient (c), each against the same computation in PyTorch in "
        "the same process; time to accuracy; bfloat16 against float32."
    )
    steps = [r for r in bench if r.get("mode") == "step" and r.get("peer") == "torch"]
    steps = [r for r in steps if _library_flags(r)]
    parts = []
    for model in sorted({r["model"] for r in steps}):
        ratio = _median_ratio([r for r in steps if r["model"] == model])
        if ratio is not None:
            parts.append(f"{model} {_ratio(ratio)}")
    if parts:
        lines.append(
            "- **Train step**, JAX / PyTorch eager time (below 1: JAX faster), median of the "
            f"recorded runs with the library's XLA:CPU flags: {', '.join(parts)}."
        )
    for mode, what in (("epoch", "Full epoch"), ("loss", "Loss + gradient")):
        ratios = [r["ratio_eager"] for r in bench if r.get("mode") == mode and "ratio_eager" in r]
        if ratios:
            lines.append(
                f"- **{what}**, JAX / PyTorch eager: {_ratio(min(ratios))} to "
                f"{_ratio(max(ratios))} over {len(ratios)} recorded runs."
            )
    devices = sorted({str(r.get("device", "?")) for r in bench})
    accelerators = [d for d in devices if not d.startswith("cpu")]
    lines.append(
        f"- **Devices**: {', '.join(accelerators)} and CPU."
        if accelerators
        else "- **GPU figures**: none recorded yet; every figure is from a CPU (the GPU "
        "commands are in the sections below, to be run where a GPU is available)."
    )
    lines.append(f"- **Where from**: {len(bench)} records in benchmarks/results/ (tables below).")
    return "\n".join([*lines, "", SUMMARY_END])


def _split(doc: str, begin: str = BEGIN, end: str = END) -> tuple[str, str, str]:
    if doc.count(begin) != 1 or doc.count(end) != 1 or doc.index(begin) > doc.index(end):
        raise ValueError(f"BENCHMARKS.md must hold one {begin} ... {end} block.")
    head, rest = doc.split(begin)
    body, tail = rest.split(end)
    return head, begin + body + end, tail


def generated_summary(doc_text: str) -> str | None:
    """The summary block of a BENCHMARKS.md text (None where it has none)."""
    if SUMMARY_BEGIN not in doc_text:
        return None
    return _split(doc_text, SUMMARY_BEGIN, SUMMARY_END)[1]


def generated_part(doc_text: str) -> str:
    """The text between (and including) the markers of a BENCHMARKS.md text."""
    return _split(doc_text)[1]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if BENCHMARKS.md is stale")
    p.add_argument("--results", type=pathlib.Path, default=RESULTS)
    p.add_argument("--doc", type=pathlib.Path, default=DOC)
    args = p.parse_args(argv)
    text = args.doc.read_text()
    head, old, tail = _split(text)
    new = render(args.results)
    old_summary = generated_summary(text)
    new_summary = render_summary(args.results) if old_summary is not None else None
    if args.check:
        if old != new or old_summary != new_summary:
            print(f"{args.doc} disagrees with {args.results}: run benchmarks/make_doc.py")
            return 1
        return 0
    text = head + new + tail
    if old_summary is not None:
        s_head, _, s_tail = _split(text, SUMMARY_BEGIN, SUMMARY_END)
        text = s_head + new_summary + s_tail
    args.doc.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
