"""Throughput benchmarks: the train step, a full epoch, and the loss kernel alone.

Prints one JSON line per measurement (images/s are medians of timed dispatches after
warm-up, each closed by `block_until_ready`):

    # (a) the jitted train step on device-resident synthetic tensors
    python -m hncl_jax.benchmark --mode=step --model=resnet50 --batch=512 --dtype=bfloat16
    # (b) a full epoch from a device-resident CIFAR-shaped uint8 dataset (50,000 images),
    #     batch sampling, two SimCLR views and augmentation included
    python -m hncl_jax.benchmark --mode=epoch --model=resnet50 --batch=512 --positives=views
    # (c) the loss alone (loss + gradient w.r.t. z) over N, k and the estimators,
    #     against a naive per-anchor loop with host-side sampling (the papers' code)
    python -m hncl_jax.benchmark --mode=loss

Fields: `images_per_sec`, `step_ms`, `compile_s`, `peak_memory_gib` (device allocator on
GPU/TPU, the process's peak RSS on CPU), `tflops` (achieved, from the analytic FLOP
count of `models.model_flops` × 3 for a train step), `device`, `jax_version`.

The benchmark needs no TFDS, ml_collections or dm-pix: it builds its config in place.
"""

from __future__ import annotations

import functools
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hncl_jax import geometry, losses, models


def _device_info() -> dict[str, Any]:
    d = jax.devices()[0]
    return {"device": f"{d.platform}:{d.device_kind}", "jax_version": jax.__version__}


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
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return first, times


def _emit(record: dict[str, Any]) -> dict[str, Any]:
    record = {**record, **_device_info()}
    print(json.dumps(record), flush=True)
    return record


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
):
    """A trainer config for the benchmark (ml_collections imported lazily)."""
    import ml_collections

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


def bench_train(args) -> dict[str, Any]:
    """Modes (a) `step` and (b) `epoch`: the trainer's own jitted step."""
    from hncl_jax import train

    num_classes = args.num_classes
    embed_dim = args.embed_dim if args.embed_dim > 0 else num_classes - 1
    c = make_bench_config(
        model=args.model,
        batch=args.batch,
        loss=args.loss,
        k=args.k,
        beta=args.beta,
        estimator=args.estimator,
        draw=args.draw,
        dtype=args.dtype,
        positives=args.positives,
        embed_dim=embed_dim,
        steps_per_dispatch=args.steps_per_dispatch,
    )
    rng = np.random.default_rng(0)
    shape = (args.image_size, args.image_size, 3)
    if args.mode == "step":
        # A fixed device-resident batch: the step alone, no sampling or augmentation.
        n = args.batch
        images = jnp.asarray(rng.random((n, *shape), np.float32))
    else:
        n = args.dataset_size
        images = jnp.asarray(rng.integers(0, 256, (n, *shape), np.uint8))
    labels = jnp.asarray(rng.integers(0, num_classes, n).astype(np.int32))
    steps_per_epoch = n // args.batch
    model = models.create_model(
        args.model,
        embed_dim=embed_dim,
        dtype=jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32,
    )
    sample = jnp.zeros((2, *shape), jnp.float32)
    state = train.create_train_state(c, model, sample, num_classes, steps_per_epoch)
    # Committed like the step's outputs, so the second call reuses the first compile.
    state = jax.device_put(state, jax.devices()[0])
    if args.mode == "step":

        def batch_fn(step, images, labels, visible, key):
            return images, labels, labels, visible

    else:
        batch_fn = functools.partial(
            train.make_batch,
            batch_size=args.batch,
            steps_per_epoch=steps_per_epoch,
            positives=args.positives,
            views="simclr",
            view_kwargs={},
        )
    k_dispatch = max(args.steps_per_dispatch, 1)
    objective = None
    if args.trivial_loss:
        # The model's forward, backward and update alone: step time minus this is the
        # contrastive loss's share.
        def objective(z, f, labels, positive_ids, visible, key, prototypes):
            return jnp.mean(jnp.square(z)), {}

    step_fn = train.make_step_fn(
        c,
        num_classes,
        batch_fn=batch_fn,
        batch_sharding=None,
        replicated=None,
        steps_per_dispatch=k_dispatch,
        objective=objective,
    )
    data = (images, labels, labels)
    holder = {"state": state}

    def one():
        holder["state"], metrics = step_fn(holder["state"], *data)
        return metrics["loss"]

    views = 2 if args.positives == "views" else 1
    flops_per_image = 3 * models.model_flops(args.model, shape, embed_dim)
    record = {
        "mode": args.mode,
        "model": args.model,
        "batch": args.batch,
        "loss": args.loss,
        "k": args.k,
        "beta": args.beta,
        "estimator": args.estimator,
        "draw": args.draw,
        "dtype": args.dtype,
        "positives": args.positives,
        "steps_per_dispatch": k_dispatch,
        "trivial_loss": bool(args.trivial_loss),
    }
    if args.mode == "step":
        first, times = _time(one, warmup=args.warmup, steps=args.steps)
        if args.profile_dir:
            # A trace of a few steps for TensorBoard's profiler / Perfetto.
            with jax.profiler.trace(args.profile_dir):
                for _ in range(3):
                    jax.block_until_ready(one())
        step_s = statistics.median(times) / k_dispatch
        ips = args.batch * views / step_s
        record.update(compile_s=first - step_s * k_dispatch, step_ms=1e3 * step_s)
    else:
        dispatches = steps_per_epoch // k_dispatch
        first, _ = _time(one, warmup=0, steps=0)
        epoch_times = []
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            for _ in range(dispatches):
                out = one()
            jax.block_until_ready(out)
            epoch_times.append(time.perf_counter() - t0)
        epoch_s = statistics.median(epoch_times)
        step_s = epoch_s / (dispatches * k_dispatch)
        ips = args.batch * views / step_s
        record.update(
            compile_s=first,
            epoch_s=epoch_s,
            step_ms=1e3 * step_s,
            dataset_size=n,
            recompiles=step_fn._cache_size() - 1,
        )
    record.update(
        images_per_sec=ips,
        tflops=ips * flops_per_image / 1e12,
        peak_memory_gib=_peak_memory_gib(),
    )
    return _emit(record)


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


def bench_loss(args) -> list[dict[str, Any]]:
    """Mode (c): loss + gradient w.r.t. z, one jitted call, over N, k, estimators."""
    out = []
    d = args.loss_dim
    for n in args.loss_n:
        rng = np.random.default_rng(0)
        f = rng.normal(size=(n, d)).astype(np.float32)
        z = geometry.normalize(jnp.asarray(f), "unit_ball")
        labels = jnp.asarray(rng.integers(0, args.num_classes, n).astype(np.int32))
        for k in args.loss_k:
            for estimator, draw in (
                ("sampled", "anchor"),
                ("sampled", "pair"),
                ("reweighted", "-"),
            ):
                fn = jax.jit(
                    jax.value_and_grad(
                        functools.partial(
                            losses.contrastive_loss,
                            setting="hscl",
                            beta=args.beta,
                            k=k,
                            estimator=estimator,
                            draw=draw if draw != "-" else "anchor",
                        )
                    )
                )
                key = jax.random.key(0)
                first, times = _time(
                    lambda fn=fn, z=z, y=labels, key=key: fn(z, y, key),
                    warmup=2,
                    steps=args.steps,
                )
                t = statistics.median(times)
                out.append(
                    _emit(
                        {
                            "mode": "loss",
                            "n": n,
                            "k": k,
                            "dim": d,
                            "estimator": estimator,
                            "draw": draw,
                            "ms": 1e3 * t,
                            "compile_s": first - t,
                        }
                    )
                )
            if n <= args.naive_max_n:
                t0 = time.perf_counter()
                naive_loss(np.asarray(z), np.asarray(labels), k, args.beta, rng)
                out.append(
                    _emit(
                        {
                            "mode": "loss",
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


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("step", "epoch", "loss"), default="step")
    p.add_argument("--model", default="resnet50", choices=models.MODELS)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--loss", default="hscl")
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--beta", type=float, default=10.0)
    p.add_argument("--estimator", default="sampled")
    p.add_argument("--draw", default="anchor")
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    p.add_argument("--positives", default="labels", choices=("labels", "views"))
    p.add_argument("--num_classes", type=int, default=100)
    p.add_argument("--embed_dim", type=int, default=-1, help="-1: C - 1")
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--dataset_size", type=int, default=50_000, help="mode epoch")
    p.add_argument("--epochs", type=int, default=2, help="mode epoch: timed epochs")
    p.add_argument("--steps", type=int, default=20, help="timed dispatches")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps_per_dispatch", type=int, default=1)
    p.add_argument(
        "--trivial_loss",
        action="store_true",
        help="replace the loss by mean(z²) to measure the model's share of the step",
    )
    p.add_argument("--profile_dir", default="", help="write a jax.profiler trace here")
    p.add_argument("--loss_n", type=_ints, default=[128, 512, 2048])
    p.add_argument("--loss_k", type=_ints, default=[64, 256])
    p.add_argument("--loss_dim", type=int, default=128)
    p.add_argument("--naive_max_n", type=int, default=512)
    args = p.parse_args(argv)
    if args.mode == "loss":
        return bench_loss(args)
    return [bench_train(args)]


if __name__ == "__main__":
    main(sys.argv[1:])
