"""Modes (a) `step` and (b) `epoch` of the benchmark: the trainer's own jitted step
(`train.build`) on a benchmark config (`make_bench_config`), on a device-resident
synthetic batch or a whole uint8 data set, with the PyTorch twin timed in turn under
`--peer=torch`."""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hncl_jax import models, train
from hncl_jax.benchmark import torch_peer
from hncl_jax.benchmark.options import model_options
from hncl_jax.benchmark.peer import step_peer
from hncl_jax.benchmark.timing import (
    Sink,
    first_and_timed,
    peak_memory_gib,
    ratios,
    timed,
    torch_timed,
)


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


def _config(o: ml_collections.ConfigDict, embed_dim: int) -> ml_collections.ConfigDict:
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
    c.model_kwargs.update(model_options(o))
    return c


def _build(o: ml_collections.ConfigDict, c, num_classes: int, steps_per_epoch: int, shape):
    """The trainer's wiring (model, schedule, optimizer, state, step) on one device, and
    the initial state."""
    batch_fn = None  # epoch mode: the trainer's own (`train.make_batch_fn`)
    if o.mode == "step":

        def batch_fn(step, images, labels, visible, key):
            return images, labels, labels, visible

    objective = None
    if o.trivial_loss:
        # The model's forward, backward and update alone: step time minus this is the
        # contrastive loss's share.
        def objective(z, f, labels, positive_ids, visible, key, prototypes):
            return jnp.mean(jnp.square(z)), {}

    built = train.build(
        c,
        num_classes,
        batch_size=o.batch,
        steps_per_epoch=steps_per_epoch,
        sharded=False,
        batch_fn=batch_fn,
        objective=objective,
        steps_per_dispatch=o.steps_per_dispatch,
    )
    state = built.init_state(jnp.zeros((2, *shape), jnp.float32))
    # Committed like the step's outputs, so the second call reuses the first compile.
    return built, jax.device_put(state, jax.devices()[0])


def _record(o: ml_collections.ConfigDict, shape: tuple, state) -> dict[str, Any]:
    return {
        "mode": o.mode,
        "model": o.model,
        **model_options(o),
        "batch": o.batch,
        "image_shape": list(shape),
        "loss": o.loss,
        "k": o.k,
        "beta": o.beta,
        "estimator": o.estimator,
        "draw": o.draw,
        "dtype": o.dtype,
        "positives": o.positives,
        "steps_per_dispatch": o.steps_per_dispatch,
        "trivial_loss": bool(o.trivial_loss),
        "params_jax": models.num_params(state.params),
    }


def bench_train(o: ml_collections.ConfigDict, sink: Sink) -> dict[str, Any]:
    """Modes (a) `step` and (b) `epoch`: the trainer's own jitted step."""
    num_classes = o.num_classes
    embed_dim = o.embed_dim if o.embed_dim > 0 else num_classes - 1
    c = _config(o, embed_dim)
    shape = (o.image_size, o.image_size, o.channels)
    host_images, host_labels = _bench_inputs(o, shape, num_classes)
    n = len(host_labels)
    images, labels = jnp.asarray(host_images), jnp.asarray(host_labels)
    steps_per_epoch = n // o.batch
    built, state = _build(o, c, num_classes, steps_per_epoch, shape)
    record = _record(o, shape, state)
    peer = step_peer(o, state, host_images, host_labels, embed_dim, record)
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
    flops_per_image = 3 * models.model_flops(o.model, shape, embed_dim, **model_options(o))
    if o.mode == "step":
        step_s = _bench_steps(o, one, peer, record)
    else:
        step_s = _bench_epochs(o, one, holder, step_fn, steps_per_epoch, peer, record)
    ips = o.batch * views / step_s
    record.update(
        images_per_sec=ips,
        tflops=ips * flops_per_image / 1e12,
        peak_memory_gib=peak_memory_gib(),
    )
    return sink.emit(record)


def _bench_steps(o, one, peer, record) -> float:
    """Mode (a): timed dispatches of the step, JAX and (with a peer) PyTorch interleaved;
    fills `record`, returns the seconds per train step."""
    k_dispatch = o.steps_per_dispatch
    first, times = first_and_timed(one, warmup=o.warmup, steps=o.steps)
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
    return step_s


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
        per["jax"].append(statistics.median(timed(one, o.steps)))
        for name, fn in fns.items():
            per[name].append(statistics.median(torch_timed(fn, o.steps)))
    for name in fns:
        record[f"torch_{name}_ms"] = 1e3 * statistics.median(per[name])
        record[f"ratio_{name}"] = ratios(per["jax"], per[name])
    record["repeats"] = o.repeats
    return statistics.median(per["jax"])


def _bench_epochs(o, one, holder, step_fn, steps_per_epoch, peer, record) -> float:
    """Mode (b): whole epochs, JAX and (with a peer) PyTorch in turn; fills `record`."""
    k_dispatch = o.steps_per_dispatch
    dispatches = steps_per_epoch // k_dispatch
    first, _ = first_and_timed(one, warmup=0, steps=0)

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
        record[f"ratio_{name}"] = ratios(per["jax"], per[name])
    record.update(
        compile_s=first,
        epoch_s=epoch_s,
        step_ms=1e3 * step_s,
        dataset_size=o.dataset_size,
        epochs=o.epochs,
        recompiles=step_fn._cache_size() - 1,
    )
    return step_s
