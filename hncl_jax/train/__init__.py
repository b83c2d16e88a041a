"""The trainer: `train_and_evaluate(config, workdir)`, its factories and its pure step.

    from hncl_jax import train
    train.train_and_evaluate(config, "/tmp/run")
    built = train.build(config, num_classes, batch_size=256, steps_per_epoch=100)

The package's modules:

* `loop`: the host loop, `train_and_evaluate(config, workdir)`: data loading, the loop
  that dispatches the steps and logs, evaluates and checkpoints on time, the report.
* `step`: the pure `train_step` and its wiring (`make_batch_fn`, `make_step_fn`,
  `make_mesh`, `build`).
* `state`: the `TrainState`, the run's random keys (`rng_key`) and the factories of
  model, schedule, optimizer and initial state.
* `objectives`: `make_objective`, the loss of a config, one factory per loss family.
* `signals`: SIGTERM and Ctrl-C caught during a run (`catch_signals`), so it stops at a
  checkpoint.
* `tables`: the optimizer and schedule names a config may use (`OPTIMIZERS`, `SCHEDULES`).
* `validation`: the config rules, checked before anything is written or compiled.
* `memory`: the memory estimate of one train step, checked before compiling.
* `workdir`: the workdir's file names (one table), its exclusive lock, its layout check
  and the run record (`config.json`, checked against the config of a resumed run).
* `checkpointing`: Orbax checkpoints (resume, fallback past a damaged step, warm start).
* `reporting`: the metric writer (`metrics.jsonl`, TensorBoard), progress bar, summary.
* `plots`: the figures of a run and of a grid of runs (matplotlib's `Figure` API).
* `cli`: what `python -m hncl_jax.main` needs: config names, default workdir, errors.

The trainer's functions are re-exported here (`train.build`, `train.TrainState`, ...)
and load on first use, so `from hncl_jax.train import cli` imports no JAX.
"""

from __future__ import annotations

import importlib

# Every name re-exported here → the module of this package that defines it.
_EXPORTS = {
    **dict.fromkeys(("OPTIMIZERS", "SCHEDULES"), "tables"),
    **dict.fromkeys(
        (
            "KEY_STREAMS",
            "VIEW_STREAM",
            "TrainState",
            "create_learning_rate_fn",
            "create_model",
            "create_train_state",
            "make_optimizer",
            "rng_key",
            "view_key",
        ),
        "state",
    ),
    **dict.fromkeys(("make_objective", "theorem_bound"), "objectives"),
    **dict.fromkeys(
        (
            "Built",
            "build",
            "epoch_permutation",
            "make_batch",
            "make_batch_fn",
            "make_mesh",
            "make_step_fn",
            "put_replicated",
            "train_step",
            "view_options",
        ),
        "step",
    ),
    "catch_signals": "signals",
    **dict.fromkeys(
        (
            "itstime",
            "load_data",
            "make_features_fn",
            "run_evaluation",
            "train_and_evaluate",
        ),
        "loop",
    ),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Loaded on first use: the submodules import JAX, Flax and Orbax, which `cli` (run
    # before the command line re-executes itself) and `import hncl_jax.train` do not need.
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
