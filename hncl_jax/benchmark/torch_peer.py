"""PyTorch twins of the benchmarked models, loss and train step, for side-by-side timing.

`python -m hncl_jax.benchmark --peer=torch` builds the same network in PyTorch, copies the
JAX parameters into it (so both compute the same loss on the same input, which the
benchmark checks before timing) and times PyTorch eager and `torch.compile` interleaved
with the JAX runs. The twins reproduce the flax modules of `hncl_jax.models` exactly:
"SAME" padding (asymmetric (0, 1) for a stride-2 3×3 convolution on even inputs, where
torchvision pads (1, 1)), BatchNorm ε = 1e-5 with batch statistics in training, the
projection head `Linear(no bias) → BatchNorm → ReLU → Linear`, `unit_ball`
normalization, the HSCL/SCL loss (reweighted, or sampled per anchor with InfoNCE) and
Adam with optax's defaults.

torch is an optional dependency (`import_torch` says how to install it); this module
imports it at call time, so importing hncl_jax (or this module) never needs it.

Adding a model is one entry in `BUILDERS`: a function `(embed_dim, in_channels, **kw)`
returning a `Twin` whose layers are registered under their flax parameter paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hncl_jax.models import small_cnn_layers


def import_torch():
    """Imports torch, or raises an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "--peer=torch needs PyTorch (torch >= 2.1). On a CPU machine install the CPU-only "
            "wheel: pip install torch --index-url https://download.pytorch.org/whl/cpu ; with "
            "a GPU: pip install torch (in a checkout: pip install -e '.[bench]')."
        ) from e
    return torch


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(low, high) padding of XLA's "SAME" convolution along one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _modules():
    """The torch.nn classes, defined once torch is importable."""
    torch = import_torch()
    nn = torch.nn
    F = torch.nn.functional

    class SameConv(nn.Conv2d):
        """Bias-free convolution with XLA's "SAME" padding (flax's default)."""

        def forward(self, x):
            k, s = self.kernel_size[0], self.stride[0]
            (top, bottom), (left, right) = (
                _same_pads(x.shape[2], k, s),
                _same_pads(x.shape[3], k, s),
            )
            if top == bottom and left == right:
                return F.conv2d(x, self.weight, None, s, (top, left))
            return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, None, s)

    class Twin(nn.Module):
        """A module whose layers know their flax parameter paths (see `load_flax`)."""

        def __init__(self):
            super().__init__()
            self.links: list[tuple[tuple[str, ...], Any]] = []

        def conv(self, path, c_in, c_out, k, stride=1):
            layer = SameConv(c_in, c_out, k, stride, bias=False)
            self.links.append((tuple(path), layer))
            return layer

        def bn(self, path, c, dims=2):
            cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
            layer = cls(c, eps=1e-5, momentum=0.1)
            self.links.append((tuple(path), layer))
            return layer

        def dense(self, path, c_in, c_out, bias=True):
            layer = nn.Linear(c_in, c_out, bias=bias)
            self.links.append((tuple(path), layer))
            return layer

    class Head(nn.Module):
        def __init__(self, twin, prefix, c_in, hidden, embed_dim):
            super().__init__()
            p = (*prefix, "ProjectionHead_0")
            self.fc1 = twin.dense((*p, "dense_hidden"), c_in, hidden, bias=False)
            self.bn = twin.bn((*p, "BatchNorm_0"), hidden, dims=1)
            self.fc2 = twin.dense((*p, "dense_out"), hidden, embed_dim)

        def forward(self, h):
            return self.fc2(F.relu(self.bn(self.fc1(h))))

    class TinyCNN(Twin):
        def __init__(self, embed_dim, in_channels, width=8, head_hidden=32):
            super().__init__()
            self.c1 = self.conv(("Conv_0",), in_channels, width, 3)
            self.b1 = self.bn(("BatchNorm_0",), width)
            self.c2 = self.conv(("Conv_1",), width, 2 * width, 3, 2)
            self.b2 = self.bn(("BatchNorm_1",), 2 * width)
            self.head = Head(self, (), 2 * width, head_hidden, embed_dim)

        def forward(self, x):
            h = F.relu(self.b1(self.c1(x)))
            h = F.relu(self.b2(self.c2(h)))
            return self.head(h.mean(dim=(2, 3)))

    class BasicBlock(nn.Module):
        def __init__(self, twin, name, c_in, filters, stride):
            super().__init__()
            p = (name,)
            self.c1 = twin.conv((*p, "Conv_0"), c_in, filters, 3, stride)
            self.b1 = twin.bn((*p, "BatchNorm_0"), filters)
            self.c2 = twin.conv((*p, "Conv_1"), filters, filters, 3)
            self.b2 = twin.bn((*p, "BatchNorm_1"), filters)
            self.proj = None
            if stride != 1 or c_in != filters:
                self.proj = twin.conv((*p, "conv_proj"), c_in, filters, 1, stride)
                self.bproj = twin.bn((*p, "norm_proj"), filters)

        def forward(self, x):
            y = F.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            if self.proj is not None:
                x = self.bproj(self.proj(x))
            return F.relu(x + y)

    class ResNet18(Twin):
        def __init__(self, embed_dim, in_channels, num_filters=64, head_hidden=512):
            super().__init__()
            nf = num_filters
            self.c0 = self.conv(("conv_init",), in_channels, nf, 3)
            self.b0 = self.bn(("bn_init",), nf)
            blocks, c, n = [], nf, 0
            for i, num_blocks in enumerate((2, 2, 2, 2)):
                for j in range(num_blocks):
                    stride = 2 if i > 0 and j == 0 else 1
                    blocks.append(BasicBlock(self, f"BasicBlock_{n}", c, nf * 2**i, stride))
                    c, n = nf * 2**i, n + 1
            self.blocks = nn.Sequential(*blocks)
            self.head = Head(self, (), c, head_hidden, embed_dim)

        def forward(self, x):
            h = self.blocks(F.relu(self.b0(self.c0(x))))
            return self.head(h.mean(dim=(2, 3)))

    class SmallCNN(Twin):
        # models.SmallCNN: stages of `depth` 3×3 conv + BN + ReLU of widths (w, 2w, 4w),
        # 2×2 max-pools between the stages.
        def __init__(self, embed_dim, in_channels, width=32, depth=1, head_hidden=128):
            super().__init__()
            layers, c = [], in_channels
            for i, (mult, pool) in enumerate(small_cnn_layers(depth)):
                conv = self.conv((f"conv_{i}",), c, mult * width, 3)
                layers += [conv, self.bn((f"bn_{i}",), mult * width), nn.ReLU()]
                c = mult * width
                if pool:
                    # ceil_mode pads the high side with -inf, as XLA's "SAME" max-pool.
                    layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            self.body = nn.Sequential(*layers)
            self.head = Head(self, (), c, head_hidden, embed_dim)

        def forward(self, x):
            return self.head(self.body(x).mean(dim=(2, 3)))

    return {"Twin": Twin, "tiny_cnn": TinyCNN, "resnet18": ResNet18, "small_cnn": SmallCNN}


# One entry per model with a twin: name → (embed_dim, in_channels, **kw) -> Twin.
BUILDERS: dict[str, Callable[..., Any]] = {
    "tiny_cnn": lambda embed_dim, in_channels, **kw: _modules()["tiny_cnn"](
        embed_dim, in_channels, **kw
    ),
    "resnet18": lambda embed_dim, in_channels, **kw: _modules()["resnet18"](
        embed_dim, in_channels, **kw
    ),
    "small_cnn": lambda embed_dim, in_channels, **kw: _modules()["small_cnn"](
        embed_dim, in_channels, **kw
    ),
}
MODELS = tuple(BUILDERS)
SETTINGS = ("scl", "hscl")
ESTIMATORS = ("reweighted", "sampled")


def create_model(name: str, *, embed_dim: int, in_channels: int, **kw: Any):
    """The PyTorch twin of `models.create_model(name, ...)` (float32, NCHW input).

    Args:
      name: one of `MODELS`.
      embed_dim: the head's output dimension d.
      in_channels: channels of the input images.
      **kw: the model options of `models.create_model` (width, num_filters, head_hidden).

    Returns:
      A `torch.nn.Module` mapping (B, C, H, W) float32 images to f (B, d).

    Raises:
      ValueError: for a model without a twin.
    """
    if name not in BUILDERS:
        raise ValueError(
            f"model={name!r} has no PyTorch twin; --peer=torch supports {MODELS} "
            "(add one entry to hncl_jax.benchmark.torch_peer.BUILDERS for another)."
        )
    return BUILDERS[name](embed_dim, in_channels, **kw)


def _at(tree: Any, path: Sequence[str]) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def load_flax(module, params: Any, batch_stats: Any | None = None) -> None:
    """Copies flax parameters (and BatchNorm statistics) into a twin, in place.

    Conv kernels go HWIO → OIHW, dense kernels (in, out) → (out, in); BatchNorm scale and
    bias become weight and bias.

    Raises:
      ValueError: if a flax parameter has another shape than its twin's (the two models
        would not be the same architecture).
    """
    torch = import_torch()
    nn = torch.nn
    for path, layer in module.links:
        p = _at(params, path)
        with torch.no_grad():
            if isinstance(layer, nn.Conv2d):
                pairs = [(layer.weight, np.transpose(np.asarray(p["kernel"]), (3, 2, 0, 1)))]
            elif isinstance(layer, nn.Linear):
                pairs = [(layer.weight, np.asarray(p["kernel"]).T)]
                if layer.bias is not None:
                    pairs.append((layer.bias, np.asarray(p["bias"])))
            else:
                pairs = [
                    (layer.weight, np.asarray(p["scale"])),
                    (layer.bias, np.asarray(p["bias"])),
                ]
                if batch_stats is not None:
                    stats = _at(batch_stats, path)
                    pairs += [
                        (layer.running_mean, np.asarray(stats["mean"])),
                        (layer.running_var, np.asarray(stats["var"])),
                    ]
            for dst, src in pairs:
                if tuple(dst.shape) != src.shape:
                    raise ValueError(
                        f"flax parameter {'/'.join(path)} has shape {src.shape}, its PyTorch "
                        f"twin {tuple(dst.shape)}: the twin is not the same architecture."
                    )
                dst.copy_(torch.from_numpy(np.array(src, np.float32)))


def num_params(module) -> int:
    """Trainable parameters of a torch module."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def normalize_unit_ball(f):
    """`geometry.normalize(f, "unit_ball")`: f / max(‖f‖, 1)."""
    return f / f.norm(dim=-1, keepdim=True).clamp(min=1.0)


def contrastive_loss(
    z,
    labels,
    *,
    setting: str,
    beta: float,
    estimator: str,
    k: int = 256,
    positive_ids=None,
    self_positive: bool = True,
    idx=None,
    generator=None,
):
    """`losses.contrastive_loss` for SCL/HSCL with exponential hardening and InfoNCE.

    Args:
      z: normalized embeddings (N, d).
      labels: int (N,) labels (candidates are the other classes).
      setting: "scl" (β ignored) or "hscl".
      beta: β of the exponential hardening.
      estimator: "reweighted" (deterministic) or "sampled" (k draws per anchor).
      k: negatives per anchor of "sampled".
      positive_ids: int (N,) positive ids (default: labels).
      self_positive: whether an anchor is its own positive.
      idx: optional (N, k) int64 negatives to use instead of drawing (to check the
        sampled loss against the JAX one with the same draw).
      generator: `torch.Generator` for the draws.

    Returns:
      The scalar loss (anchor mean over positives, then over valid anchors).
    """
    torch = import_torch()
    F = torch.nn.functional
    n = z.shape[0]
    ids = labels if positive_ids is None else positive_ids
    positives = ids[:, None] == ids[None, :]
    if not self_positive:
        positives = positives & ~torch.eye(n, dtype=torch.bool, device=z.device)
    candidates = labels[:, None] != labels[None, :]
    has_cand = candidates.any(dim=-1, keepdim=True)
    s = z @ z.T
    b = 0.0 if setting == "scl" else beta
    logits = torch.where(candidates, b * s.detach(), -torch.inf)
    logits = torch.where(has_cand, logits, torch.zeros_like(logits))
    log_q = torch.log_softmax(logits, dim=-1)
    if estimator == "reweighted":
        lse = torch.logsumexp(torch.where(candidates, log_q + s, -torch.inf), dim=-1)
        a = torch.where(has_cand[:, 0], lse, torch.zeros_like(lse))
    else:
        if idx is None:
            idx = torch.multinomial(log_q.exp(), k, replacement=True, generator=generator)
        a = torch.logsumexp(torch.gather(s, 1, idx), dim=-1) - math.log(k)
    pair = F.softplus(a[:, None] - s)
    num_pos = positives.sum(dim=-1)
    valid = (num_pos > 0) & has_cand[:, 0]
    per_anchor = torch.where(positives, pair, torch.zeros_like(pair)).sum(-1) / num_pos.clamp(min=1)
    return torch.where(valid, per_anchor, torch.zeros_like(per_anchor)).sum() / valid.sum().clamp(
        min=1
    )


def make_train_step(module, *, loss_kwargs: dict, lr: float = 1e-3, compile: bool = False):
    """A PyTorch train step: forward, normalize, loss, backward, Adam (optax defaults).

    Args:
      module: the twin (put in training mode here).
      loss_kwargs: keyword arguments of `contrastive_loss` (setting, beta, estimator, k).
      lr: Adam's learning rate.
      compile: wrap the forward and loss in `torch.compile` (the backward is compiled
        with it by AOTAutograd; the optimizer update stays eager).

    Returns:
      `step(x, labels) -> loss tensor` (detached).
    """
    torch = import_torch()
    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def forward_loss(x, labels):
        z = normalize_unit_ball(module(x))
        return contrastive_loss(z, labels, **loss_kwargs)

    fn = torch.compile(forward_loss) if compile else forward_loss

    def step(x, labels):
        opt.zero_grad(set_to_none=True)
        loss = fn(x, labels)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def make_loss_grad(*, loss_kwargs: dict, compile: bool = False):
    """`(z, labels) -> (loss, dloss/dz)` in PyTorch, eager or `torch.compile`d."""
    torch = import_torch()

    def value(z, labels):
        return contrastive_loss(z, labels, **loss_kwargs)

    fn = torch.compile(value) if compile else value

    def value_and_grad(z, labels):
        z = z.detach().requires_grad_(True)
        loss = fn(z, labels)
        (g,) = torch.autograd.grad(loss, z)
        return loss.detach(), g

    return value_and_grad
