"""Mode (c) of the benchmark: the loss and its gradient w.r.t. z alone, one jitted call,
over N, k and the estimators, against a naive per-anchor loop with host-side sampling
(`naive_loss`, the papers' code in spirit) and, under `--peer=torch`, the PyTorch twin."""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hncl_jax import geometry, losses
from hncl_jax.benchmark.options import LOSS_CASE_ESTIMATORS, LOSS_CASES
from hncl_jax.benchmark.peer import time_loss_peer
from hncl_jax.benchmark.timing import Sink, first_and_timed


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


def bench_loss(o: ml_collections.ConfigDict, sink: Sink) -> list[dict[str, Any]]:
    """Mode (c): loss + gradient w.r.t. z, one jitted call, over N, k, estimators."""
    out = []
    d = o.loss_dim
    for n in o.loss_n:
        rng = np.random.default_rng(0)
        f = rng.normal(size=(n, d)).astype(np.float32)
        z = geometry.normalize(jnp.asarray(f), "unit_ball")
        labels = jnp.asarray(rng.integers(0, o.num_classes, n).astype(np.int32))
        for k in o.loss_k:
            for estimator, draw in (
                LOSS_CASE_ESTIMATORS[c] for c in LOSS_CASES if c in o.loss_cases
            ):
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
                first, times = first_and_timed(call, warmup=2, steps=o.steps)
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
                    t = 1e-3 * time_loss_peer(
                        o, z, labels, key, k, estimator, jax_value, call, record
                    )
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
