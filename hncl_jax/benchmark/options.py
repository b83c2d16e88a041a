"""The benchmark's command-line options: the flags of `python -m hncl_jax.benchmark`
(a private `absl.flags.FlagValues`), and `options_from_flags`, which resolves their
defaults and refuses, before anything compiles, a combination that cannot run
(`BenchmarkError`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import ml_collections
from absl import flags

from hncl_jax import losses, models
from hncl_jax.benchmark import torch_peer
from hncl_jax.train import validation

MODES = ("step", "epoch", "loss")
# mode=loss: (estimator, draw) by case name.
LOSS_CASE_ESTIMATORS = {
    "anchor": ("sampled", "anchor"),
    "pair": ("sampled", "pair"),
    "reweighted": ("reweighted", "-"),
}
LOSS_CASES = tuple(LOSS_CASE_ESTIMATORS)
PEERS = ("none", "torch")

# The benchmark's own flag set: a private `FlagValues`, so that `run()` can parse argv
# again and again in one process (tests, notebooks) whatever else defined absl flags.
BENCHMARK_FLAGS = flags.FlagValues()
_d = functools.partial
_enum = _d(flags.DEFINE_enum, flag_values=BENCHMARK_FLAGS)
_int = _d(flags.DEFINE_integer, flag_values=BENCHMARK_FLAGS)
_enum(
    "mode",
    "step",
    MODES,
    "step: the train step on a fixed batch; epoch: whole epochs "
    "with batch sampling and augmentation; loss: the loss + gradient alone.",
)
_enum("model", "resnet50", models.MODELS, "Encoder (models.MODELS).")
_int("batch", 512, "Batch size (images per step; views double it).", lower_bound=1)
_int(
    "depth",
    0,
    "small_cnn: convolutions per stage (0: the model's default, 1; the Fashion-MNIST config "
    "uses 2).",
    lower_bound=0,
)
_enum("loss", "hscl", validation.LOSS_NAMES, "Loss (config.loss.name).")
_int("k", 256, "Negatives per anchor of the sampled estimator.", lower_bound=1)
flags.DEFINE_float(
    "beta", 10.0, "β of the exponential hardening.", lower_bound=0.0, flag_values=BENCHMARK_FLAGS
)
_enum(
    "estimator",
    None,
    losses.ESTIMATORS,
    "Loss estimator; default 'sampled', or 'reweighted' (deterministic) with --peer=torch.",
)
_enum("draw", "anchor", losses.DRAWS, "Sampled estimator: one draw per anchor or per pair.")
_enum(
    "dtype",
    None,
    validation.DTYPES,
    "Compute dtype; default float32 on a CPU, bfloat16 on an accelerator.",
)
_enum("positives", "labels", validation.POSITIVES, "Label positives or two SimCLR views.")
_int("num_classes", 100, "Classes of the synthetic labels.", lower_bound=2)
_int("embed_dim", -1, "Embedding dimension d; -1: num_classes - 1.", lower_bound=-1)
_int("image_size", 32, "Height and width of the synthetic images.", lower_bound=1)
_int("channels", 3, "Channels of the synthetic images (1 for MNIST-like data).", lower_bound=1)
_int("dataset_size", 50_000, "mode=epoch: images in the device-resident dataset.", lower_bound=1)
_int("epochs", 2, "mode=epoch: timed epochs (repetitions with --peer).", lower_bound=1)
_int("steps", 20, "Timed dispatches (per repetition with --peer).", lower_bound=1)
_int("warmup", 3, "Untimed dispatches after the first (compiling) one.", lower_bound=0)
_int("steps_per_dispatch", 1, "Train steps scanned in one jitted call.", lower_bound=1)
flags.DEFINE_bool(
    "trivial_loss",
    False,
    "Replace the loss by mean(z²) to measure the model's share of the step.",
    flag_values=BENCHMARK_FLAGS,
)
flags.DEFINE_string(
    "profile_dir",
    "",
    "mode=step: write a jax.profiler trace of three steps here.",
    flag_values=BENCHMARK_FLAGS,
)
flags.DEFINE_list(
    "loss_n", ["128", "512", "2048"], "mode=loss: batch sizes N.", flag_values=BENCHMARK_FLAGS
)
flags.DEFINE_list("loss_k", ["64", "256"], "mode=loss: negatives k.", flag_values=BENCHMARK_FLAGS)
flags.DEFINE_multi_enum(
    "loss_cases",
    list(LOSS_CASES),
    LOSS_CASES,
    "mode=loss: the estimators timed: sampled with one draw per anchor or per pair "
    "(O(N² k): about a minute a call at N = 2048 on a small CPU), and reweighted.",
    flag_values=BENCHMARK_FLAGS,
)
_int("loss_dim", 128, "mode=loss: embedding dimension.", lower_bound=1)
_int(
    "naive_max_n", 512, "mode=loss: largest N timed with the naive per-anchor loop.", lower_bound=0
)
_enum(
    "peer",
    "none",
    PEERS,
    "torch: also time the same computation in PyTorch (eager and "
    "torch.compile), interleaved, after checking both give the same loss.",
)
flags.DEFINE_bool(
    "torch_compile",
    True,
    "--peer=torch: also time torch.compile (its first call compiles for minutes on a small CPU).",
    flag_values=BENCHMARK_FLAGS,
)
_int("repeats", 5, "--peer=torch, modes step and loss: interleaved repetitions.", lower_bound=1)
_int(
    "torch_threads",
    0,
    "--peer=torch: PyTorch's intra-op threads (0: its default, the core count). On a "
    "CPU shared with other jobs 1 can be many times faster: its OpenMP threads wait on "
    "each other when cores are taken.",
    lower_bound=0,
)
flags.DEFINE_string(
    "out",
    "",
    "Append every JSON line, with the command, the date and the "
    "machine, to this file (e.g. benchmarks/results/<date>-cpu.jsonl).",
    flag_values=BENCHMARK_FLAGS,
)
del _d, _enum, _int

# Losses and models the PyTorch twin computes (hncl_jax.benchmark.torch_peer).
_PEER_LOSSES = torch_peer.SETTINGS


class BenchmarkError(ValueError):
    """A benchmark option that cannot work; raised before anything is compiled."""


def _ints(flag: str, values: Sequence[str], minimum: int) -> list[int]:
    try:
        out = [int(v) for v in values]
    except ValueError:
        raise BenchmarkError(
            f"--{flag}={','.join(values)} must be a comma-separated list of integers, e.g. "
            f"--{flag}=128,512."
        ) from None
    if not out or min(out) < minimum:
        raise BenchmarkError(f"--{flag}={','.join(values)}: every value must be >= {minimum}.")
    return out


def options_from_flags(fv: flags.FlagValues = BENCHMARK_FLAGS) -> ml_collections.ConfigDict:
    """The parsed flags as a ConfigDict with defaults resolved and checked.

    Raises:
      BenchmarkError: for a combination that cannot run, with the fix, before any
        compilation.
    """
    o = ml_collections.ConfigDict({name: fv[name].value for name in fv})
    o.loss_n = _ints("loss_n", fv["loss_n"].value, 2)
    o.loss_k = _ints("loss_k", fv["loss_k"].value, 1)
    peer = o.peer == "torch"
    if o.dtype is None:
        o.dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    if o.estimator is None:
        o.estimator = "reweighted" if peer and o.mode != "loss" else "sampled"
    if o.depth and o.model != "small_cnn":
        raise BenchmarkError(f"--depth is an option of small_cnn; got --model={o.model}.")
    if o.mode == "epoch" and o.dataset_size < o.batch:
        raise BenchmarkError(
            f"--dataset_size={o.dataset_size} is smaller than --batch={o.batch}: an epoch "
            "would have no step; raise --dataset_size or lower --batch."
        )
    if o.mode == "loss" and o.loss not in losses.SETTINGS:
        raise BenchmarkError(
            f"--mode=loss times losses.contrastive_loss; --loss={o.loss!r} is not one of its "
            f"settings {losses.SETTINGS}."
        )
    if o.mode != "loss" and o.loss in ("vicreg", "barlow_twins") and o.positives != "views":
        raise BenchmarkError(f"--loss={o.loss} needs two views: add --positives=views.")
    if peer:
        _check_peer(o)
    return o


def _check_peer(o: ml_collections.ConfigDict) -> None:
    try:
        torch = torch_peer.import_torch()
    except ImportError as e:  # one line with the install command, not a traceback
        raise BenchmarkError(str(e)) from None
    if o.torch_threads:
        torch.set_num_threads(o.torch_threads)
    if o.loss not in _PEER_LOSSES:
        raise BenchmarkError(
            f"--peer=torch computes the losses {_PEER_LOSSES} in PyTorch; got --loss={o.loss}."
        )
    if o.mode == "loss":
        return
    if o.model not in torch_peer.MODELS:
        raise BenchmarkError(
            f"--peer=torch has PyTorch twins of {torch_peer.MODELS}; got --model={o.model}."
        )
    if o.dtype != "float32":
        raise BenchmarkError(
            f"--peer=torch compares float32 computations; got --dtype={o.dtype}. Use "
            "--dtype=float32."
        )
    if o.estimator != "reweighted":
        raise BenchmarkError(
            "--peer=torch in modes step and epoch uses --estimator=reweighted (deterministic, "
            "so both sides' losses can be checked equal; the loss is a small part of the "
            f"step); got --estimator={o.estimator}. --mode=loss compares the sampled one."
        )
    if o.positives != "labels":
        raise BenchmarkError(
            "--peer=torch has no PyTorch twin of the SimCLR augmentation; use --positives=labels."
        )
    if o.trivial_loss or o.steps_per_dispatch != 1:
        raise BenchmarkError(
            "--peer=torch compares the plain train step: drop --trivial_loss and "
            "--steps_per_dispatch."
        )


def model_options(o: ml_collections.ConfigDict) -> dict[str, int]:
    """The model options the flags set (`--depth`), as for `models.create_model`."""
    return {"depth": o.depth} if o.depth else {}
