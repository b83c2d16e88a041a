"""What the sections of REPRODUCTION.md share: the results files and the generated
blocks, the machine record and the header of a section, the grid runner of the trained
sections, and the verdict rule for a printed paper value.

A section's generated block lies between `<!-- BEGIN generated:<name> -->` and
`<!-- END generated:<name> -->` (`markers`); `write_section` writes a section module's
`render(results)` over it, `section_block` reads it back.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import jax
import ml_collections

from hncl_jax import sweep, train

RESULTS_DIR = "results"
DOC = "REPRODUCTION.md"
# The file a trained run of `grid` records its CPU seconds in (the sweep records the wall).
CPU_FILE = "reproduce_cpu_seconds.json"
# The NC metrics the synthetic sections tabulate and judge (`nc/train/z/<name>`).
NC_COLUMNS = ("zero_sum", "unit_norm", "equal_inner_product")


# --------------------------------------------------------------------------- files
def file_stem(name: str, size: str, unsuffixed: str | None) -> str:
    """`<name>` at the section's `unsuffixed` size, `<name>_<size>` at any other: the
    name of its results file and of its runs' folder."""
    return name if size == unsuffixed else f"{name}_{size}"


def results_path(
    name: str, size: str, unsuffixed: str | None = "full", repo: str | None = None
) -> str:
    """`results/<stem>.json` (`file_stem`), under `repo` when given."""
    path = os.path.join(RESULTS_DIR, f"{file_stem(name, size, unsuffixed)}.json")
    return os.path.join(repo, path) if repo else path


def default_root(name: str, size: str, unsuffixed: str | None = "full") -> str:
    """`runs/reproduce/<stem>`: the parent folder of a section's runs."""
    return os.path.join("runs", "reproduce", file_stem(name, size, unsuffixed))


def write_text_atomic(path: str, text: str) -> str:
    """Writes `path` through a temporary file and a rename: a kill leaves the old file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_results(results: Mapping[str, Any], path: str) -> str:
    """Writes a section's results (sorted keys, one space of indent) to `path`, atomically."""
    return write_text_atomic(path, json.dumps(results, indent=1, sort_keys=True))


def read_results(path: str, name: str | None = None) -> dict[str, Any]:
    """A results (or cache) file.

    Raises:
      ValueError: one line naming the file, what is wrong with it and, given the
        section's `name`, the command that writes it again (a missing, truncated or
        non-JSON file).
    """
    try:
        with open(path) as fh:
            results = json.load(fh)
        if not isinstance(results, dict):
            raise ValueError(f"a JSON {type(results).__name__}, not an object")
    except (OSError, ValueError) as e:
        what = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        again = (
            f"; compute it again with `python -m hncl_jax.reproduce {name}` (resumable: "
            "finished runs are reused), or pass --results=<another file>"
            if name
            else ""
        )
        raise ValueError(f"results file {path} cannot be read ({what}){again}.") from None
    return results


def command(name: str, size: str, default_size: str = "full") -> str:
    """The command line that computes a section at `size`, as its results record it."""
    return f"python -m hncl_jax.reproduce {name}" + (
        "" if size == default_size else f" --size={size}"
    )


# --------------------------------------------------------------------- trained sections' options
def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the sections that train grids of runs (each such section's
    `add_arguments`; `python -m hncl_jax.reproduce` adds them once)."""
    parser.add_argument(
        "--studies",
        default="",
        help="trained sections: comma-separated subset of the section's studies (default all)",
    )
    parser.add_argument(
        "--launcher",
        default="local",
        help="trained sections: where the runs train: local (this machine) or slurm (job "
        "arrays; warm starts wait for their sources' jobs)",
    )
    parser.add_argument(
        "--devices_per_run",
        type=int,
        default=0,
        help="trained sections, local: one run per this many GPUs at once (0: one after another)",
    )
    parser.add_argument(
        "--slurm",
        default="",
        help="trained sections, slurm: per-run resources, e.g. "
        "partition=gpu,gpus_per_run=1,time_min=240,parallelism=8",
    )
    parser.add_argument(
        "--wait", action="store_true", help="trained sections, slurm: block until all runs finish"
    )


def studies_option(args: argparse.Namespace, studies: Sequence[str]) -> list[str]:
    """The studies `--studies` names (all of `studies` when it is empty)."""
    return [s for s in args.studies.split(",") if s] or list(studies)


def check_size_and_studies(
    size: str, sizes: Sequence[str], studies: Sequence[str], known: Sequence[str]
) -> None:
    """Raises ValueError, naming the option, for a size not in `sizes` or a study not in
    `known` (a trained section's `--size` and `--studies`)."""
    if size not in sizes:
        raise ValueError(f"unknown --size={size!r}; expected one of {tuple(sizes)}.")
    bad = [s for s in studies if s not in known]
    if bad:
        raise ValueError(f"unknown --studies {bad}; expected some of {tuple(known)}.")


def study_times(runs: Sequence[Mapping[str, Any]], studies: Sequence[str]) -> str:
    """The wall time of each study's runs, one after another (a trained section's header):
    "`study` n runs in T (t the longest); ..." from the runs' recorded seconds."""
    parts = []
    for study in studies:
        secs = [r["seconds"] for r in runs if r["study"] == study]
        if secs:
            parts.append(
                f"`{study}` {len(secs)} runs in {duration(sum(secs))} "
                f"({duration(max(secs))} the longest)"
            )
    return "; ".join(parts) or "no run finished"


def missing_note(results: Mapping[str, Any]) -> list[str]:
    """The lines saying which studies' runs a trained section's results lack (none when
    every planned run finished)."""
    if not results["missing"]:
        return []
    studies = sorted({r["study"] for r in results["missing"]})
    return [
        f"**{len(results['missing'])} runs are missing** from the results file (studies "
        f"{', '.join(studies)}); their rows and verdicts are absent below.",
        "",
    ]


def launch_options(args: argparse.Namespace) -> dict[str, Any]:
    """`sweep.launchers.launch`'s options from `add_grid_arguments`' flags; ValueError for
    a bad one, before anything trains or is submitted."""
    from hncl_jax.sweep import launchers
    from hncl_jax.sweep import slurm as slurm_lib

    launcher = launchers.check_launcher(args.launcher)
    launch: dict[str, Any] = {"launcher": launcher}
    if launcher == "slurm":
        slurm_lib.parse_options(args.slurm)  # a bad option fails here, before anything runs
        launch.update(slurm_options=args.slurm, wait=args.wait)
        slurm_lib.check_available()
    elif args.slurm or args.wait:
        raise ValueError("--slurm and --wait are for --launcher=slurm")
    if args.devices_per_run:
        if launcher != "local":
            raise ValueError("--devices_per_run is for --launcher=local")
        launchers.device_groups(launchers.visible_gpus(), args.devices_per_run)
        launch["devices_per_run"] = args.devices_per_run
    return launch


# --------------------------------------------------------------------------- blocks
def markers(name: str) -> tuple[str, str]:
    """The BEGIN / END comments around a generated section of REPRODUCTION.md."""
    return f"<!-- BEGIN generated:{name} -->", f"<!-- END generated:{name} -->"


def block(name: str, body: str) -> str:
    """`body` between the section's markers, one line each."""
    begin, end = markers(name)
    return begin + "\n" + body.strip("\n") + "\n" + end


def replace_block(doc_path: str, begin: str, end: str, text_block: str) -> str:
    """Writes `text_block` (which starts with `begin` and ends with `end`) over the text
    between those markers in `doc_path`, or appends it when the markers are absent."""
    text = open(doc_path).read() if os.path.exists(doc_path) else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + text_block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + text_block + "\n"
    return write_text_atomic(doc_path, text)


def write_section(section: ModuleType, results: Mapping[str, Any], doc_path: str = DOC) -> str:
    """Replaces the generated block of a section module (`section.render(results)`) in
    `doc_path`; appends it when absent."""
    begin, end = markers(section.NAME)
    return replace_block(doc_path, begin, end, section.render(results))


def section_block(name: str, doc_path: str = DOC) -> str:
    """The generated block of section `name` currently in `doc_path` (markers included)."""
    begin, end = markers(name)
    text = open(doc_path).read()
    if begin not in text or end not in text:
        raise ValueError(f"{doc_path} has no generated {name} section ({begin} ... {end}).")
    return begin + text.split(begin, 1)[1].split(end, 1)[0] + end


# --------------------------------------------------------------------------- machine, header
def environment() -> dict[str, Any]:
    """The machine and versions a section was computed with, and the date."""
    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "device": jax.devices()[0].device_kind,
            "platform": jax.default_backend(),
        },
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
        "written": time.strftime("%Y-%m-%d"),
    }


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def header(results: Mapping[str, Any], name: str, results_file: str) -> str:
    """The 'Generated by ...' paragraph of a section: command, file, machine, time."""
    m, v = results["machine"], results["versions"]
    wall, cpu = results["seconds"], results.get("cpu_seconds")
    cost = f"{duration(wall)} wall"
    if cpu:
        cost += f", {duration(cpu)} of CPU time"
    shared = "; the machine was shared with other work, so wall time exceeds CPU time / cores"
    return (
        f"Generated by `python -m hncl_jax.reproduce {name} --write_doc` from "
        f"`{results_file}`, which `{results['command']}` "
        f"wrote; do not edit by hand. Machine: {m['cpu_count']} CPU cores ({m['processor']}, "
        f"JAX {v['jax']}, {m['platform']}). Measured cost of the section: {cost}"
        + (" (the sum over its runs, as each was trained" if results.get("trains") else " (")
        + shared.lstrip("; " if not results.get("trains") else "")
        + ")."
    )


# --------------------------------------------------------------------------- grid runner
def enable_compilation_cache(root: str) -> None:
    """A persistent compilation cache beside `root`: runs of one section differ in values,
    not shapes, so every run after the first reuses the compiled programs."""
    cache = os.path.join(os.path.dirname(os.path.abspath(root)), ".jax_cache")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def timed_train(config: ml_collections.ConfigDict, workdir: str) -> None:
    """`train.train_and_evaluate` (quiet), recording the process CPU seconds it took in
    `<workdir>/reproduce_cpu_seconds.json` (the sweep records the wall seconds)."""
    start = time.process_time()
    train.train_and_evaluate(config, workdir, verbose=False)
    with open(os.path.join(workdir, CPU_FILE), "w") as fh:
        json.dump({"cpu_seconds": time.process_time() - start}, fh)


def grid(
    base: ml_collections.ConfigDict,
    root: str,
    points: Sequence[Mapping[str, Any]],
    seeds: int | None = None,
) -> list[dict[str, Any]]:
    """`sweep.run_grid` over `points` (resumable); each row with its seconds and CPU
    seconds (recorded when the run trained) and its assignments."""
    rows = sweep.run_grid(base, {}, root, points=points, seeds=seeds, train_fn=timed_train)
    plan = sweep.plan_grid(base, {}, root, points=points, seeds=seeds)
    out = []
    for row, (assignments, _, workdir) in zip(rows, plan, strict=True):
        record = read_results(os.path.join(workdir, sweep.RESULT_FILE))
        cpu = None
        if os.path.exists(os.path.join(workdir, CPU_FILE)):
            cpu = read_results(os.path.join(workdir, CPU_FILE))["cpu_seconds"]
        out.append(
            {
                **row,
                "assignments": {k: sweep._json_value(v) for k, v in assignments.items()},
                "seconds": record["seconds"],
                "cpu_seconds": cpu,
            }
        )
    return out


def cost(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Total wall and CPU seconds of trained runs (as recorded when each trained)."""
    return {
        "seconds": float(sum(r.get("seconds") or 0.0 for r in rows)),
        "cpu_seconds": float(sum(r.get("cpu_seconds") or 0.0 for r in rows)),
    }


# --------------------------------------------------------------------------- verdicts
def _paper_digits(paper: str) -> int:
    return len(paper.split(".")[1]) if "." in paper else 0


def value_verdict(measured: float, paper: str, se: float | None = None) -> str:
    """Rule for a printed paper value: "match" when the measured value rounds to it at
    the paper's printed digits (or lies within 2 standard errors of it, for an estimate
    with one); "match if truncated" when it truncates to it; else "differs"."""
    digits = _paper_digits(paper)
    target = float(paper)
    if round(measured, digits) == round(target, digits) or (
        se is not None and abs(measured - target) <= 2 * se
    ):
        return "match"
    if math.floor(measured * 10**digits) / 10**digits == target:
        return f"match if truncated (rounded to {digits} digits it is {measured:.{digits}f})"
    return f"differs ({measured - target:+.2g})"


def value_range(groups: Sequence[tuple[str, Mapping[str, Any]]], key: str) -> str:
    """`min–max` of the means of `key` over (label, group) pairs that have it, else `—`."""
    values = [g[key] for _, g in groups if key in g]
    return f"{min(values):.3f}–{max(values):.3f}" if values else "—"


def number(x: float | None, digits: int = 4) -> str:
    """A table cell: `—` for None, scientific below the printed digits, else fixed."""
    if x is None:
        return "—"
    if x != 0 and abs(x) < 10 ** (-digits + 1):
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


# --------------------------------------------------------------------------- two groups of seeds
# A difference between two settings counts when Welch's two-sided t-test gives p below
# this (`welch`, `difference_verdict`).
ALPHA = 0.05


def welch(
    mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int
) -> dict[str, Any]:
    """Welch's two-sided t-test of mean_b − mean_a from each group's mean, sample std
    (ddof = 1) and size: {"diff", "se", "t", "df", "p", "spread"}.

    `spread` says which groups have no spread ("both", "a", "b" or "" for neither); the
    test needs a positive standard error, so `t`, `df` and `p` are None when both have
    none (identical values in every seed of each group, e.g. an integer rank) or when a
    group has fewer than two seeds (then `spread` is "one seed"). With no spread in one
    group the test is that of the other group's mean against a constant (df = n − 1 of
    the group with spread).
    """
    if n_a < 2 or n_b < 2:
        return {"diff": mean_b - mean_a, "se": None, "t": None, "df": None, "p": None,
                "spread": "one seed"}  # fmt: skip
    va, vb = std_a**2 / n_a, std_b**2 / n_b
    spread = {(True, True): "both", (True, False): "a", (False, True): "b"}.get(
        (va == 0, vb == 0), ""
    )
    diff = mean_b - mean_a
    if spread == "both":
        return {"diff": diff, "se": 0.0, "t": None, "df": None, "p": None, "spread": spread}
    from scipy import stats  # scikit-learn's dependency

    se = math.sqrt(va + vb)
    t = diff / se
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    p = float(2 * stats.t.sf(abs(t), df))
    return {"diff": diff, "se": se, "t": t, "df": df, "p": p, "spread": spread}


def difference_verdict(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    key: str,
    *,
    higher_is: str,
    lower_is: str,
    names: tuple[str, str] = ("a", "b"),
) -> str:
    """The verdict on b's `key` against a's (groups of seeds as `sweep.aggregate` gives
    them: `<key>`, `<key>_std`, `n`) by Welch's test at level ALPHA: `higher_is` /
    `lower_is` when p < ALPHA, else "no significant difference"; the difference and p
    are stated. Without spread in both groups no test is possible: equal values are "no
    difference", unequal ones are stated as seen in every seed, not as significant."""
    w = welch(a[key], a.get(f"{key}_std", 0.0), a["n"], b[key], b.get(f"{key}_std", 0.0), b["n"])
    diff = w["diff"]
    if w["spread"] == "one seed":
        return f"one seed only, no test (difference {diff:+.3g})"
    if w["spread"] == "both":
        if diff == 0:
            return f"no difference (every seed of both gives {a[key]:.3g})"
        word = higher_is if diff > 0 else lower_is
        return (
            f"{word} in every seed ({b[key]:.3g} against {a[key]:.3g}; no spread in either "
            "group, so no t-test)"
        )
    note = ""
    if w["spread"]:
        which = names[0] if w["spread"] == "a" else names[1]
        value = a[key] if w["spread"] == "a" else b[key]
        note = f"; no spread in {which}: every seed gives {value:.3g}"
    stated = f"difference {diff:+.3g}, Welch p = {w['p']:.2g}{note}"
    if w["p"] < ALPHA:
        return f"{higher_is if diff > 0 else lower_is} ({stated})"
    return f"no significant difference ({stated})"
