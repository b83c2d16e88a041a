"""The trainer: `train_and_evaluate(config, workdir)`, its factories and its pure step.

    from hncl_jax import train
    train.train_and_evaluate(config, "/tmp/run")
    built = train.build(config, num_classes, batch_size=256, steps_per_epoch=100)

The package's modules:

* `loop`: the trainer (`train_and_evaluate`), its factories and its pure step.
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
            "Built",
            "KEY_STREAMS",
            "TrainState",
            "VIEW_STREAM",
            "build",
            "catch_signals",
            "create_learning_rate_fn",
            "create_model",
            "create_train_state",
            "epoch_permutation",
            "itstime",
            "load_data",
            "make_batch",
            "make_batch_fn",
            "make_features_fn",
            "make_mesh",
            "make_objective",
            "make_optimizer",
            "make_step_fn",
            "put_replicated",
            "rng_key",
            "run_evaluation",
            "theorem_bound",
            "train_and_evaluate",
            "train_step",
            "view_key",
            "view_options",
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
