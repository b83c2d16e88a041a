"""Layer primitives with CPU-friendly lowerings, drop-in for their JAX/Flax counterparts.

XLA:CPU spends much of a small CNN's train step outside the matrix products: in
convolutions whose input has few channels (Eigen's convolution kernels vectorize over
channels) and in the gradient of a max-pool written as a reshape-max (a compare, a
count of ties, a division and a broadcast, each a pass over the full activation). Two
replacements, each with the same values and, where the maths allows, the same
gradients:

* `conv_general_dilated`: `lax.conv_general_dilated` with one change on a CPU: a
  convolution whose input has at most `IM2COL_MAX_FEATURES` values per output position
  (kh × kw × C_in, e.g. a 3×3 convolution of a 1- or 3-channel image) is computed as
  the patches of its input times the reshaped kernel, one matrix product (im2col).
  Same result up to the order of the float32 sums; on other platforms, and for every
  other convolution, it is `lax.conv_general_dilated` itself. Pass it to
  `flax.linen.Conv(conv_general_dilated=...)`: parameters are unchanged.
* `max_pool_2x2`: a 2×2, stride-2 max-pool over (H, W) of NHWC activations whose
  gradient goes to the first maximal position of each window (row-major), as
  PyTorch's `max_pool2d` does, stored as a one-byte index in the forward pass; one
  elementwise pass in the backward. The reshape-max it replaces splits the gradient
  evenly over tied maxima instead: the two differ only at exact ties, which after a
  ReLU are windows of zeros whose gradient the ReLU discards in either case.

BENCHMARKS.md ("Speed on a CPU", and the train-step tables under "Recorded results") has
the measured effect on whole train steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

# Largest kh * kw * C_in computed as patches × kernel on a CPU (3×3 kernels: C_in ≤ 8).
IM2COL_MAX_FEATURES = 72

_NHWC = lax.ConvDimensionNumbers(
    lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2)
)


def _is_unit(v: Sequence[int] | None) -> bool:
    return v is None or all(int(s) == 1 for s in v)


def _uses_im2col(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, groups) -> bool:
    if lhs.ndim != 4 or rhs.ndim != 4 or groups != 1:
        return False
    if not (_is_unit(lhs_dilation) and _is_unit(rhs_dilation)):
        return False
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if dn != _NHWC:
        return False
    kh, kw, c_in, _ = rhs.shape
    return kh * kw * c_in <= IM2COL_MAX_FEATURES


def _im2col(lhs, rhs, strides, padding, precision):
    """NHWC × HWIO convolution as one matrix product of the input's patches."""
    b, h, w, c = lhs.shape
    kh, kw, _, c_out = rhs.shape
    sh, sw = (int(s) for s in strides)
    if isinstance(padding, str):
        pads = lax.padtype_to_pads((h, w), (kh, kw), (sh, sw), padding)
    else:
        pads = [tuple(int(p) for p in pair) for pair in padding]
    xp = jnp.pad(lhs, ((0, 0), pads[0], pads[1], (0, 0)))
    ho = (xp.shape[1] - kh) // sh + 1
    wo = (xp.shape[2] - kw) // sw + 1
    # Columns in (i, j, c) order, the order of the HWIO kernel reshaped to (kh·kw·C, C_out).
    patches = jnp.concatenate(
        [
            xp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
            for i in range(kh)
            for j in range(kw)
        ],
        axis=-1,
    )
    y = jnp.dot(
        patches.reshape(b * ho * wo, kh * kw * c),
        rhs.reshape(kh * kw * c, c_out),
        precision=precision,
    )
    return y.reshape(b, ho, wo, c_out)


def conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    precision: Any = None,
    **kwargs: Any,
) -> jax.Array:
    """`lax.conv_general_dilated`, with few-channel convolutions as im2col on a CPU.

    Same arguments and result as `lax.conv_general_dilated`. When the input is NHWC,
    the kernel HWIO, nothing is dilated or grouped and kh·kw·C_in ≤
    `IM2COL_MAX_FEATURES`, the CPU lowering computes the convolution as patches ×
    kernel (one `dot`, whose gradients are matrix products too); every other case, and
    every other platform, is `lax.conv_general_dilated` unchanged.

    Example:
        >>> import flax.linen as nn
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from hncl_jax import layers
        >>> conv = nn.Conv(4, (3, 3), conv_general_dilated=layers.conv_general_dilated)
        >>> x = jnp.ones((1, 8, 8, 1))  # one channel: patches × kernel on a CPU
        >>> variables = conv.init(jax.random.key(0), x)
        >>> conv.apply(variables, x).shape
        (1, 8, 8, 4)
    """

    def native(lhs, rhs):
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count,
            precision=precision,
            **kwargs,
        )

    if kwargs or not _uses_im2col(
        lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count
    ):
        return native(lhs, rhs)
    return lax.platform_dependent(
        lhs,
        rhs,
        cpu=lambda lhs, rhs: _im2col(lhs, rhs, window_strides, padding, precision),
        default=native,
    )


# --------------------------------------------------------------------------- max-pool
def _check_pool_input(x: jax.Array) -> None:
    if x.ndim != 4 or x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(
            f"max_pool_2x2 needs NHWC activations with even height and width, got shape "
            f"{x.shape}; pad odd sizes first or use flax.linen.max_pool."
        )


def _windows(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2×2 max-pool with stride 2 of NHWC activations (even H and W).

    The gradient goes to the first maximal position of each window in row-major order
    (PyTorch's convention), computed from a one-byte index saved by the forward pass.

    Args:
      x: (B, H, W, C) with H and W even.

    Returns:
      (B, H/2, W/2, C), the maximum of each 2×2 window.

    Example:
        >>> import jax.numpy as jnp
        >>> from hncl_jax import layers
        >>> layers.max_pool_2x2(jnp.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
        Array([[ 5.,  7.],
               [13., 15.]], dtype=float32)
    """
    _check_pool_input(x)
    return _windows(x).max(axis=(2, 4))


def _max_pool_fwd(x: jax.Array):
    _check_pool_input(x)
    r = _windows(x)
    corners = (r[:, :, 0, :, 0], r[:, :, 0, :, 1], r[:, :, 1, :, 0], r[:, :, 1, :, 1])
    m = jnp.maximum(jnp.maximum(corners[0], corners[1]), jnp.maximum(corners[2], corners[3]))
    # Index 0..3 of the first corner equal to the maximum (row-major within the window).
    index = jnp.where(
        corners[0] == m, 0, jnp.where(corners[1] == m, 1, jnp.where(corners[2] == m, 2, 3))
    ).astype(jnp.int8)
    return m, (index, x.shape)


def _max_pool_bwd(res, g):
    index, shape = res
    iota = lambda axis: lax.broadcasted_iota(jnp.int8, (1, 1, 2, 1, 2, 1), axis)
    position = 2 * iota(2) + iota(4)
    picked = index[:, :, None, :, None, :] == position
    dx = jnp.where(picked, g[:, :, None, :, None, :], jnp.zeros((), g.dtype))
    return (dx.reshape(shape),)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


__all__: Sequence[str] = (
    "IM2COL_MAX_FEATURES",
    "conv_general_dilated",
    "max_pool_2x2",
)
