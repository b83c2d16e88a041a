"""`python -m hncl_jax.sweep`: a grid of runs, here, on several devices or on SLURM.

python -m hncl_jax.sweep --config=digits:smoke --root=/tmp/grid --grid=loss.beta=0,2
python -m hncl_jax.sweep ... --devices_per_run=1          # one run per GPU, at once
python -m hncl_jax.sweep ... --launcher=slurm --slurm.parallelism=2 [--wait]
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from hncl_jax.sweep import grid, launchers
from hncl_jax.sweep import slurm as slurm_lib
from hncl_jax.train import cli as train_cli


def _define_flags(argv: list[str]):
    from absl import flags
    from ml_collections import config_flags

    fv = flags.FlagValues()
    # sys_argv: the `--config.<field>` and `--slurm.<option>` overrides are read from argv.
    config_flags.DEFINE_config_file(
        "config", None, "Base config, e.g. configs/synthetic.py[:smoke].", fv, sys_argv=argv
    )
    flags.DEFINE_string("root", None, "Parent folder of the runs' workdirs.", flag_values=fv)
    flags.DEFINE_multi_string(
        "grid", [], "'field.path=v1,v2,...' (repeat per field).", flag_values=fv
    )
    flags.DEFINE_integer(
        "seeds", 0, "Run every grid point with seeds 0..n-1 (0: no seed axis).", flag_values=fv
    )
    flags.DEFINE_list(
        "columns",
        ["train/epoch_loss", "eval/test/z/ncm_acc", "nc/train/z/zero_sum"],
        "Metrics printed in the final table.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "plot", None, "A grid field: plot each --columns metric against it.", flag_values=fv
    )
    flags.DEFINE_bool(
        "train_output",
        False,
        "Print each run's progress bar and summary (default: one line per run).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "launcher",
        "local",
        "Where the runs train: local (this machine) or slurm (a SLURM job array, through "
        "submitit: pip install submitit).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "devices_per_run",
        0,
        "local: train the runs in parallel processes, each given this many GPUs "
        "(CUDA_VISIBLE_DEVICES); 0: one run after another in this process.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "devices",
        None,
        "local with --devices_per_run: the GPUs to share out (default: CUDA_VISIBLE_DEVICES, "
        "else every GPU nvidia-smi lists).",
        flag_values=fv,
    )
    config_flags.DEFINE_config_dict(
        "slurm",
        slurm_lib.defaults(),
        "slurm: per-run resources and array options, --slurm.<option>=<value>.",
        fv,
        sys_argv=argv,
    )
    flags.DEFINE_bool("wait", False, "slurm: block until every run has finished.", flag_values=fv)
    flags.DEFINE_float(
        "poll_s", 30.0, "slurm with --wait: seconds between looks at the runs.", flag_values=fv
    )
    return fv


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """`python -m hncl_jax.sweep --config=... --root=... --grid=path=v1,v2 [--seeds=3]`.

    Every grid point (and every launcher option) is validated before the first run
    trains or is submitted; each run prints one line before and one after
    (`--train_output` adds the trainer's progress bar and summary). With `--seeds=n` every
    point runs with seeds 0..n-1 (or use `--grid=seed=0,1,2`); the printed table and
    `<root>/results_mean_std.csv` then give mean ± std over seeds, and `--plot=field`
    draws each metric of `--columns` against that field with error bars.

    `--launcher=slurm` submits the unfinished runs SLURM does not hold as one job array and
    returns; rerunning the command resubmits the runs that ended unfinished and prints the
    table once every run has finished (`--wait`: block until then).

    Args:
      argv: the command line, program name first (default `sys.argv`).

    Returns:
      The table of the finished runs (printed as Markdown once all are finished).
    """
    from absl import flags

    argv = list(sys.argv if argv is None else argv)
    try:  # a shipped config by name (--config=digits:smoke), as python -m hncl_jax.main
        argv = train_cli.rewrite_config_flag(argv)
    except train_cli.CommandLineError as e:
        print(f"sweep: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        fv = _define_flags(argv)
    except (AttributeError, KeyError) as e:  # a misspelt --slurm.<option>
        print(f"sweep: {_unknown_field(e)}. See python -m hncl_jax.sweep --help.", file=sys.stderr)
        raise SystemExit(2) from None
    if any(a in ("--help", "-h", "--helpfull") for a in argv[1:]):
        print(
            "python -m hncl_jax.sweep --config=<config>[:args] --root=<folder> "
            "--grid=<field>=<v1>,<v2> [--seeds=n] [--config.<field>=<value> ...] "
            "[--launcher=local|slurm] [--devices_per_run=n] [--slurm.<option>=<value> ...]\n"
        )
        print(fv.get_help())
        return []
    try:
        try:
            rest = fv(argv)
        except (AttributeError, KeyError) as e:  # ml_collections: a misspelt --<section>.<field>
            raise flags.Error(_unknown_field(e)) from None
        if len(rest) > 1:
            raise flags.Error(f"unexpected command-line arguments {rest[1:]}")
        launcher = launchers.check_launcher(fv.launcher)
        groups, opts = None, None
        if launcher == "slurm":
            if fv.devices_per_run:
                raise ValueError(
                    "--devices_per_run is for --launcher=local; on SLURM give each run its "
                    "GPUs with --slurm.gpus_per_run"
                )
            opts = slurm_lib.options(fv.slurm.to_dict())
            slurm_lib.check_available()
        elif fv.devices_per_run:
            devices = fv.devices if fv.devices is not None else launchers.visible_gpus()
            groups = launchers.device_groups(devices, fv.devices_per_run)
        if not fv.root:
            raise flags.Error("--root=<folder> is required: the parent folder of the runs")
        if fv.config is None:
            raise flags.Error("--config=<config file or name> is required")
        try:
            fv.config.keys()  # a config file that failed to load says so here
        except OSError as e:
            raise flags.Error(str(e).strip().splitlines()[-1].strip()) from None
        grid_values = dict(grid.parse_grid_flag(fv.config, g) for g in fv.grid)
    except (flags.Error, ValueError) as e:
        print(f"sweep: {str(e).rstrip('.')}. See python -m hncl_jax.sweep --help.", file=sys.stderr)
        raise SystemExit(2) from None
    seeds = fv.seeds or None
    try:
        if launcher == "local" and groups is None:
            rows = grid.run_grid(
                fv.config, grid_values, fv.root, seeds=seeds, train_output=fv.train_output
            )
        else:
            plan = grid.plan_grid(fv.config, grid_values, fv.root, seeds=seeds)
            if groups is not None:
                grid.check_plan(plan, num_devices=fv.devices_per_run)
                rows = launchers.run_parallel(plan, groups, train_output=fv.train_output)
            else:
                grid.check_plan(plan, num_devices=max(1, opts["gpus_per_run"]))
                rows = slurm_lib.run(
                    plan,
                    opts,
                    fv.root,
                    wait=fv.wait,
                    poll_s=fv.poll_s,
                    train_output=fv.train_output,
                )
                if rows is None:
                    return [
                        grid.row(r, w)
                        for _, c, w in plan
                        if (r := grid.finished_record(c, w)) is not None
                    ]
    except ValueError as e:  # a refused grid point or data set: one line, no traceback
        print(f"sweep: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except (RuntimeError, OSError, FloatingPointError) as e:
        # Runs that failed in their own process or job, a locked workdir, a full disk,
        # a non-finite run: the message is the line.
        print(f"sweep: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(
            f"sweep interrupted; rerun the same command (same --root={fv.root}) to continue.",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    _print_table(rows, fv)
    return rows


def _unknown_field(e: BaseException) -> str:
    """ml_collections' "'partiton'\\nDid you mean ..." as one line."""
    text = str(e).replace("\\n", " ").replace("\n", " ")
    name = re.search(r"\w+", text)
    hint = re.search(r"Did you mean[^?]*\?", text)
    return " ".join(
        filter(
            None, [f"no such option {name.group(0)!r}" if name else text, hint and hint.group(0)]
        )
    )


def _print_table(rows, fv) -> None:
    table = rows
    if fv.seeds:
        table = grid.aggregate(rows)
        grid.write_table(table, os.path.join(os.path.abspath(fv.root), grid.MEAN_STD_FILE))
    if table:
        print(grid.markdown_table(table, [*(k for k in table[0] if "/" not in k), *fv.columns]))
    if fv.plot:
        for metric in fv.columns:
            path = os.path.join(fv.root, f"plot_{grid.safe_name(metric)}_vs_{fv.plot}.png")
            grid.plot_sweep(table, fv.plot, metric, path)
