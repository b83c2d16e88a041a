"""Hyper-parameter grids: resumable sweeps of the trainer, one workdir per run.

* `run_grid(base_config, grid, root_workdir)` trains every combination of the grid's
  field values with `train.train_and_evaluate`, each in its own sibling workdir named
  from the values (`<root>/loss.name=hscl,loss.beta=10`). Rerunning skips the finished
  runs and resumes the unfinished ones (through the trainer's own resume). Returns the
  table of final metrics, one dict per run. The console shows one line as each run
  starts and one as it ends (`train_output=True`, `--train_output`: the trainer's
  progress bar and summary too).
* `restore_representations(config, workdir)` reads a finished run's final model from its
  checkpoint (nothing trained, nothing written) for plots of its representations.

The synthetic grid of the hard-negative paper trained in one vmapped program is
`hncl_jax.synthetic_grid`.

Command line (one `--grid` per field, values comma separated; any `--config.<field>`
override applies to every run):

    python -m hncl_jax.sweep --config=configs/cifar100.py --root=/tmp/c100 \\
        --grid='loss.name=scl,hscl' --grid='loss.beta=0,2,5,10,30'

`--launcher` chooses where the runs train (`launchers`): `local` (the default, one after
another in this process; with `--devices_per_run=N` in parallel processes, N GPUs each)
or `slurm` (one SLURM job array through submitit, `slurm`).

The package's modules: `grid` (naming, planning, `run_grid`, tables), `launchers` (local
launchers), `slurm` (the SLURM launcher), `cli` (the command line), `worker` (one run in
its own process).

References:
  big_vision and flax examples: one workdir per run, resumable by rerunning.
"""

from __future__ import annotations

import importlib
from typing import Any

from hncl_jax.sweep.grid import (
    MEAN_STD_FILE,
    RESULT_FILE,
    RESULT_KEYS,
    TABLE_FILE,
    aggregate,
    apply_assignments,
    check_plan,
    expand_grid,
    final_metrics,
    finished_record,
    format_mean_std,
    format_value,
    load_record,
    load_table,
    markdown_table,
    parse_grid_flag,
    parse_value,
    plan_grid,
    plot_sweep,
    restore_representations,
    result_text,
    row,
    run_grid,
    run_name,
    run_plan,
    safe_name,
    train_point,
    with_seeds,
    write_table,
)

__all__ = [
    "MEAN_STD_FILE",
    "RESULT_FILE",
    "RESULT_KEYS",
    "TABLE_FILE",
    "aggregate",
    "apply_assignments",
    "check_plan",
    "expand_grid",
    "final_metrics",
    "finished_record",
    "format_mean_std",
    "format_value",
    "load_record",
    "load_table",
    "main",
    "markdown_table",
    "parse_grid_flag",
    "parse_value",
    "plan_grid",
    "plot_sweep",
    "restore_representations",
    "result_text",
    "row",
    "run_grid",
    "run_name",
    "run_plan",
    "safe_name",
    "train_point",
    "with_seeds",
    "write_table",
]


def main(argv=None) -> list[dict[str, Any]]:
    """The command line, `python -m hncl_jax.sweep` (`hncl_jax.sweep.cli.main`)."""
    return importlib.import_module("hncl_jax.sweep.cli").main(argv)


def __getattr__(name: str) -> Any:
    # The grid module's private helpers (e.g. `_json_value`) stay reachable as before.
    if name.startswith("_") and not name.startswith("__"):
        return getattr(importlib.import_module("hncl_jax.sweep.grid"), name)
    raise AttributeError(f"module 'hncl_jax.sweep' has no attribute {name!r}")
