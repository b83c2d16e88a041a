"""The PyTorch side of `--peer=torch`: the twins (`hncl_jax.benchmark.torch_peer`) of the
train step, loaded with the JAX state's initial parameters (`step_peer`), and of the loss
and its gradient (`time_loss_peer`), each checked to compute the JAX side's loss on the
same input before anything is timed."""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from hncl_jax import geometry, losses
from hncl_jax import hardening as hard
from hncl_jax.benchmark import torch_peer
from hncl_jax.benchmark.options import model_options
from hncl_jax.benchmark.timing import check_same_loss, ratios, timed, torch_timed


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
            o.model, embed_dim=embed_dim, in_channels=o.channels, **model_options(o)
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
    check_same_loss(f"{o.mode} {o.model}", jax_loss, value)
    return steps, count, value, (x, y)


def step_peer(o, state, host_images, host_labels, embed_dim: int, record: dict):
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


def time_loss_peer(o, z, labels, key, k, estimator, jax_value, fn, record):
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
    check_same_loss(f"loss N={z.shape[0]} k={k} {estimator}", jax_value, value)
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
        per["jax"].append(statistics.median(timed(fn, o.steps)))
        for v, f in fns.items():
            per[v].append(statistics.median(torch_timed(lambda f=f: f()[0], o.steps)))
    for v in fns:
        record[f"torch_{v}_ms"] = 1e3 * statistics.median(per[v])
        record[f"ratio_{v}"] = ratios(per["jax"], per[v])
    record.update(peer="torch", loss_jax=jax_value, loss_torch=value, repeats=o.repeats)
    record["torch_version"] = torch.__version__
    record["torch_threads"] = torch.get_num_threads()
    return 1e3 * statistics.median(per["jax"])
