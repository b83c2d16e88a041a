"""Encoders: ResNet-18/50 with the CIFAR stem, a small CNN for 8×8 to 32×32 images,
MLPs for vector data, tiny test models.

Every model maps a batch `x` to `(h, f)`: the backbone features `h` (B, H) and the
un-normalized embedding `f = head(h)` (B, embed_dim), both float32 whatever the compute
dtype. Feature normalization (docs/math.md §1) is the loss side's job, not the model's.

    model = create_model("resnet50", embed_dim=99, dtype=jnp.bfloat16)
    variables = model.init(key, x, train=False)            # {"params", "batch_stats"}
    (h, f), updates = model.apply(variables, x, train=True, mutable=["batch_stats"])

The ResNets follow the hard-negative papers' PyTorch code (torchvision ResNet with
`conv1` replaced by a 3×3 stride-1 convolution and the max-pool removed; stride on the
3×3 convolution of a bottleneck, as torchvision's "v1.5") and its projection head
`Linear(H, 512, bias=False) → BatchNorm → ReLU → Linear(512, d)`. BatchNorm uses
momentum 0.9 (PyTorch's 0.1) and ε = 1e-5; parameters are float32, compute is in `dtype`.

References:
  He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
  Chuang et al., "Debiased Contrastive Learning", NeurIPS 2020 (the CIFAR ResNet-50 and
  projection head the hard-negative code builds on, github.com/chingyaoc/DCL model.py).
  flax examples/imagenet/models.py (the linen ResNet layout used here).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hncl_jax import layers

MODELS = ("resnet18", "resnet50", "small_cnn", "mlp", "tiny_cnn", "tiny_mlp")
HEADS = ("default", "mlp", "linear", "identity")

ModuleDef = Any
Dtype = Any

# torchvision initialisations: Kaiming-normal (fan-out) convolutions, and
# U(±1/sqrt(fan_in)) linear kernels.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
_dense_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")

_RESNET_STAGES = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}


def _conv_layer(dtype: Dtype) -> ModuleDef:
    """Bias-free convolutions with torchvision's init; few-channel inputs (a 1- or
    3-channel image) run as im2col on a CPU (`layers.conv_general_dilated`)."""
    return functools.partial(
        nn.Conv,
        use_bias=False,
        dtype=dtype,
        kernel_init=_conv_init,
        conv_general_dilated=layers.conv_general_dilated,
    )


class BasicBlock(nn.Module):
    """ResNet-18/34 block: two 3×3 convolutions and a (projected) shortcut."""

    filters: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1
    zero_init_residual: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        last_scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
        y = self.conv(self.filters, (3, 3), (self.strides, self.strides))(x)
        y = nn.relu(self.norm()(y))
        y = self.conv(self.filters, (3, 3))(y)
        y = self.norm(scale_init=last_scale)(y)
        if x.shape != y.shape:
            x = self.conv(self.filters, (1, 1), (self.strides, self.strides), name="conv_proj")(x)
            x = self.norm(name="norm_proj")(x)
        return nn.relu(x + y)


class BottleneckBlock(nn.Module):
    """ResNet-50 block: 1×1 → 3×3 (strided) → 1×1 (×4 channels), projected shortcut."""

    filters: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1
    zero_init_residual: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        last_scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
        y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
        y = self.conv(self.filters, (3, 3), (self.strides, self.strides))(y)
        y = nn.relu(self.norm()(y))
        y = self.conv(self.filters * 4, (1, 1))(y)
        y = self.norm(scale_init=last_scale)(y)
        if x.shape != y.shape:
            x = self.conv(self.filters * 4, (1, 1), (self.strides, self.strides), name="conv_proj")(
                x
            )
            x = self.norm(name="norm_proj")(x)
        return nn.relu(x + y)


class ProjectionHead(nn.Module):
    """Maps backbone features to the embedding f.

    kind "mlp": Dense(hidden, no bias) → BatchNorm → ReLU → Dense(embed_dim) (the papers'
    code); "linear": one Dense(embed_dim); "identity": f = h (needs embed_dim == H).
    """

    embed_dim: int
    kind: str = "mlp"
    hidden: int = 512
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jnp.ndarray, train: bool) -> jnp.ndarray:
        dense = functools.partial(nn.Dense, dtype=self.dtype, kernel_init=_dense_init)
        if self.kind == "identity":
            if h.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"head='identity' needs embed_dim == backbone width {h.shape[-1]}, got "
                    f"embed_dim={self.embed_dim}; use head='linear' or 'mlp' to project."
                )
            return h
        if self.kind == "mlp":
            h = dense(self.hidden, use_bias=False, name="dense_hidden")(h)
            h = nn.BatchNorm(
                use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype
            )(h)
            h = nn.relu(h)
        return dense(self.embed_dim, name="dense_out")(h)


class ResNet(nn.Module):
    """ResNet with the CIFAR stem (3×3 stride-1 convolution, no max-pool) and a head.

    Attributes:
      stage_sizes: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
      block_cls: `BasicBlock` or `BottleneckBlock`.
      embed_dim: output dimension d of the head.
      num_filters: width of the stem and first stage (64 in the papers; small in tests).
      head: "mlp", "linear" or "identity" (see `ProjectionHead`).
      head_hidden: hidden width of the mlp head (512 in the papers' code).
      zero_init_residual: zero the last BatchNorm scale of each block (off, as torchvision).
      dtype: compute dtype; parameters stay float32.
    """

    stage_sizes: Sequence[int]
    block_cls: ModuleDef
    embed_dim: int
    num_filters: int = 64
    head: str = "mlp"
    head_hidden: int = 512
    zero_init_residual: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, jnp.ndarray]:
        if x.ndim != 4:
            raise ValueError(f"ResNet input must be NHWC images (B, H, W, C), got shape {x.shape}.")
        conv = _conv_layer(self.dtype)
        norm = functools.partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
        )
        x = jnp.asarray(x, self.dtype)
        x = conv(self.num_filters, (3, 3), (1, 1), padding=[(1, 1), (1, 1)], name="conv_init")(x)
        x = nn.relu(norm(name="bn_init")(x))
        for i, num_blocks in enumerate(self.stage_sizes):
            for j in range(num_blocks):
                x = self.block_cls(
                    self.num_filters * 2**i,
                    conv=conv,
                    norm=norm,
                    strides=2 if i > 0 and j == 0 else 1,
                    zero_init_residual=self.zero_init_residual,
                )(x)
        h = jnp.mean(x, axis=(1, 2))
        f = ProjectionHead(self.embed_dim, self.head, self.head_hidden, self.dtype)(h, train)
        return jnp.asarray(h, jnp.float32), jnp.asarray(f, jnp.float32)


class MLP(nn.Module):
    """Fully connected encoder for vectors (inputs are flattened): Dense+ReLU layers, head.

    With hidden_sizes=(64, 64) and a linear head this is CLOP's synthetic 3-layer network
    R^3 → 64 → 64 → R^d. `h` is the last hidden activation.
    """

    embed_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    head: str = "linear"
    head_hidden: int = 512
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, jnp.ndarray]:
        h = jnp.asarray(x, self.dtype).reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden_sizes):
            h = nn.relu(
                nn.Dense(width, dtype=self.dtype, kernel_init=_dense_init, name=f"dense_{i}")(h)
            )
        f = ProjectionHead(self.embed_dim, self.head, self.head_hidden, self.dtype)(h, train)
        return jnp.asarray(h, jnp.float32), jnp.asarray(f, jnp.float32)


class SmallCNN(nn.Module):
    """A VGG-style encoder for small images (8×8 to 32×32), sized for a CPU.

    Three stages of `depth` 3×3 convolutions each (widths w, 2w and 4w), each convolution
    with BatchNorm and ReLU, a 2×2 max-pool after the first two stages, global average
    pooling to `h` (4w), then the papers' mlp head. On 28×28×1 inputs (`model_macs`;
    tested): w = 32, depth 1: 93 k backbone parameters and 7.5 M multiply-adds per image,
    74× fewer than ResNet-18 on 32×32×3; w = 32, depth 2: 287 k and 29 M.

    Attributes:
      embed_dim: output dimension d of the head.
      width: w, the first convolution's channels.
      depth: convolutions per stage (1: conv_0..conv_2; 2: conv_0..conv_5, two per stage).
      head: "mlp", "linear" or "identity" (see `ProjectionHead`).
      head_hidden: hidden width of the mlp head.
      dtype: compute dtype; parameters stay float32.
    """

    embed_dim: int
    width: int = 32
    depth: int = 1
    head: str = "mlp"
    head_hidden: int = 128
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, jnp.ndarray]:
        if x.ndim != 4:
            raise ValueError(f"small_cnn input must be NHWC images (B, H, W, C), got {x.shape}.")
        conv = _conv_layer(self.dtype)
        norm = functools.partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
        )
        h = jnp.asarray(x, self.dtype)
        for i, (mult, pool) in enumerate(small_cnn_layers(self.depth)):
            h = nn.relu(norm(name=f"bn_{i}")(conv(mult * self.width, (3, 3), name=f"conv_{i}")(h)))
            if pool:
                h = _max_pool_2x2(h)
        h = jnp.mean(h, axis=(1, 2))
        f = ProjectionHead(self.embed_dim, self.head, self.head_hidden, self.dtype)(h, train)
        return jnp.asarray(h, jnp.float32), jnp.asarray(f, jnp.float32)


# SmallCNN's stages: channel multiples of `width`, a 2×2 max-pool between them.
_SMALL_CNN_WIDTHS = (1, 2, 4)


def small_cnn_layers(depth: int) -> list[tuple[int, bool]]:
    """(width multiple, whether a 2×2 max-pool follows) of each of SmallCNN's convolutions
    in order: `depth` per stage, a pool after every stage but the last. The layout that
    `SmallCNN`, `model_macs` and the PyTorch twin (`torch_peer`) all build from."""
    last = _SMALL_CNN_WIDTHS[-1]
    return [
        (mult, j == depth - 1 and mult != last) for mult in _SMALL_CNN_WIDTHS for j in range(depth)
    ]


def _max_pool_2x2(h: jnp.ndarray) -> jnp.ndarray:
    """2×2 max-pool, stride 2. Even sizes use `layers.max_pool_2x2`, whose gradient is
    one elementwise pass (XLA:CPU runs `nn.max_pool`'s select-and-scatter and a
    reshape-max's tie-splitting gradient far slower); odd sizes pad ('SAME')."""
    if h.shape[1] % 2 or h.shape[2] % 2:
        return nn.max_pool(h, (2, 2), (2, 2), padding="SAME")
    return layers.max_pool_2x2(h)


class TinyCNN(nn.Module):
    """Test-size CNN (a few thousand parameters): 2 conv+BN layers, pool, mlp head."""

    embed_dim: int
    width: int = 8
    head: str = "mlp"
    head_hidden: int = 32
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, jnp.ndarray]:
        if x.ndim != 4:
            raise ValueError(f"tiny_cnn input must be NHWC images (B, H, W, C), got {x.shape}.")
        conv = _conv_layer(self.dtype)
        norm = functools.partial(
            nn.BatchNorm, use_running_average=not train, momentum=0.9, dtype=self.dtype
        )
        h = jnp.asarray(x, self.dtype)
        h = nn.relu(norm()(conv(self.width, (3, 3))(h)))
        h = nn.relu(norm()(conv(2 * self.width, (3, 3), (2, 2))(h)))
        h = jnp.mean(h, axis=(1, 2))
        f = ProjectionHead(self.embed_dim, self.head, self.head_hidden, self.dtype)(h, train)
        return jnp.asarray(h, jnp.float32), jnp.asarray(f, jnp.float32)


def _auto_hidden(in_features: int) -> tuple[int, ...]:
    # Small inputs (CLOP's R^3) get CLOP's narrow 3-layer network; wide ones (the 3072-dim
    # HN synthetic set) a 1024-512 network so the first layer does not bottleneck.
    return (64, 64) if in_features <= 64 else (1024, 512)


class _AutoMLP(nn.Module):
    """MLP whose hidden sizes default by input width (see `_auto_hidden`)."""

    embed_dim: int
    hidden_sizes: Sequence[int] | None = None
    head: str = "linear"
    head_hidden: int = 512
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, jnp.ndarray]:
        sizes = self.hidden_sizes
        if sizes is None:
            sizes = _auto_hidden(math.prod(x.shape[1:]))
        return MLP(
            self.embed_dim, tuple(sizes), self.head, self.head_hidden, self.dtype, name="mlp"
        )(x, train)


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model name={name!r}; expected one of {MODELS}.")


def create_model(
    name: str,
    *,
    embed_dim: int,
    dtype: Dtype = jnp.float32,
    head: str = "default",
    **kw: Any,
) -> nn.Module:
    """Builds an encoder returning `(backbone_features, embeddings)`.

    Args:
      name: one of `MODELS`: "resnet18", "resnet50" (CIFAR stem, 32×32 inputs or any
        size), "small_cnn" (8×8 to 32×32 images on a CPU), "mlp" (vectors or anything
        flattened), "tiny_cnn", "tiny_mlp" (tests only).
      embed_dim: d, the dimension of the embedding f (C − 1 in the HN experiments).
      dtype: compute dtype (jnp.float32 or jnp.bfloat16); parameters are float32 and
        both outputs are cast to float32.
      head: "default" ("mlp" for resnets and tiny_cnn, "linear" for mlp and tiny_mlp),
        "mlp" (Dense(no bias) → BN → ReLU → Dense), "linear" or "identity".
      **kw: model options. resnets: `num_filters` (64), `head_hidden` (512),
        `zero_init_residual` (False). small_cnn: `width` (32), `depth` (1 convolution
        per stage; 2 for the Fashion-MNIST config), `head_hidden` (128).
        mlp: `hidden_sizes` (None: (64, 64) for inputs of
        ≤ 64 features, else (1024, 512)), `head_hidden`. tiny_cnn: `width` (8),
        `head_hidden` (32). tiny_mlp: `hidden_sizes` ((32, 32)).

    Returns:
      A flax.linen module; `module.apply(variables, x, train=...)` returns
      `(h (B, H) float32, f (B, embed_dim) float32)`. Variables hold "params" and, for
      models with BatchNorm, "batch_stats" (pass `mutable=["batch_stats"]` in training).

    References:
      He et al. 2016 (ResNet); Chuang et al. 2020 code (CIFAR stem, projection head).
    """
    _check_name(name)
    try:
        d = operator.index(embed_dim)
    except TypeError:
        d = 0
    if d < 1:
        raise ValueError(f"embed_dim must be a positive int, got embed_dim={embed_dim!r}.")
    embed_dim = d
    if "hidden_sizes" in kw and kw["hidden_sizes"] is not None:
        kw["hidden_sizes"] = tuple(int(w) for w in kw["hidden_sizes"])
    if head not in HEADS:
        raise ValueError(f"unknown head={head!r}; expected one of {HEADS}.")
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got dtype={dtype}.")
    if name in _RESNET_STAGES:
        allowed = {"num_filters", "head_hidden", "zero_init_residual"}
    elif name == "small_cnn":
        allowed = {"width", "depth", "head_hidden"}
    elif name == "tiny_cnn":
        allowed = {"width", "head_hidden"}
    else:
        allowed = {"hidden_sizes", "head_hidden"}
    unknown = set(kw) - allowed
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for model {name!r}; allowed: {sorted(allowed)}."
        )
    if "depth" in kw and (
        isinstance(kw["depth"], bool) or not isinstance(kw["depth"], int) or kw["depth"] < 1
    ):
        raise ValueError(
            f"small_cnn depth must be an int >= 1 (convolutions per stage), got {kw['depth']!r}."
        )
    if name in _RESNET_STAGES:
        block = BasicBlock if name == "resnet18" else BottleneckBlock
        return ResNet(
            stage_sizes=_RESNET_STAGES[name],
            block_cls=block,
            embed_dim=embed_dim,
            head="mlp" if head == "default" else head,
            dtype=dtype,
            **kw,
        )
    if name == "small_cnn":
        return SmallCNN(
            embed_dim=embed_dim, head="mlp" if head == "default" else head, dtype=dtype, **kw
        )
    if name == "tiny_cnn":
        return TinyCNN(
            embed_dim=embed_dim, head="mlp" if head == "default" else head, dtype=dtype, **kw
        )
    head = "linear" if head == "default" else head
    if name == "tiny_mlp":
        kw.setdefault("hidden_sizes", (32, 32))
        return MLP(embed_dim=embed_dim, head=head, dtype=dtype, **kw)
    hidden = kw.pop("hidden_sizes", None)
    return _AutoMLP(
        embed_dim=embed_dim,
        hidden_sizes=None if hidden is None else tuple(hidden),
        head=head,
        dtype=dtype,
        **kw,
    )


def _conv_macs(h: int, w: int, k: int, c_in: int, c_out: int, stride: int) -> tuple[int, int, int]:
    """MACs of a 'SAME'-padded k×k convolution and its output spatial size."""
    h_out, w_out = -(-h // stride), -(-w // stride)
    return h_out * w_out * k * k * c_in * c_out, h_out, w_out


def _head_macs(feat: int, embed_dim: int, head: str, hidden: int) -> int:
    if head == "identity":
        return 0
    if head == "mlp":
        return feat * hidden + hidden * embed_dim
    return feat * embed_dim


def model_macs(
    name: str,
    input_shape: Sequence[int],
    embed_dim: int,
    *,
    head: str = "default",
    **kw: Any,
) -> int:
    """Analytic multiply-accumulates of one forward pass of one example.

    Counts convolutions and dense layers only (BatchNorm, ReLU, pooling and additions are
    lower-order). ResNet-50 with the CIFAR stem on 32×32×3 inputs: ≈ 1.30 GMAC.

    Args:
      name: one of `MODELS`.
      input_shape: shape of one example, (H, W, C) for images or (D,) / any for vectors.
      embed_dim: d, the head's output dimension.
      head: as in `create_model`.
      **kw: the model options of `create_model` (num_filters, hidden_sizes, width, ...).

    Returns:
      MACs per example (int); FLOPs ≈ 2 × MACs (see `model_flops`).
    """
    _check_name(name)
    shape = tuple(int(s) for s in input_shape)
    if name in _RESNET_STAGES or name in ("tiny_cnn", "small_cnn"):
        if len(shape) != 3:
            raise ValueError(f"{name} needs input_shape=(H, W, C), got input_shape={shape}.")
        h, w, c = shape
        head = "mlp" if head == "default" else head
        if name == "small_cnn":
            width, depth, total = kw.get("width", 32), kw.get("depth", 1), 0
            for mult, pool in small_cnn_layers(depth):
                m, h, w = _conv_macs(h, w, 3, c, mult * width, 1)
                total, c = total + m, mult * width
                if pool:
                    h, w = -(-h // 2), -(-w // 2)
            return total + _head_macs(c, embed_dim, head, kw.get("head_hidden", 128))
        if name == "tiny_cnn":
            width = kw.get("width", 8)
            m1, h, w = _conv_macs(h, w, 3, c, width, 1)
            m2, h, w = _conv_macs(h, w, 3, width, 2 * width, 2)
            return m1 + m2 + _head_macs(2 * width, embed_dim, head, kw.get("head_hidden", 32))
        nf = kw.get("num_filters", 64)
        total, h, w = _conv_macs(h, w, 3, c, nf, 1)
        c = nf
        bottleneck = name == "resnet50"
        for i, blocks in enumerate(_RESNET_STAGES[name]):
            filters = nf * 2**i
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                if bottleneck:
                    out = 4 * filters
                    m_a, _, _ = _conv_macs(h, w, 1, c, filters, 1)
                    m_b, h2, w2 = _conv_macs(h, w, 3, filters, filters, stride)
                    m_c, _, _ = _conv_macs(h2, w2, 1, filters, out, 1)
                    total += m_a + m_b + m_c
                else:
                    out = filters
                    m_a, h2, w2 = _conv_macs(h, w, 3, c, filters, stride)
                    m_b, _, _ = _conv_macs(h2, w2, 3, filters, filters, 1)
                    total += m_a + m_b
                if stride != 1 or c != out:
                    total += _conv_macs(h, w, 1, c, out, stride)[0]
                h, w, c = h2, w2, out
        return total + _head_macs(c, embed_dim, head, kw.get("head_hidden", 512))
    features = math.prod(shape)
    sizes = kw.get("hidden_sizes")
    if sizes is None:
        sizes = (32, 32) if name == "tiny_mlp" else _auto_hidden(features)
    total, prev = 0, features
    for width in sizes:
        total, prev = total + prev * width, width
    head = "linear" if head == "default" else head
    return total + _head_macs(prev, embed_dim, head, kw.get("head_hidden", 512))


def model_flops(
    name: str, input_shape: Sequence[int], embed_dim: int, *, head: str = "default", **kw: Any
) -> int:
    """Analytic forward FLOPs of one example, 2 × `model_macs` (same arguments)."""
    return 2 * model_macs(name, input_shape, embed_dim, head=head, **kw)


def num_params(variables: Any) -> int:
    """Number of trainable parameters in `variables["params"]` (or a params tree)."""
    params = variables.get("params", variables) if isinstance(variables, dict) else variables
    return int(sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


__all__: Sequence[str] = (
    "MODELS",
    "HEADS",
    "create_model",
    "model_macs",
    "model_flops",
    "num_params",
    "ResNet",
    "MLP",
    "SmallCNN",
    "TinyCNN",
    "ProjectionHead",
    "BasicBlock",
    "BottleneckBlock",
)
