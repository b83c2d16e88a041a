"""Throughput benchmarks: the train step, a full epoch and the loss kernel, optionally
side by side with PyTorch.

Prints one JSON line per measurement (times are medians of timed dispatches after
warm-up, each closed by `block_until_ready`):

    # (a) the jitted train step on a device-resident synthetic batch
    python -m hncl_jax.benchmark --mode=step --model=resnet50 --batch=512 --dtype=bfloat16
    # (b) a full epoch from a device-resident uint8 dataset (CIFAR-shaped by default),
    #     batch sampling, two SimCLR views and augmentation included
    python -m hncl_jax.benchmark --mode=epoch --model=resnet50 --batch=512 --positives=views
    # (c) the loss alone (loss + gradient w.r.t. z) over N, k and the estimators,
    #     against a naive per-anchor loop with host-side sampling (the papers' code)
    python -m hncl_jax.benchmark --mode=loss
    # any mode against the same network, loss and Adam in PyTorch (eager and compiled)
    python -m hncl_jax.benchmark --mode=step --model=tiny_cnn --batch=256 --peer=torch

Fields: `images_per_sec`, `step_ms`, `compile_s`, `peak_memory_gib` (device allocator on
GPU/TPU, the process's peak RSS on CPU), `tflops` (achieved, from the analytic FLOP
count of `models.model_flops` × 3 for a train step), `device`, `jax_version`. With
`--peer=torch` a line also holds `torch_eager_ms`, `torch_compile_ms`, the ratios
`ratio_eager` / `ratio_compile` (JAX time / PyTorch time, medians of per-repetition
ratios of interleaved runs), both parameter counts and both losses on the same input,
which are checked equal before anything is timed. `--out=FILE` appends the lines, with
the command, the date and the machine, to a results file (see `benchmarks/`).

The benchmark builds its trainer config in place (an `ml_collections.ConfigDict`, as
the trainer's); it needs no dataset. PyTorch is optional (`pip install
'hncl_jax[bench]'`).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags

from hncl_jax import geometry, losses, models, runtime, torch_peer
from hncl_jax import hardening as hard
from hncl_jax.train import validation

MODES = ("step", "epoch", "loss")
# mode=loss: (estimator, draw) by case name.
_LOSS_CASES = {
    "anchor": ("sampled", "anchor"),
    "pair": ("sampled", "pair"),
    "reweighted": ("reweighted", "-"),
}
LOSS_CASES = tuple(_LOSS_CASES)
PEERS = ("none", "torch")

# The benchmark's own flag set: a private `FlagValues`, so that `run()` can parse argv
# again and again in one process (tests, notebooks) whatever else defined absl flags.
_FLAGS = flags.FlagValues()
_d = functools.partial
_enum = _d(flags.DEFINE_enum, flag_values=_FLAGS)
_int = _d(flags.DEFINE_integer, flag_values=_FLAGS)
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
    "beta", 10.0, "β of the exponential hardening.", lower_bound=0.0, flag_values=_FLAGS
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
    flag_values=_FLAGS,
)
flags.DEFINE_string(
    "profile_dir",
    "",
    "mode=step: write a jax.profiler trace of three steps here.",
    flag_values=_FLAGS,
)
flags.DEFINE_list("loss_n", ["128", "512", "2048"], "mode=loss: batch sizes N.", flag_values=_FLAGS)
flags.DEFINE_list("loss_k", ["64", "256"], "mode=loss: negatives k.", flag_values=_FLAGS)
flags.DEFINE_multi_enum(
    "loss_cases",
    list(LOSS_CASES),
    LOSS_CASES,
    "mode=loss: the estimators timed: sampled with one draw per anchor or per pair "
    "(O(N² k): about a minute a call at N = 2048 on a small CPU), and reweighted.",
    flag_values=_FLAGS,
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
    flag_values=_FLAGS,
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
    flag_values=_FLAGS,
)
del _d, _enum, _int

# Losses and models the PyTorch twin computes (hncl_jax.torch_peer).
_PEER_LOSSES = torch_peer.SETTINGS


class BenchmarkError(ValueError):
    """A benchmark option that cannot work; raised before anything is compiled."""


# --------------------------------------------------------------------------- options
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


def options_from_flags(fv: flags.FlagValues = _FLAGS) -> ml_collections.ConfigDict:
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
    torch = torch_peer.import_torch()
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


# --------------------------------------------------------------------------- helpers
def _device_info() -> dict[str, Any]:
    d = jax.devices()[0]
    return {"device": f"{d.platform}:{d.device_kind}", "jax_version": jax.__version__}


def machine_info() -> dict[str, Any]:
    """The conditions of a measurement: CPU, cores, memory, load, allocator tuning."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": None if mem is None else round(mem, 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def _peak_memory_gib() -> float:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**30
    # CPU: the process's peak resident set (KiB on Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _time(fn: Callable[[], Any], *, warmup: int, steps: int) -> tuple[float, list[float]]:
    """Returns (seconds of the first call = compile + run, list of timed seconds)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    for _ in range(warmup):
        jax.block_until_ready(fn())
    return first, _timed(fn, steps)


def _timed(fn: Callable[[], Any], steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def _torch_timed(fn: Callable[[], Any], steps: int) -> list[float]:
    # PyTorch's CPU kernels are synchronous; `.item()` closes the step all the same.
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        float(fn())
        times.append(time.perf_counter() - t0)
    return times


class _Sink:
    """Prints JSON lines and appends them, with the run's context, to `--out`."""

    def __init__(self, out: str, argv: Sequence[str]):
        self.out = out
        argv = [a for a in argv if not a.startswith("--out=")]
        self.context = {
            "command": shlex.join(["python", "-m", "hncl_jax.benchmark", *argv]),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ"),
            "machine": machine_info(),
        }

    def emit(self, record: dict[str, Any]) -> dict[str, Any]:
        record = {**record, **_device_info()}
        print(json.dumps(record), flush=True)
        if "ratio_eager" in record:
            print(
                f"# {record['mode']} {record.get('model', record.get('estimator'))}: JAX "
                f"{record.get('step_ms', record.get('ms', 0)):.3g} ms, PyTorch eager "
                f"{record['torch_eager_ms']:.3g} ms (JAX/PyTorch {record['ratio_eager']:.2f}), "
                f"compiled {record.get('torch_compile_ms') or float('nan'):.3g} ms (ratio "
                f"{record.get('ratio_compile') or float('nan'):.2f}); parameters "
                f"{record.get('params_jax', '-')} / {record.get('params_torch', '-')}",
                file=sys.stderr,
                flush=True,
            )
        if self.out:
            os.makedirs(os.path.dirname(os.path.abspath(self.out)), exist_ok=True)
            with open(self.out, "a") as fh:
                fh.write(json.dumps({"kind": "benchmark", **record, **self.context}) + "\n")
        return record


def _ratios(jax_s: Sequence[float], peer_s: Sequence[float]) -> float:
    return statistics.median(a / b for a, b in zip(jax_s, peer_s, strict=True))


def _check_same_loss(what: str, jax_loss: float, torch_loss: float) -> None:
    if not np.isclose(jax_loss, torch_loss, rtol=1e-4, atol=1e-5):
        raise RuntimeError(
            f"{what}: JAX loss {jax_loss!r} and PyTorch loss {torch_loss!r} differ on the same "
            "input and parameters; the two sides do not compute the same thing, so their "
            "times are not comparable."
        )


# --------------------------------------------------------------------------- trainer
def make_bench_config(
    *,
    model: str,
    batch: int,
    loss: str,
    k: int,
    beta: float,
    estimator: str,
    draw: str,
    dtype: str,
    positives: str,
    embed_dim: int,
    steps_per_dispatch: int,
) -> ml_collections.ConfigDict:
    """The trainer config of a benchmark run (the fields `train.make_step_fn` reads)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.model = model
    c.model_kwargs = ml_collections.ConfigDict()
    c.embed_dim = embed_dim
    c.normalization = "unit_ball"
    c.dtype = dtype
    c.positives = positives
    c.views = "simclr"
    c.noise_std = 0.1
    c.batch_size = batch
    c.num_epochs = 1
    c.steps_per_dispatch = steps_per_dispatch
    c.loss = ml_collections.ConfigDict(
        dict(
            name=loss,
            psi="infonce",
            alpha=1.0,
            hardening="exponential",
            beta=beta,
            epsilon=3.0,
            k=k,
            estimator=estimator,
            draw=draw,
            exclude_anchor=False,
            temperature=0.5,
        )
    )
    c.clop = ml_collections.ConfigDict(dict(weight=0.0, prototypes="orthonormal"))
    c.optimizer = ml_collections.ConfigDict(
        dict(
            name="adam",
            learning_rate=1e-3,
            weight_decay=0.0,
            momentum=0.9,
            schedule="constant",
            warmup_epochs=0,
            scale_lr_by_batch=False,
        )
    )
    return c


def _torch_side(o, state, images: np.ndarray, labels: np.ndarray, embed_dim: int, jax_loss):
    """PyTorch twins (eager, compiled) loaded with the JAX state's initial parameters.

    Checks the twin's parameter count and its loss on the first batch against JAX's.
    Returns (steps by variant name, torch parameter count, torch loss, torch module).
    """
    torch = torch_peer.import_torch()
    torch.manual_seed(0)
    loss_kwargs = dict(setting=o.loss, beta=o.beta, estimator="reweighted")
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2)))
    y = torch.from_numpy(np.asarray(labels).astype(np.int64))
    steps, count, value = {}, None, None
    variants = ("eager", "compile") if o.torch_compile else ("eager",)
    for variant in variants:
        twin = torch_peer.create_model(
            o.model, embed_dim=embed_dim, in_channels=o.channels, **_model_options(o)
        )
        torch_peer.load_flax(twin, state.params)
        count = torch_peer.num_params(twin)
        if variant == "eager":
            twin.train()
            xb = x[: o.batch].float() / 255 if x.dtype == torch.uint8 else x[: o.batch]
            with torch.no_grad():
                f = twin(xb)
                value = float(
                    torch_peer.contrastive_loss(
                        torch_peer.normalize_unit_ball(f), y[: o.batch], **loss_kwargs
                    )
                )
        steps[variant] = torch_peer.make_train_step(
            twin, loss_kwargs=loss_kwargs, compile=variant == "compile"
        )
    _check_same_loss(f"{o.mode} {o.model}", jax_loss, value)
    return steps, count, value, (x, y)


def _model_options(o: ml_collections.ConfigDict) -> dict[str, int]:
    """The model options the flags set (`--depth`), as for `models.create_model`."""
    return {"depth": o.depth} if o.depth else {}


def _bench_inputs(o: ml_collections.ConfigDict, shape: tuple, num_classes: int):
    """Random host images and labels: one float batch (step mode) or a uint8 data set."""
    rng = np.random.default_rng(0)
    if o.mode == "step":
        # A fixed device-resident batch: the step alone, no sampling or augmentation.
        n = o.batch
        host_images = rng.random((n, *shape), np.float32)
    else:
        n = o.dataset_size
        host_images = rng.integers(0, 256, (n, *shape), np.uint8)
    host_labels = rng.integers(0, num_classes, n).astype(np.int32)
    return host_images, host_labels


def _torch_peer_setup(o, state, host_images, host_labels, embed_dim: int, record: dict):
    """The PyTorch twin of the step, checked against JAX's first loss; None without a peer.

    Adds the peer's parameter count, both losses and torch's version to `record`.
    """
    if o.peer != "torch":
        return None
    # The JAX loss of the first batch at the initial parameters, BatchNorm in training
    # mode, as the step computes it (the reweighted estimator needs no key).
    first_x = jnp.asarray(host_images[: o.batch])
    if first_x.dtype == jnp.uint8:
        first_x = first_x.astype(jnp.float32) / 255
    (_, f), _ = state.apply_fn(
        {"params": state.params, "batch_stats": state.batch_stats},
        first_x,
        train=True,
        mutable=["batch_stats"],
    )
    jax_loss = float(
        losses.contrastive_loss(
            geometry.normalize(f, "unit_ball"),
            jnp.asarray(host_labels[: o.batch]),
            setting=o.loss,
            beta=o.beta,
            estimator="reweighted",
        )
    )
    peer_steps, count, value, (tx, ty) = _torch_side(
        o, state, host_images, host_labels, embed_dim, jax_loss
    )
    if count != record["params_jax"]:
        raise RuntimeError(f"parameter counts differ: JAX {record['params_jax']}, torch {count}")
    torch = torch_peer.import_torch()
    record.update(
        peer="torch",
        params_torch=count,
        loss_jax=jax_loss,
        loss_torch=value,
        torch_version=torch.__version__,
        torch_threads=torch.get_num_threads(),
    )
    return (peer_steps, tx, ty)


def bench_train(o: ml_collections.ConfigDict, sink: _Sink) -> dict[str, Any]:
    """Modes (a) `step` and (b) `epoch`: the trainer's own jitted step."""
    from hncl_jax import train

    num_classes = o.num_classes
    embed_dim = o.embed_dim if o.embed_dim > 0 else num_classes - 1
    c = make_bench_config(
        model=o.model,
        batch=o.batch,
        loss=o.loss,
        k=o.k,
        beta=o.beta,
        estimator=o.estimator,
        draw=o.draw,
        dtype=o.dtype,
        positives=o.positives,
        embed_dim=embed_dim,
        steps_per_dispatch=o.steps_per_dispatch,
    )
    c.model_kwargs.update(_model_options(o))
    shape = (o.image_size, o.image_size, o.channels)
    host_images, host_labels = _bench_inputs(o, shape, num_classes)
    n = len(host_labels)
    images, labels = jnp.asarray(host_images), jnp.asarray(host_labels)
    steps_per_epoch = n // o.batch
    batch_fn = None  # epoch mode: the trainer's own (`train.make_batch_fn`)
    if o.mode == "step":

        def batch_fn(step, images, labels, visible, key):
            return images, labels, labels, visible

    k_dispatch = o.steps_per_dispatch
    objective = None
    if o.trivial_loss:
        # The model's forward, backward and update alone: step time minus this is the
        # contrastive loss's share.
        def objective(z, f, labels, positive_ids, visible, key, prototypes):
            return jnp.mean(jnp.square(z)), {}

    # The trainer's wiring (model, schedule, optimizer, state, step), on one device.
    built = train.build(
        c,
        num_classes,
        batch_size=o.batch,
        steps_per_epoch=steps_per_epoch,
        sharded=False,
        batch_fn=batch_fn,
        objective=objective,
        steps_per_dispatch=k_dispatch,
    )
    state = built.init_state(jnp.zeros((2, *shape), jnp.float32))
    # Committed like the step's outputs, so the second call reuses the first compile.
    state = jax.device_put(state, jax.devices()[0])

    record = {
        "mode": o.mode,
        "model": o.model,
        **_model_options(o),
        "batch": o.batch,
        "image_shape": list(shape),
        "loss": o.loss,
        "k": o.k,
        "beta": o.beta,
        "estimator": o.estimator,
        "draw": o.draw,
        "dtype": o.dtype,
        "positives": o.positives,
        "steps_per_dispatch": k_dispatch,
        "trivial_loss": bool(o.trivial_loss),
        "params_jax": models.num_params(state.params),
    }
    peer = _torch_peer_setup(o, state, host_images, host_labels, embed_dim, record)
    step_fn = built.step_fn
    data = (images, labels, labels)
    holder = {"state": state, "perm": None}
    if o.mode == "epoch":
        # As the trainer: the epoch's permutation is drawn once per epoch, outside the step.
        permute = jax.jit(functools.partial(train.epoch_permutation, c.seed, n=n))
        holder["permute"] = permute
        holder["perm"] = permute(0)

    def one():
        extra = () if holder["perm"] is None else (holder["perm"],)
        holder["state"], metrics = step_fn(holder["state"], *data, *extra)
        return metrics["loss"]

    views = 2 if o.positives == "views" else 1
    flops_per_image = 3 * models.model_flops(o.model, shape, embed_dim, **_model_options(o))
    if o.mode == "step":
        first, times = _time(one, warmup=o.warmup, steps=o.steps)
        if o.profile_dir:
            # A trace of a few steps for TensorBoard's profiler / Perfetto.
            with jax.profiler.trace(o.profile_dir):
                for _ in range(3):
                    jax.block_until_ready(one())
        step_s = statistics.median(times) / k_dispatch
        record.update(compile_s=first - step_s * k_dispatch)
        if peer is not None:
            step_s = _interleave_steps(o, one, times, peer, record)
        record.update(step_ms=1e3 * step_s)
    else:
        step_s = _bench_epochs(o, one, holder, step_fn, steps_per_epoch, peer, record)
    ips = o.batch * views / step_s
    record.update(
        images_per_sec=ips,
        tflops=ips * flops_per_image / 1e12,
        peak_memory_gib=_peak_memory_gib(),
    )
    return sink.emit(record)


def _interleave_steps(o, one, jax_times, peer, record) -> float:
    """Times JAX and the PyTorch variants in turn, `repeats` times; fills `record`."""
    steps, x, y = peer
    xb, yb = x[: o.batch], y[: o.batch]
    fns = {name: functools.partial(fn, xb, yb) for name, fn in steps.items()}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        for _ in range(1 + o.warmup):
            float(fn())
        record[f"torch_{name}_first_s"] = time.perf_counter() - t0
    per = {"jax": [], **{name: [] for name in fns}}
    for _ in range(o.repeats):
        per["jax"].append(statistics.median(_timed(one, o.steps)))
        for name, fn in fns.items():
            per[name].append(statistics.median(_torch_timed(fn, o.steps)))
    for name in fns:
        record[f"torch_{name}_ms"] = 1e3 * statistics.median(per[name])
        record[f"ratio_{name}"] = _ratios(per["jax"], per[name])
    record["repeats"] = o.repeats
    return statistics.median(per["jax"])


def _bench_epochs(o, one, holder, step_fn, steps_per_epoch, peer, record) -> float:
    """Mode (b): whole epochs, JAX and (with a peer) PyTorch in turn; fills `record`."""
    k_dispatch = o.steps_per_dispatch
    dispatches = steps_per_epoch // k_dispatch
    first, _ = _time(one, warmup=0, steps=0)

    def jax_epoch(e):
        t0 = time.perf_counter()
        holder["perm"] = holder["permute"](e)
        for _ in range(dispatches):
            out = one()
        jax.block_until_ready(out)
        return time.perf_counter() - t0

    torch_epochs = {}
    if peer is not None:
        steps, x, y = peer
        torch = torch_peer.import_torch()
        n = y.shape[0]

        def make_epoch(step):
            def epoch(e):
                # The trainer's sampling: one permutation per epoch, consecutive slices.
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(e))
                t0 = time.perf_counter()
                for s in range(steps_per_epoch):
                    idx = perm[s * o.batch : (s + 1) * o.batch]
                    loss = step(x[idx].float() / 255, y[idx])
                float(loss)
                return time.perf_counter() - t0

            return epoch

        torch_epochs = {name: make_epoch(step) for name, step in steps.items()}
        for name, step in steps.items():
            t0 = time.perf_counter()
            float(step(x[: o.batch].float() / 255, y[: o.batch]))
            record[f"torch_{name}_first_s"] = time.perf_counter() - t0
    per = {"jax": [], **{name: [] for name in torch_epochs}}
    for e in range(o.epochs):
        per["jax"].append(jax_epoch(e))
        for name, epoch in torch_epochs.items():
            per[name].append(epoch(e))
    epoch_s = statistics.median(per["jax"])
    step_s = epoch_s / (dispatches * k_dispatch)
    for name in torch_epochs:
        record[f"torch_{name}_epoch_s"] = statistics.median(per[name])
        record[f"torch_{name}_ms"] = 1e3 * statistics.median(per[name]) / steps_per_epoch
        record[f"ratio_{name}"] = _ratios(per["jax"], per[name])
    record.update(
        compile_s=first,
        epoch_s=epoch_s,
        step_ms=1e3 * step_s,
        dataset_size=o.dataset_size,
        epochs=o.epochs,
        recompiles=step_fn._cache_size() - 1,
    )
    return step_s


# --------------------------------------------------------------------------- loss
def naive_loss(z: np.ndarray, labels: np.ndarray, k: int, beta: float, rng) -> float:
    """The papers' public code in spirit: a Python loop over anchors, host sampling.

    Returns the HSCL InfoNCE loss with one draw of k tilted negatives per anchor.
    """
    zj = jnp.asarray(z)
    sims = np.asarray(zj @ zj.T)
    total, count = 0.0, 0
    for i in range(len(z)):
        cand = np.flatnonzero(labels != labels[i])
        pos = np.flatnonzero(labels == labels[i])
        logits = beta * sims[i, cand]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        neg = rng.choice(cand, size=k, p=p)
        s_neg = jnp.asarray(sims[i, neg])
        for j in pos:
            total += float(jnp.log1p(jnp.mean(jnp.exp(s_neg - sims[i, j]))))
            count += 1
    return total / count


def _loss_peer(o, z, labels, key, k, estimator, jax_value, fn, record):
    """PyTorch's loss + gradient against JAX's `fn`, checked equal, timed interleaved."""
    torch = torch_peer.import_torch()
    zt = torch.from_numpy(np.array(z))
    yt = torch.from_numpy(np.asarray(labels).astype(np.int64))
    kw = dict(setting=o.loss, beta=o.beta, estimator=estimator, k=k)
    idx = None
    if estimator == "sampled":
        # The JAX loss's own draw (same key), so the two values must agree exactly.
        s = jnp.matmul(z, z.T, precision=jax.lax.Precision.HIGHEST)
        hardening = "none" if o.loss == "scl" else "exponential"
        idx, _ = hard.sample_negatives(
            key, s, labels[:, None] != labels[None, :], k, hardening=hardening, beta=o.beta
        )
        idx = torch.from_numpy(np.asarray(idx).astype(np.int64))
    value = float(torch_peer.contrastive_loss(zt, yt, idx=idx, **kw))
    _check_same_loss(f"loss N={z.shape[0]} k={k} {estimator}", jax_value, value)
    gen = torch.Generator().manual_seed(0)
    variants = ("eager", "compile") if o.torch_compile else ("eager",)
    fns = {
        v: functools.partial(
            torch_peer.make_loss_grad(loss_kwargs={**kw, "generator": gen}, compile=v == "compile"),
            zt,
            yt,
        )
        for v in variants
    }
    for v, f in fns.items():
        t0 = time.perf_counter()
        for _ in range(3):
            f()
        record[f"torch_{v}_first_s"] = time.perf_counter() - t0
    per = {"jax": [], **{v: [] for v in fns}}
    for _ in range(o.repeats):
        per["jax"].append(statistics.median(_timed(fn, o.steps)))
        for v, f in fns.items():
            per[v].append(statistics.median(_torch_timed(lambda f=f: f()[0], o.steps)))
    for v in fns:
        record[f"torch_{v}_ms"] = 1e3 * statistics.median(per[v])
        record[f"ratio_{v}"] = _ratios(per["jax"], per[v])
    record.update(peer="torch", loss_jax=jax_value, loss_torch=value, repeats=o.repeats)
    record["torch_version"] = torch.__version__
    record["torch_threads"] = torch.get_num_threads()
    return 1e3 * statistics.median(per["jax"])


def bench_loss(o: ml_collections.ConfigDict, sink: _Sink) -> list[dict[str, Any]]:
    """Mode (c): loss + gradient w.r.t. z, one jitted call, over N, k, estimators."""
    out = []
    d = o.loss_dim
    for n in o.loss_n:
        rng = np.random.default_rng(0)
        f = rng.normal(size=(n, d)).astype(np.float32)
        z = geometry.normalize(jnp.asarray(f), "unit_ball")
        labels = jnp.asarray(rng.integers(0, o.num_classes, n).astype(np.int32))
        for k in o.loss_k:
            for estimator, draw in (_LOSS_CASES[c] for c in LOSS_CASES if c in o.loss_cases):
                fn = jax.jit(
                    jax.value_and_grad(
                        functools.partial(
                            losses.contrastive_loss,
                            setting=o.loss,
                            beta=o.beta,
                            k=k,
                            estimator=estimator,
                            draw=draw if draw != "-" else "anchor",
                        )
                    )
                )
                key = jax.random.key(0)
                call = functools.partial(fn, z, labels, key)
                first, times = _time(call, warmup=2, steps=o.steps)
                t = statistics.median(times)
                record = {
                    "mode": "loss",
                    "loss": o.loss,
                    "n": n,
                    "k": k,
                    "dim": d,
                    "estimator": estimator,
                    "draw": draw,
                    "compile_s": first - t,
                }
                if o.peer == "torch" and draw != "pair":
                    jax_value = float(call()[0])
                    t = 1e-3 * _loss_peer(o, z, labels, key, k, estimator, jax_value, call, record)
                record["ms"] = 1e3 * t
                out.append(sink.emit(record))
            if n <= o.naive_max_n:
                t0 = time.perf_counter()
                naive_loss(np.asarray(z), np.asarray(labels), k, o.beta, rng)
                out.append(
                    sink.emit(
                        {
                            "mode": "loss",
                            "loss": o.loss,
                            "n": n,
                            "k": k,
                            "dim": d,
                            "estimator": "naive_loop",
                            "draw": "anchor",
                            "ms": 1e3 * (time.perf_counter() - t0),
                        }
                    )
                )
    return out


# --------------------------------------------------------------------------- entry
def _reset_flags() -> None:
    for name in list(_FLAGS):
        _FLAGS[name].unparse()


def run(argv: Sequence[str]) -> list[dict[str, Any]]:
    """Runs the benchmark for flags `argv` (without the program name).

    Args:
      argv: e.g. `["--mode=step", "--model=tiny_cnn", "--batch=32"]`; unspecified flags
        take their defaults (also when `run` was called before in this process).

    Returns:
      The printed records (dicts).

    Raises:
      flags.Error: for an unknown flag or a bad value (e.g. `--loss=hsc`).
      BenchmarkError: for options that cannot work together.
    """
    _reset_flags()
    _FLAGS(["hncl_jax.benchmark", *argv])
    return _run_parsed(list(argv))


def _run_parsed(argv: list[str]) -> list[dict[str, Any]]:
    o = options_from_flags(_FLAGS)
    sink = _Sink(o.out, argv)
    if o.mode == "loss":
        return bench_loss(o, sink)
    return [bench_train(o, sink)]


def _parse(argv: list[str]) -> list[str]:
    """absl `flags_parser`: the benchmark's flags, then absl's own (--help, logging)."""
    try:
        rest = _FLAGS(argv, known_only=True)
    except flags.Error as e:
        sys.exit(f"FATAL Flags parsing error: {e}\nPass --helpfull to see all flags.")
    if any(a in ("--help", "-h", "--helpfull", "-?") for a in rest[1:]):
        print(__doc__ + "\nFlags:\n" + _FLAGS.get_help(), file=sys.stdout)
        sys.exit(0)
    return flags.FLAGS(rest)


def main(argv: list[str]) -> None:
    """absl entry point (`python -m hncl_jax.benchmark ...`)."""
    if len(argv) > 1:
        raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
    runtime.quiet_logs()
    try:
        _run_parsed(sys.argv[1:])
    except BenchmarkError as e:
        raise app.UsageError(str(e)) from None


if __name__ == "__main__":
    runtime.tune_process()
    app.run(main, flags_parser=_parse)
