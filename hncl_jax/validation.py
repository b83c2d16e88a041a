"""Config and workdir checks, run before any data is loaded or anything is compiled.

Every error names the config field, the bad value and the fix, so that a mistyped
`--config.loss.name=hscll` costs a second, not a compile and a crash an hour later.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import warnings
from typing import Any

import ml_collections

from hncl_jax import baselines, data, geometry, hardening, losses, models

LOSS_NAMES = (*losses.SETTINGS, "simclr_form", *baselines.BASELINES)
OPTIMIZERS = ("adam", "adamw", "sgd", "lars")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
POSITIVES = ("labels", "views")
VIEWS = ("simclr", "noise", "clop")
DTYPES = ("float32", "bfloat16")
PROBE_MODES = ("end", "periodic", "off")
PROTOTYPES = ("orthonormal", "simplex")
UNSUPERVISED_LOSSES = (
    "ucl",
    "hucl",
    "simclr_form",
    "nt_xent",
    "dcl",
    "dclw",
    "vicreg",
    "barlow_twins",
)
FINGERPRINT_FILE = "run_fingerprint.json"


class ConfigError(ValueError):
    """A config field has a value the trainer cannot run with."""


def _choice(field: str, value: Any, options: tuple) -> None:
    if value not in options:
        close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"config.{field}={value!r} is not one of {', '.join(map(repr, options))}.{hint} "
            f"Set --config.{field}=<one of these>."
        )


def _positive(field: str, value: Any, *, strict: bool = True, integer: bool = False) -> None:
    ok = isinstance(value, int | float) and (value > 0 if strict else value >= 0)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        what = "a positive" if strict else "a non-negative"
        kind = "integer" if integer else "number"
        raise ConfigError(f"config.{field}={value!r} must be {what} {kind}; set --config.{field}.")


def validate_config(config: ml_collections.ConfigDict, *, num_devices: int = 1) -> None:
    """Checks every field the trainer reads; raises `ConfigError` on the first problem.

    Args:
      config: the run's config.
      num_devices: the global device count the batch is sharded over.
    """
    _choice("dataset", config.dataset, data.DATASETS)
    _choice("model", config.model, models.MODELS)
    _choice("normalization", config.normalization, geometry.NORMALIZATIONS)
    _choice("positives", config.positives, POSITIVES)
    if config.positives == "views":
        _choice("views", config.views, VIEWS)
    _choice("dtype", config.dtype, DTYPES)
    lc = config.loss
    _choice("loss.name", lc.name, LOSS_NAMES)
    _choice("loss.psi", lc.psi, hardening.PSIS)
    _choice("loss.hardening", lc.hardening, hardening.HARDENINGS)
    _choice("loss.estimator", lc.estimator, losses.ESTIMATORS)
    _choice("loss.draw", lc.draw, losses.DRAWS)
    _positive("loss.beta", lc.beta, strict=False)
    _positive("loss.epsilon", lc.epsilon)
    _positive("loss.k", lc.k, integer=True)
    _positive("loss.alpha", lc.alpha)
    _positive("loss.temperature", lc.temperature)
    if lc.estimator == "reweighted" and lc.psi != "infonce":
        raise ConfigError(
            f"config.loss.estimator='reweighted' is the k → ∞ limit of InfoNCE only, but "
            f"config.loss.psi={lc.psi!r}; use --config.loss.estimator=sampled or "
            "--config.loss.psi=infonce."
        )
    if lc.name in ("vicreg", "barlow_twins") and config.positives != "views":
        raise ConfigError(
            f"config.loss.name={lc.name!r} needs two views per example; set "
            "--config.positives=views."
        )
    _positive("clop.weight", config.clop.weight, strict=False)
    _choice("clop.prototypes", config.clop.prototypes, PROTOTYPES)
    frac = config.label_fraction
    if not isinstance(frac, int | float) or not 0.0 < frac <= 1.0:
        raise ConfigError(
            f"config.label_fraction={frac!r} must lie in (0, 1] (the fraction of training "
            "labels kept); e.g. --config.label_fraction=0.1."
        )
    if frac < 1.0 and lc.name not in UNSUPERVISED_LOSSES:
        raise ConfigError(
            f"config.label_fraction={frac} hides labels, but config.loss.name={lc.name!r} is "
            "supervised and needs every label. Use an unsupervised loss (ucl, hucl, nt_xent, "
            "dcl, vicreg, ...) with --config.clop.weight > 0, or label_fraction=1."
        )
    oc = config.optimizer
    _choice("optimizer.name", oc.name, OPTIMIZERS)
    _choice("optimizer.schedule", oc.schedule, SCHEDULES)
    _positive("optimizer.learning_rate", oc.learning_rate)
    _positive("optimizer.weight_decay", oc.weight_decay, strict=False)
    _positive("batch_size", config.batch_size, integer=True)
    _positive("num_epochs", config.num_epochs, integer=True)
    _positive("eval_batch_size", config.eval_batch_size, integer=True)
    _positive("log_every_steps", config.log_every_steps, integer=True)
    _positive("eval_every_epochs", config.eval_every_epochs, strict=False, integer=True)
    _positive("checkpoint_every_epochs", config.checkpoint_every_epochs, strict=False, integer=True)
    _choice("linear_probe", config.linear_probe, PROBE_MODES)
    if config.batch_size % num_devices:
        suggestion = max(num_devices, config.batch_size // num_devices * num_devices)
        raise ConfigError(
            f"config.batch_size={config.batch_size} is not divisible by the {num_devices} "
            f"devices the batch is sharded over; use a multiple of {num_devices}, e.g. "
            f"--config.batch_size={suggestion}."
        )
    if config.embed_dim not in (-1, None):
        _positive("embed_dim", config.embed_dim, integer=True)
    if config.init_from and not os.path.exists(os.path.expanduser(config.init_from)):
        raise ConfigError(
            f"config.init_from={config.init_from!r} does not exist; give the workdir or the "
            "checkpoint directory of the run to start from."
        )


def validate_against_data(config: ml_collections.ConfigDict, num_classes: int) -> None:
    """Checks that need the dataset's number of classes C (embedding dimension)."""
    if config.embed_dim in (-1, None):
        return
    d = int(config.embed_dim)
    if config.clop.weight > 0 and config.clop.prototypes == "orthonormal" and d < num_classes:
        raise ConfigError(
            f"config.embed_dim={d} < {num_classes} classes: CLOP's orthonormal prototypes need "
            f"embed_dim ≥ C; set --config.embed_dim={num_classes} or more."
        )
    if d < num_classes - 1:
        warnings.warn(
            f"config.embed_dim={d} < C - 1 = {num_classes - 1}: Neural-Collapse (a simplex ETF "
            "of the class means) is unattainable, and the Theorem 2/3 minima cannot be reached. "
            "Use --config.embed_dim=-1 (C - 1) to study collapse.",
            stacklevel=2,
        )


def check_workdir(workdir: str, fingerprint: dict, allow_change: bool) -> None:
    """Refuses a workdir that holds a run of a different config (unless allowed)."""
    path = os.path.join(workdir, FINGERPRINT_FILE)
    if not os.path.exists(path):
        return
    with open(path) as fh:
        old = json.load(fh)
    if old == fingerprint:
        return
    diffs = sorted(
        f"{k}: {old.get(k)!r} → {fingerprint.get(k)!r}"
        for k in set(old) | set(fingerprint)
        if old.get(k) != fingerprint.get(k)
    )
    msg = (
        f"workdir {workdir} holds a run of a different config ({'; '.join(diffs)}). Use a new "
        "--workdir, or pass --config.allow_config_change=True to continue it anyway."
    )
    if not allow_change:
        raise ConfigError(msg)
    logging.warning("%s (allowed by config.allow_config_change)", msg)


def save_fingerprint(workdir: str, fingerprint: dict) -> None:
    """Records the config fields that define the run (written atomically)."""
    path = os.path.join(workdir, FINGERPRINT_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(fingerprint, fh, sort_keys=True, indent=1)
    os.replace(tmp, path)
