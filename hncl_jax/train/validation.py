"""The config rules: config and data checks, run before anything is written or compiled.

Every error names the config field, the bad value and the fix, so that a mistyped
`--config.loss.name=hscll` costs a second, not a compile and a crash an hour later.
`train.train_and_evaluate` runs the checks in this order:

1. `validate_config(config, num_devices=...)`: every field the trainer reads (names,
   ranges, combinations), with no data loaded;
2. `workdir.check_workdir(workdir, fingerprint, allow_change)`: the workdir does not hold
   a run of a different config (read only; `config_fingerprint` gives the fields that
   define a run);
3. the data is loaded (a dataset that is not prepared raises `DatasetNotPreparedError`
   with the commands that prepare it; a corrupt Tiny-ImageNet file is named);
4. `validate_against_data(config, num_classes, ...)`: the fields that depend on the
   number of classes C and of training examples (embedding dimension, CLOP);
5. the step's memory estimate (`memory.check_memory`) and the warm-start checkpoint
   (`config.init_from`), compared leaf by leaf with the model
   (`checkpointing.load_for_warm_start`).

Only then is the workdir created and the train step compiled.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import ml_collections

from hncl_jax import baselines, data, geometry, hardening, losses, models
from hncl_jax.data import augment
from hncl_jax.train import tables

LOSS_NAMES = (*losses.SETTINGS, "simclr_form", *baselines.BASELINES)
POSITIVES = ("labels", "views")
VIEWS = augment.VIEW_KINDS
DTYPES = ("float32", "bfloat16")
PROBE_MODES = ("end", "periodic", "off")
PROTOTYPES = ("orthonormal", "simplex")
# The losses that read no label: decided by the losses themselves (the HN settings
# that take labels, the baselines that take labels); simclr_form reads labels only
# with `supervised_negatives`.
UNSUPERVISED_LOSSES = tuple(
    name
    for name in LOSS_NAMES
    if name not in losses.SUPERVISED_SETTINGS and name not in baselines.LABEL_LOSSES
)
# Data sets whose examples are vectors, not images (no SimCLR crops, no resizing):
# `data`'s own list, which `load_dataset` also refuses to resize.
VECTOR_DATASETS = data.VECTOR_DATASETS
# `dataset_kwargs` keys the trainer consumes itself (the rest go to `load_dataset`).
TRAINER_DATASET_KWARGS = ("max_examples",)
# NumPy's legacy and scikit-learn's seeds are uint32; the test split is drawn with seed + 1.
MAX_SEED = 2**32 - 2
# Flags the trainer reads as booleans.
BOOL_FIELDS = ("plots", "allow_config_change", "loss.exclude_anchor", "optimizer.scale_lr_by_batch")
# Steps are int32 in the train state and in optax's schedules.
MAX_STEPS = 2**31 - 1
# Fields a resumed run may change: run length, logging, evaluation and storage knobs.
RESUMABLE_FIELDS = frozenset(
    {
        "num_epochs",
        "name",
        "wandb",
        "eval_every_epochs",
        "checkpoint_every_epochs",
        "log_every_steps",
        "plots",
        "linear_probe",
        "probe_epochs",
        "allow_config_change",
        "max_checkpoints",
        "eval_batch_size",
        "data_dir",
        "manual_dir",
    }
)


class ConfigError(ValueError):
    """A config field has a value the trainer cannot run with."""


class WarmStartMismatch(ConfigError):
    """`config.init_from` holds another model: `headline` names both, the message adds
    every differing leaf (the command line prints the headline, `--verbose` all)."""

    def __init__(self, headline: str, details: str):
        super().__init__(f"{headline}\n{details}")
        self.headline = headline


class IgnoredOptionWarning(UserWarning):
    """A config field is set that the chosen loss does not read (it changes nothing)."""


def _choice(field: str, value: Any, options: Sequence[Any]) -> None:
    if value not in options:
        close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"config.{field}={value!r} is not one of {', '.join(map(repr, options))}.{hint} "
            f"Set --config.{field}=<one of these>."
        )


def _is_number(value: Any) -> bool:
    # bool is an int in Python, but `k=True` is a typo, not a count.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive(field: str, value: Any, *, strict: bool = True, integer: bool = False) -> None:
    ok = _is_number(value) and math.isfinite(value) and (value > 0 if strict else value >= 0)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        what = "a positive" if strict else "a non-negative"
        kind = "integer" if integer else "finite number"
        raise ConfigError(f"config.{field}={value!r} must be {what} {kind}; set --config.{field}.")


def _get(config: ml_collections.ConfigDict, field: str) -> Any:
    """`config` at a dotted field name ("loss.beta"); None where a level is missing."""
    node: Any = config
    for part in field.split("."):
        node = node.get(part) if hasattr(node, "get") else None
    return node


def optional_path(value: Any) -> str | None:
    """A path field's value, None when unset (None, "" or the flag text "None")."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    return value


def _dataset_options(name: str) -> tuple[str, ...]:
    """The `load_dataset` options of data set `name` (see `hncl_jax.data`)."""
    return tuple(data.DATASET_OPTIONS.get(name, ()))


def validate_config(
    config: ml_collections.ConfigDict, *, num_devices: int = 1, resuming: bool = False
) -> None:
    """Checks every field the trainer reads; raises `ConfigError` on the first problem.

    Needs no data and compiles nothing; the checks that need the number of classes are
    in `validate_against_data`.

    Args:
      config: the run's config (`configs/default.py` lists and explains every field).
      num_devices: the global device count the batch is sharded over.
      resuming: the workdir already holds a checkpoint of this run, which the trainer
        resumes from; `init_from` is then not read, so it need not exist any more.

    Raises:
      ConfigError: (a ValueError) naming the field, its value and the fix.
    """
    _validate_basics(config)
    _validate_data_model_and_loss(config)
    _validate_label_fraction(config)
    _validate_optimizer(config)
    _validate_outputs(config)
    _validate_schedule_and_evaluation(config)
    _validate_devices_and_init(config, num_devices=num_devices, resuming=resuming)


def _validate_basics(config: ml_collections.ConfigDict) -> None:
    """The seed, the boolean fields and the folder paths."""
    seed = config.seed
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(
            f"config.seed={seed!r} must be a non-negative integer; e.g. --config.seed=0."
        )
    if seed > MAX_SEED:
        # NumPy's and scikit-learn's seeds are uint32, and the test split uses seed + 1.
        raise ConfigError(
            f"config.seed={seed} is too large: it must lie in [0, {MAX_SEED}] (a uint32 seed "
            "for NumPy and scikit-learn); e.g. --config.seed=0."
        )
    for field in BOOL_FIELDS:
        value = _get(config, field)
        if not isinstance(value, bool):
            raise ConfigError(
                f"config.{field}={value!r} must be True or False; set --config.{field}=True "
                f"or --config.{field}=False."
            )
    for field in ("data_dir", "manual_dir", "init_from"):
        value = config.get(field)
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"config.{field}={value!r} must be a folder path (a string) or unset; set "
                f"--config.{field}=<folder>."
            )


def _validate_data_model_and_loss(config: ml_collections.ConfigDict) -> None:
    """Data set, model, normalization, positives and views, dtype, embedding, loss, CLOP."""
    _choice("dataset", config.dataset, data.DATASETS)
    _validate_data_fields(config)
    _choice("model", config.model, models.MODELS)
    _choice("normalization", config.normalization, geometry.NORMALIZATIONS)
    _choice("positives", config.positives, POSITIVES)
    _choice("views", config.views, VIEWS)
    _positive("noise_std", config.noise_std, strict=False)
    if config.positives == "views":
        if config.views in augment.IMAGE_VIEW_KINDS and config.dataset in VECTOR_DATASETS:
            raise ConfigError(
                f"config.views={config.views!r} crops and flips images, but "
                f"config.dataset={config.dataset!r} holds vectors; use --config.views=noise "
                "(Gaussian noise, HN §5) or --config.views=clop."
            )
        if config.views in ("noise", "clop"):
            _positive("noise_std", config.noise_std, strict=False)
    _validate_views(config)
    _choice("dtype", config.dtype, DTYPES)
    _validate_model_kwargs(config)
    if config.embed_dim not in (-1, None):
        _positive("embed_dim", config.embed_dim, integer=True)
    _validate_loss(config)
    _positive("clop.weight", config.clop.weight, strict=False)
    _choice("clop.prototypes", config.clop.prototypes, PROTOTYPES)


def _validate_label_fraction(config: ml_collections.ConfigDict) -> None:
    """The fraction of labels kept, and that the loss can train with hidden labels."""
    frac = config.label_fraction
    if not _is_number(frac) or not 0.0 < frac <= 1.0:
        raise ConfigError(
            f"config.label_fraction={frac!r} must lie in (0, 1] (the fraction of training "
            "labels kept); e.g. --config.label_fraction=0.1."
        )
    if frac < 1.0 and config.loss.name not in UNSUPERVISED_LOSSES:
        raise ConfigError(
            f"config.label_fraction={frac} hides labels, but config.loss.name="
            f"{config.loss.name!r} is supervised and needs every label. Use an unsupervised "
            "loss (ucl, hucl, nt_xent, dcl, vicreg, ...) with --config.clop.weight > 0, or "
            "label_fraction=1."
        )


def _validate_schedule_and_evaluation(config: ml_collections.ConfigDict) -> None:
    """Batch size, epochs, the periods of logging, evaluation and checkpoints, kNN, probe."""
    _positive("batch_size", config.batch_size, integer=True)
    if config.batch_size < 2:
        raise ConfigError(
            f"config.batch_size={config.batch_size} leaves no negatives: every loss contrasts "
            "an anchor with the other examples of its batch, so a batch of one gives loss 0 "
            "and gradient 0. Use --config.batch_size=2 or more (the papers use 256 to 1024)."
        )
    _positive("num_epochs", config.num_epochs, integer=True)
    if config.get("steps_per_dispatch") is not None:  # None means 1
        _positive("steps_per_dispatch", config.steps_per_dispatch, integer=True)
    _positive("eval_batch_size", config.eval_batch_size, integer=True)
    _positive("log_every_steps", config.log_every_steps, integer=True)
    _positive("eval_every_epochs", config.eval_every_epochs, strict=False, integer=True)
    _positive("checkpoint_every_epochs", config.checkpoint_every_epochs, strict=False, integer=True)
    if config.max_checkpoints is not None:  # None keeps every checkpoint
        _positive("max_checkpoints", config.max_checkpoints, integer=True)
    _choice("linear_probe", config.linear_probe, PROBE_MODES)
    _positive("probe_epochs", config.probe_epochs, integer=True)
    knn_k = config.knn_k
    if (
        not isinstance(knn_k, Sequence)
        or not knn_k
        or not all(_is_number(k) and float(k).is_integer() and k >= 1 for k in knn_k)
        or len(set(knn_k)) != len(knn_k)
    ):
        raise ConfigError(
            f"config.knn_k={knn_k!r} must be a non-empty tuple of distinct positive integers "
            "(the kNN neighbour counts); e.g. --config.knn_k='(5, 200)'."
        )


def _validate_devices_and_init(
    config: ml_collections.ConfigDict, *, num_devices: int, resuming: bool
) -> None:
    """The batch divides over the devices; a warm-start source exists (unless resuming)."""
    if config.batch_size % num_devices:
        suggestion = max(num_devices, config.batch_size // num_devices * num_devices)
        raise ConfigError(
            f"config.batch_size={config.batch_size} is not divisible by the {num_devices} "
            f"devices the batch is sharded over; use a multiple of {num_devices}, e.g. "
            f"--config.batch_size={suggestion}."
        )
    if (
        config.init_from
        and not resuming
        and not os.path.exists(os.path.expanduser(config.init_from))
    ):
        raise ConfigError(
            f"config.init_from={config.init_from!r} does not exist; give the workdir or the "
            "checkpoint directory of the run to start from."
        )


def _validate_data_fields(config: ml_collections.ConfigDict) -> None:
    name = config.dataset
    # None means "not set" (the placeholders of configs/default.py).
    kwargs = {k: v for k, v in dict(config.dataset_kwargs or {}).items() if v is not None}
    allowed = (*_dataset_options(name), *TRAINER_DATASET_KWARGS)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(
            f"config.dataset_kwargs has option(s) {unknown} that dataset {name!r} does not "
            f"take; allowed: {', '.join(allowed)}. Remove them or fix their names."
        )
    if kwargs.get("max_examples") is not None:
        _positive("dataset_kwargs.max_examples", kwargs["max_examples"], integer=True)
    if name == "clop_synthetic":
        from hncl_jax.data import synthetic

        options = {k: v for k, v in kwargs.items() if k in _dataset_options(name)}
        try:
            synthetic.check_clop_options(**options)
        except ValueError as e:
            raise ConfigError(f"config.dataset_kwargs.{e}") from None
    frac = kwargs.get("test_fraction")
    if frac is not None and not (_is_number(frac) and 0.0 < frac < 1.0):
        raise ConfigError(
            f"config.dataset_kwargs.test_fraction={frac!r} must lie in (0, 1) (the held-out "
            "share of each class); e.g. --config.dataset_kwargs.test_fraction=0.2."
        )
    if config.image_size is not None:
        if name in VECTOR_DATASETS:
            raise ConfigError(
                f"config.image_size={config.image_size!r} resizes images, but "
                f"config.dataset={name!r} holds vectors; set --config.image_size=None."
            )
        _positive("image_size", config.image_size, integer=True)
    if optional_path(config.get("manual_dir")) and name != "tinyimagenet":
        raise ConfigError(
            f"config.manual_dir={config.manual_dir!r} is the Tiny-ImageNet archive folder, "
            f"but config.dataset={name!r}; unset it (--config.manual_dir=)."
        )


def _validate_views(config: ml_collections.ConfigDict) -> None:
    """`augment` is a bool that needs image views on image data; `view_kwargs` are the
    options of the chosen view kind, each in its range."""
    aug = config.get("augment", False)
    if not isinstance(aug, bool):
        raise ConfigError(f"config.augment={aug!r} must be True or False.")
    if aug and config.positives == "labels" and config.views in augment.IMAGE_VIEW_KINDS:
        if config.dataset in VECTOR_DATASETS:
            raise ConfigError(
                f"config.augment=True with config.views={config.views!r} crops images, but "
                f"config.dataset={config.dataset!r} holds vectors; use --config.views=noise "
                "or --config.augment=False."
            )
    kw = dict(config.get("view_kwargs") or {})
    allowed = augment.VIEW_OPTIONS[config.views]
    bad = sorted(set(kw) - set(allowed))
    if bad:
        raise ConfigError(
            f"config.view_kwargs has option(s) {bad} that views={config.views!r} does not "
            f"take; allowed: {', '.join(allowed)}."
        )
    for name in ("flip_prob", "jitter_prob", "gray_prob"):
        if name in kw and (not _is_number(kw[name]) or not 0.0 <= kw[name] <= 1.0):
            raise ConfigError(
                f"config.view_kwargs.{name}={kw[name]!r} is a probability; use a value in [0, 1]."
            )
    if "crop_scale" in kw:
        cs = kw["crop_scale"]
        if (
            not isinstance(cs, Sequence)
            or len(cs) != 2
            or not all(_is_number(v) for v in cs)
            or not 0.0 < cs[0] <= cs[1] <= 1.0
        ):
            raise ConfigError(
                f"config.view_kwargs.crop_scale={cs!r} must be (low, high) with "
                "0 < low <= high <= 1, the range of the crop's share of the image area."
            )
    if "max_shift" in kw:
        _positive("view_kwargs.max_shift", kw["max_shift"], strict=False, integer=True)
    for name in ("std", "jitter_strength"):
        if name in kw:
            _positive(f"view_kwargs.{name}", kw[name], strict=False)


def _validate_model_kwargs(config: ml_collections.ConfigDict) -> None:
    kwargs = dict(config.model_kwargs) if config.model_kwargs else {}
    try:
        # Builds the module description only (no parameters, nothing compiled).
        models.create_model(config.model, embed_dim=1, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"config.model_kwargs={kwargs!r} does not fit config.model={config.model!r} ({e}); "
            "fix or remove the option."
        ) from e


def _validate_loss(config: ml_collections.ConfigDict) -> None:
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
    if lc.psi not in losses.ESTIMATOR_PSIS[lc.estimator]:  # the rule of `losses`
        raise ConfigError(
            f"config.loss.estimator='reweighted' is the k → ∞ limit of InfoNCE only, but "
            f"config.loss.psi={lc.psi!r}; use --config.loss.estimator=sampled or "
            "--config.loss.psi=infonce."
        )
    if lc.name in ("vicreg", "barlow_twins") and config.positives != "views":
        raise ConfigError(
            f"config.loss.name={lc.name!r} needs two views per example, but "
            f"config.positives={config.positives!r}; set --config.positives=views."
        )
    _validate_loss_options(config)


# The loss options of configs/default.py after `temperature`, with the value that
# changes nothing; a config written before they existed reads these.
LOSS_OPTION_DEFAULTS = {
    "hn_temperature": 1.0,
    "reduction": "anchor_mean",
    "tau_plus": 0.0,
    "grad_through_weights": False,
    "eta": "",
    "eta_threshold": 0.0,
    "num_proposals": 64,
    "beta_schedule": "constant",
    "beta_start": 0.0,
    "beta_schedule_steps": 1000,
    "simclr_q": "batch",
    "supervised_negatives": False,
    "diagnostics": True,
    "sigma": 0.5,
    "vicreg_sim_weight": 25.0,
    "vicreg_var_weight": 25.0,
    "vicreg_cov_weight": 1.0,
    "barlow_off_diagonal_weight": 5e-3,
    "contrast_mode": "all",
}
BETA_SCHEDULES = hardening.BETA_SCHEDULES
HN_LOSSES = (*losses.SETTINGS, "simclr_form")


def loss_option(config: ml_collections.ConfigDict, name: str) -> Any:
    """config.loss.<name>, or its no-op default for configs that predate the option."""
    return config.loss.get(name, LOSS_OPTION_DEFAULTS[name])


def _flag(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(
            f"config.{field}={value!r} must be True or False; set --config.{field}=True."
        )


def _validate_loss_options(config: ml_collections.ConfigDict) -> None:
    """The loss's options beyond name, ψ and hardening, in the order they are checked."""
    _validate_estimator_options(config)
    _validate_eta(config)
    _validate_beta_schedule(config)
    _validate_simclr_options(config)
    opt = functools.partial(loss_option, config)
    _flag("loss.diagnostics", opt("diagnostics"))
    _positive("loss.sigma", opt("sigma"))
    for field in (
        "vicreg_sim_weight",
        "vicreg_var_weight",
        "vicreg_cov_weight",
        "barlow_off_diagonal_weight",
    ):
        _positive(f"loss.{field}", opt(field), strict=False)
    _choice("loss.contrast_mode", opt("contrast_mode"), baselines.CONTRAST_MODES)
    warn_ignored_loss_options(config)  # e.g. a β set for scl: a sweep over it repeats a run


def _validate_estimator_options(config: ml_collections.ConfigDict) -> None:
    """Temperature, reduction, τ⁺ debiasing and gradients through the weights."""
    lc = config.loss
    name = lc.name
    opt = functools.partial(loss_option, config)
    reweighted = name in losses.SETTINGS and lc.estimator == "reweighted"
    _positive("loss.hn_temperature", opt("hn_temperature"))
    _choice("loss.reduction", opt("reduction"), losses.REDUCTIONS)
    tau_plus = opt("tau_plus")
    if not (_is_number(tau_plus) and 0.0 <= tau_plus < 1.0):
        raise ConfigError(
            f"config.loss.tau_plus={tau_plus!r} must lie in [0, 1) (the class prior τ⁺ of "
            "Robinson et al.); use --config.loss.tau_plus=0 for no debiasing."
        )
    if tau_plus > 0 and not reweighted:
        raise ConfigError(
            f"config.loss.tau_plus={tau_plus} debiases the reweighted estimator of "
            f"scl/hscl/ucl/hucl only, but config.loss.name={name!r} with estimator="
            f"{lc.estimator!r}; set --config.loss.estimator=reweighted or tau_plus=0."
        )
    _flag("loss.grad_through_weights", opt("grad_through_weights"))
    if opt("grad_through_weights") and not (reweighted or name == "simclr_form"):
        raise ConfigError(
            "config.loss.grad_through_weights=True acts on the weights of the reweighted "
            f"estimator or of simclr_form, but config.loss.name={name!r} with estimator="
            f"{lc.estimator!r} has none (sampled draws carry no gradient); set "
            "--config.loss.estimator=reweighted or grad_through_weights=False."
        )


def _validate_eta(config: ml_collections.ConfigDict) -> None:
    """A hardening function η sampled by SIR (`config.loss.eta`) and its options."""
    lc = config.loss
    name = lc.name
    opt = functools.partial(loss_option, config)
    eta = opt("eta")
    if not isinstance(eta, str):
        raise ConfigError(
            f"config.loss.eta={eta!r} must be a string: '' (off), one of "
            f"{', '.join(hardening.ETAS)}, or 'package.module:function'."
        )
    if eta:
        if name not in ("hscl", "hucl") or lc.estimator != "sampled":
            raise ConfigError(
                f"config.loss.eta={eta!r} (a hardening sampled by SIR) needs "
                "config.loss.name hscl or hucl with estimator='sampled'; got name="
                f"{name!r}, estimator={lc.estimator!r}."
            )
        if ":" not in eta:
            _choice("loss.eta", eta, hardening.ETAS)
        else:
            try:
                hardening.resolve_eta_hook(eta)
            except ValueError as e:
                raise ConfigError(f"config.loss.eta: {e} Fix the hook or unset it.") from e
        threshold = opt("eta_threshold")
        if not (_is_number(threshold) and math.isfinite(threshold)):
            raise ConfigError(
                f"config.loss.eta_threshold={threshold!r} must be a finite number (a "
                "similarity, e.g. 0.5)."
            )
        _positive("loss.num_proposals", opt("num_proposals"), integer=True)


def _validate_beta_schedule(config: ml_collections.ConfigDict) -> None:
    """A β schedule, allowed only for a loss whose hardening reads β."""
    lc = config.loss
    name = lc.name
    opt = functools.partial(loss_option, config)
    eta = opt("eta")
    schedule = opt("beta_schedule")
    _choice("loss.beta_schedule", schedule, BETA_SCHEDULES)
    if schedule != "constant":
        _positive("loss.beta_start", opt("beta_start"), strict=False)
        _positive("loss.beta_schedule_steps", opt("beta_schedule_steps"), integer=True)
        uses_beta = name in ("hscl", "hucl", "simclr_form") and (
            lc.hardening == "exponential" or (eta in ("exponential", "truncated"))
        )
        if not uses_beta:
            raise ConfigError(
                f"config.loss.beta_schedule={schedule!r} schedules β, but config.loss.name="
                f"{name!r} with hardening={lc.hardening!r} and eta={eta!r} does not read β; "
                "use hscl, hucl or simclr_form with exponential hardening, or "
                "beta_schedule='constant'."
            )


def _validate_simclr_options(config: ml_collections.ConfigDict) -> None:
    """simclr_form's Q and its supervised negatives."""
    name = config.loss.name
    opt = functools.partial(loss_option, config)
    _choice("loss.simclr_q", opt("simclr_q"), losses.Q_MODES)
    _flag("loss.supervised_negatives", opt("supervised_negatives"))
    if opt("supervised_negatives") and name != "simclr_form":
        raise ConfigError(
            f"config.loss.supervised_negatives=True is an option of simclr_form, but "
            f"config.loss.name={name!r} (hscl/scl already draw other-class negatives); "
            "unset it."
        )
    if name == "simclr_form" and opt("simclr_q") == "batch":
        if config.positives != "views" or opt("supervised_negatives"):
            raise ConfigError(
                "config.loss.simclr_q='batch' sets Q = N - 2, each anchor's number of "
                "negatives only for two views of distinct examples, but config.positives="
                f"{config.positives!r}, supervised_negatives={opt('supervised_negatives')}; "
                "set --config.loss.simclr_q=negatives (Q = each anchor's count)."
            )
    if opt("supervised_negatives") and config.label_fraction < 1.0:
        raise ConfigError(
            f"config.loss.supervised_negatives=True needs every label, but "
            f"config.label_fraction={config.label_fraction}; set label_fraction=1."
        )


# The loss options a loss may not read (configs/default.py's `loss` fields, but the name,
# the switches that raise when set for a loss that has no use for them, and diagnostics).
IGNORABLE_LOSS_OPTIONS = (
    "psi",
    "alpha",
    "hardening",
    "beta",
    "epsilon",
    "k",
    "estimator",
    "draw",
    "exclude_anchor",
    "temperature",
    "hn_temperature",
    "reduction",
    "eta_threshold",
    "num_proposals",
    "beta_start",
    "beta_schedule_steps",
    "simclr_q",
    "sigma",
    "vicreg_sim_weight",
    "vicreg_var_weight",
    "vicreg_cov_weight",
    "barlow_off_diagonal_weight",
    "contrast_mode",
)


# Values that mean "off" whichever loss runs (β = 0: no tilt, HSCL = SCL), so a config
# may state them for a loss that has no such option (configs/synthetic.py's SCL has β = 0).
NEUTRAL_LOSS_OPTIONS = {"beta": 0.0}


def loss_options_read(config: ml_collections.ConfigDict) -> set[str]:
    """The `IGNORABLE_LOSS_OPTIONS` that `config.loss.name` reads (with its other options).

    E.g. scl reads no β (it has no hardening), nt_xent no k, hscl no `temperature` (the
    hard-negative family's is `hn_temperature`).
    """
    lc = config.loss
    name, opt = lc.name, functools.partial(loss_option, config)
    eta, hardening_name = opt("eta"), lc.hardening
    read: set[str] = set()
    if name in HN_LOSSES:
        read |= {"hn_temperature", "reduction"}
        if name in ("hscl", "hucl", "simclr_form"):
            read.add("hardening")
            if hardening_name == "exponential" or eta in ("exponential", "truncated"):
                read.add("beta")
            if hardening_name == "polynomial" or eta == "polynomial":
                read.add("epsilon")
        if eta:
            read.add("num_proposals")
            if eta == "truncated" or ":" in eta:
                read.add("eta_threshold")
        if opt("beta_schedule") != "constant":
            read |= {"beta_start", "beta_schedule_steps"}
    if name in losses.SETTINGS:
        read |= {"psi", "k", "estimator"}
        if lc.psi != "infonce":
            read.add("alpha")  # infonce_sum's α, the triplet margin
        if lc.estimator == "sampled":
            read.add("draw")
        if name in ("ucl", "hucl"):
            read.add("exclude_anchor")
    elif name == "simclr_form":
        read.add("simclr_q")
    elif name not in ("vicreg", "barlow_twins"):
        read.add("temperature")
    read |= {
        "dclw": {"sigma"},
        "supcon": {"contrast_mode"},
        "vicreg": {"vicreg_sim_weight", "vicreg_var_weight", "vicreg_cov_weight"},
        "barlow_twins": {"barlow_off_diagonal_weight"},
    }.get(name, set())
    return read


@functools.cache
def _default_loss_options() -> dict[str, Any]:
    from hncl_jax.configs import default

    return default.get_config().loss.to_dict()


def ignored_loss_options(
    config: ml_collections.ConfigDict, fields: Sequence[str] | None = None
) -> list[str]:
    """Loss options that `config.loss.name` ignores and that were set.

    Args:
      config: the run's config.
      fields: the `loss` fields to look at (e.g. those a command line set); None: every
        field whose value differs from configs/default.py's.

    Returns:
      The ignored ones among them, in `IGNORABLE_LOSS_OPTIONS` order.
    """
    defaults = _default_loss_options()
    read = loss_options_read(config)
    if fields is None:
        fields = [
            f
            for f in IGNORABLE_LOSS_OPTIONS
            if f in config.loss
            and f in defaults
            and config.loss[f] not in (defaults[f], NEUTRAL_LOSS_OPTIONS.get(f, defaults[f]))
        ]
    # A neutral value (β = 0: no hardening) says what the loss does anyway, e.g. the
    # paper grids' "scl at β = 0" points: not an ignored option.
    neutral = [
        f
        for f in fields
        if f in NEUTRAL_LOSS_OPTIONS and config.loss.get(f) == NEUTRAL_LOSS_OPTIONS[f]
    ]
    return [f for f in IGNORABLE_LOSS_OPTIONS if f in fields and f not in read and f not in neutral]


def ignored_options_message(config: ml_collections.ConfigDict, fields: Sequence[str]) -> str:
    """One line naming the ignored `fields` of `config.loss` and the loss that ignores them."""
    values = ", ".join(f"config.loss.{f}={config.loss[f]!r}" for f in fields)
    them = "it" if len(fields) == 1 else "them"
    return (
        f"config.loss.name={config.loss.name!r} does not read {values}: "
        f"{'it changes' if len(fields) == 1 else 'they change'} nothing in this run "
        f"(runs that differ only there are the same run); drop {them} or choose a loss that "
        f"reads {them}."
    )


def warn_ignored_loss_options(
    config: ml_collections.ConfigDict, fields: Sequence[str] | None = None
) -> list[str]:
    """Warns (one line) about `ignored_loss_options(config, fields)`; returns them."""
    ignored = ignored_loss_options(config, fields)
    if ignored:
        warnings.warn(ignored_options_message(config, ignored), IgnoredOptionWarning, stacklevel=3)
    return ignored


def _validate_outputs(config: ml_collections.ConfigDict) -> None:
    """The run's name and the optional Weights & Biases mirror (`config.wandb`)."""
    name = config.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(
            f"config.name={name!r} must be a string (the run's name in summaries and plot "
            "titles); e.g. --config.name=digits_beta2."
        )
    use_wandb = config.get("wandb", False)
    if not isinstance(use_wandb, bool):
        raise ConfigError(
            f"config.wandb={use_wandb!r} must be True or False; e.g. --config.wandb=True."
        )
    if use_wandb and importlib.util.find_spec("wandb") is None:
        raise ConfigError(
            "config.wandb=True logs to Weights & Biases, but the wandb package is not "
            "installed. Install it with `pip install wandb` (in a checkout: `pip install -e "
            "'.[wandb]'`), or set --config.wandb=False."
        )


def _validate_optimizer(config: ml_collections.ConfigDict) -> None:
    # The names are those the trainer's factories dispatch on (`tables`).
    oc = config.optimizer
    _choice("optimizer.name", oc.name, tuple(tables.OPTIMIZERS))
    _choice("optimizer.schedule", oc.schedule, tuple(tables.SCHEDULES))
    _positive("optimizer.learning_rate", oc.learning_rate)
    _positive("optimizer.weight_decay", oc.weight_decay, strict=False)
    _positive("optimizer.warmup_epochs", oc.warmup_epochs, strict=False)
    if oc.schedule == "warmup_cosine" and oc.warmup_epochs > config.num_epochs:
        warnings.warn(
            f"config.optimizer.warmup_epochs={oc.warmup_epochs} > config.num_epochs="
            f"{config.num_epochs}: the learning rate never reaches its peak.",
            stacklevel=3,
        )
    if not (_is_number(oc.momentum) and 0.0 <= oc.momentum < 1.0):
        raise ConfigError(
            f"config.optimizer.momentum={oc.momentum!r} must lie in [0, 1) for "
            f"config.optimizer.name={oc.name!r}; e.g. --config.optimizer.momentum=0.9."
        )


def validate_against_data(
    config: ml_collections.ConfigDict,
    num_classes: int,
    *,
    num_examples: int | None = None,
    num_devices: int = 1,
) -> None:
    """Checks the fields that depend on the data: embedding dimension, CLOP, set size.

    Args:
      config: the run's config (already through `validate_config`).
      num_classes: C, the number of classes of the loaded training set.
      num_examples: N, the number of training examples (None: not checked).
      num_devices: the global device count the batch is sharded over.

    Raises:
      ConfigError: CLOP's prototypes do not fit in the embedding dimension, fewer than
        two classes, or fewer training examples than devices.

    Warns:
      UserWarning: embed_dim < C − 1, where Neural-Collapse cannot be reached.
    """
    if num_classes < 2:
        raise ConfigError(
            f"config.dataset={config.dataset!r} with config.dataset_kwargs="
            f"{dict(config.dataset_kwargs or {})} has {num_classes} class; contrastive "
            "learning and the evaluation need at least 2 (e.g. "
            "--config.dataset_kwargs.num_classes=3)."
        )
    if num_examples is not None and num_examples < num_devices:
        raise ConfigError(
            f"the training set of config.dataset={config.dataset!r} has {num_examples} "
            f"examples, fewer than the {num_devices} devices the batch is split over; raise "
            "config.dataset_kwargs.max_examples or use more data."
        )
    if num_examples is not None:
        _check_against_size(config, num_examples, num_devices)
    auto = config.embed_dim in (-1, None)
    d = embed_dim(config, num_classes)
    shown = f"config.embed_dim={config.embed_dim}" + (f" (C - 1 = {d})" if auto else "")
    if config.clop.weight > 0:
        # Orthonormal prototypes need C orthonormal vectors; a simplex ETF fits in C - 1.
        need = num_classes if config.clop.prototypes == "orthonormal" else num_classes - 1
        if d < need:
            raise ConfigError(
                f"{shown} < {need}: CLOP's {config.clop.prototypes} prototypes for "
                f"{num_classes} classes need embed_dim ≥ {need}; set --config.embed_dim={need} "
                "or more."
            )
    if d < num_classes - 1:
        warnings.warn(
            f"config.embed_dim={d} < C - 1 = {num_classes - 1}: Neural-Collapse (a simplex ETF "
            "of the class means) is unattainable, and the Theorem 2/3 minima cannot be reached. "
            "Use --config.embed_dim=-1 (C - 1) to study collapse.",
            stacklevel=2,
        )


def embed_dim(config: ml_collections.ConfigDict, num_classes: int) -> int:
    """The embedding dimension d of a run: `config.embed_dim`, or C − 1 when it is -1/None."""
    return num_classes - 1 if config.embed_dim in (-1, None) else int(config.embed_dim)


def fingerprint_of(config_dict: dict) -> dict:
    """The fields of a config (as a JSON dict) that define a run: all but `RESUMABLE_FIELDS`."""
    return {k: v for k, v in config_dict.items() if k not in RESUMABLE_FIELDS}


def config_fingerprint(config: ml_collections.ConfigDict) -> dict:
    """The fields of `config` that define a run (everything but `RESUMABLE_FIELDS`)."""
    return fingerprint_of(json.loads(config.to_json_best_effort()))


def _check_against_size(config: ml_collections.ConfigDict, n: int, num_devices: int) -> None:
    """The fields bounded by the number n of training examples."""
    batch = min(config.batch_size, n)
    batch -= batch % num_devices
    if batch < 2:
        raise ConfigError(
            f"config.batch_size={config.batch_size} with {n} training examples and "
            f"{num_devices} device(s) gives batches of {batch}: no negatives, loss 0 and "
            "gradient 0. Use more data (config.dataset_kwargs.max_examples) or a batch of 2 "
            "or more per step."
        )
    too_many = [k for k in config.knn_k if k > n]
    if too_many:
        raise ConfigError(
            f"config.knn_k={tuple(config.knn_k)!r} asks for {too_many[0]} neighbours, but the "
            f"kNN classifier is fit on the {n} training examples; use k ≤ {n}, e.g. "
            f"--config.knn_k='({min(5, n)},)'."
        )
    steps_per_epoch = n // batch
    total = config.num_epochs * steps_per_epoch
    if total > MAX_STEPS:
        raise ConfigError(
            f"config.num_epochs={config.num_epochs} × {steps_per_epoch} steps per epoch = "
            f"{total} steps exceeds the int32 step counter ({MAX_STEPS}); lower "
            "--config.num_epochs."
        )
    oc = config.optimizer
    warmup = oc.warmup_epochs * steps_per_epoch
    if warmup > MAX_STEPS:
        raise ConfigError(
            f"config.optimizer.warmup_epochs={oc.warmup_epochs} is {warmup:.3g} warmup steps, "
            f"beyond the int32 step counter ({MAX_STEPS}); use at most config.num_epochs="
            f"{config.num_epochs} warmup epochs."
        )
