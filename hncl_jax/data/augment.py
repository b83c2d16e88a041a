"""On-device preprocessing and view generation (pure jnp, jit-able, vmapped per example).

Views follow the project's convention (docs/math.md §3): `make_views(key, x, kind)` returns
`concat(view1, view2)` of shape (2B, ...), view i and view B + i being the two
independent augmentations of reference example i.

- "simclr": random resized crop (scale (0.08, 1), ratio (3/4, 4/3)), horizontal flip,
  colour jitter (brightness, contrast, saturation 0.4, hue 0.1, random order, p = 0.8),
  grey-scale (p = 0.2): SimCLR's CIFAR recipe, on images in [0, 1].
- "crop_flip": random resized crop (scale (0.35, 1)) and horizontal flip, no colour
  jitter: for small grayscale images such as Fashion-MNIST's 28×28.
- "translate": a random shift of up to `max_shift` pixels (zero padding), optional flip
  (off by default): for digits, whose identity a flip or a large crop would change.
- "noise": reference + N(0, std² I) per view, std = 0.1 (variance 0.01) [HN §5].
- "clop": reference + N(0, 0.05 I), then a sign flip with probability 0.5 [CLOP §5].

Every random draw comes from the given key (one subkey per example), so a step's views
are a pure function of (key, batch).

References:
  Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
  ICML 2020, App. A (augmentations); torchvision `RandomResizedCrop` and `ColorJitter`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

VIEW_KINDS = ("simclr", "crop_flip", "translate", "noise", "clop")
# The view kinds that need images (B, H, W, C); the others work on any array.
IMAGE_VIEW_KINDS = ("simclr", "crop_flip", "translate")
# The keyword options each view kind takes (`make_views(..., **options)`).
VIEW_OPTIONS = {
    "simclr": ("crop_scale", "jitter_strength", "jitter_prob", "gray_prob", "flip_prob"),
    "crop_flip": ("crop_scale", "flip_prob"),
    "translate": ("max_shift", "flip_prob"),
    "noise": ("std",),
    "clop": ("std", "flip_prob"),
}

Array = jax.Array

# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


def to_unit_range(x: Array) -> Array:
    """uint8 (or any integer) images to float32 in [0, 1]; float inputs are cast only."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.integer):
        return x.astype(jnp.float32) / 255.0
    return x.astype(jnp.float32)


def preprocess(
    x: Array,
    *,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
) -> Array:
    """Model input from stored data.

    Args:
      x: (B, H, W, C) uint8 images or float vectors/images of any shape.
      mean: optional per-channel (or scalar) mean subtracted after scaling to [0, 1].
      std: optional per-channel (or scalar) standard deviation divided by.

    Returns:
      float32 array of x's shape: uint8 → x / 255 (then (x − mean) / std if given);
      float inputs pass through unchanged (cast to float32).
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        return x.astype(jnp.float32)
    return normalize(to_unit_range(x), mean=mean, std=std)


def normalize(
    x: Array,
    *,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
) -> Array:
    """(x − mean) / std over the last (channel) axis; identity when both are None."""
    if mean is None and std is None:
        return x
    if std is not None and np.any(np.asarray(std) <= 0):
        raise ValueError(f"std must be positive, got std={std!r}.")
    mean_a = jnp.asarray(0.0 if mean is None else mean, jnp.float32)
    std_a = jnp.asarray(1.0 if std is None else std, jnp.float32)
    return (x - mean_a) / std_a


# --------------------------------------------------------------------------- simclr


def _gray(img: Array) -> Array:
    """(H, W, 3) → (H, W, 1) luma."""
    return jnp.sum(img * jnp.asarray(_LUMA, img.dtype), axis=-1, keepdims=True)


def _crop_box(key: Array, height: int, width: int, scale, ratio, attempts: int = 10):
    """torchvision RandomResizedCrop.get_params: (top, left, h, w) as float32 scalars.

    Ten proposals are drawn at once and the first that fits is kept; if none fits, the
    central crop with the ratio clipped to `ratio` is used (as torchvision).
    """
    area = height * width
    k_scale, k_ratio, k_top, k_left = jax.random.split(key, 4)
    target = area * jax.random.uniform(k_scale, (attempts,), minval=scale[0], maxval=scale[1])
    log_r = jax.random.uniform(
        k_ratio, (attempts,), minval=math.log(ratio[0]), maxval=math.log(ratio[1])
    )
    r = jnp.exp(log_r)
    w = jnp.round(jnp.sqrt(target * r))
    h = jnp.round(jnp.sqrt(target / r))
    fits = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = jnp.argmax(fits)
    ok = jnp.any(fits)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fb_w, fb_h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fb_w, fb_h = round(height * ratio[1]), height
    else:
        fb_w, fb_h = width, height
    h_sel = jnp.where(ok, h[first], fb_h)
    w_sel = jnp.where(ok, w[first], fb_w)
    # Uniform integer offsets in [0, size − crop], as torch.randint(0, size − crop + 1).
    top = jnp.floor(jax.random.uniform(k_top, (), maxval=1.0) * (height - h_sel + 1))
    left = jnp.floor(jax.random.uniform(k_left, (), maxval=1.0) * (width - w_sel + 1))
    top = jnp.where(ok, top, (height - fb_h) // 2)
    left = jnp.where(ok, left, (width - fb_w) // 2)
    return top, left, h_sel, w_sel


def random_resized_crop(
    key: Array,
    img: Array,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
) -> Array:
    """Crops a random box of one (H, W, C) image and resizes it back to (H, W), bilinear."""
    top, left, h, w = _crop_box(key, img.shape[0], img.shape[1], scale, ratio)
    return jnp.clip(crop_and_resize(img, top, left, h, w), 0.0, 1.0)


def crop_and_resize(img: Array, top: Array, left: Array, h: Array, w: Array) -> Array:
    """The box [top, top + h) × [left, left + w) of one (H, W, C) image, resized
    bilinearly to (H, W); the box may be traced (no dynamic shapes are involved)."""
    height, width = img.shape[0], img.shape[1]
    # scale_and_translate samples output coordinate y at input coordinate (y − t) / s.
    s = jnp.stack([height / h, width / w]).astype(jnp.float32)
    t = jnp.stack([-top * height / h, -left * width / w]).astype(jnp.float32)
    return jax.image.scale_and_translate(
        img, img.shape, spatial_dims=(0, 1), scale=s, translation=t, method="linear", antialias=True
    )


def _rgb_to_hsv(rgb: Array) -> Array:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    maxc = jnp.max(rgb, axis=-1)
    minc = jnp.min(rgb, axis=-1)
    delta = maxc - minc
    safe = jnp.where(delta > 0, delta, 1.0)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = jnp.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    s = jnp.where(maxc > 0, delta / jnp.where(maxc > 0, maxc, 1.0), 0.0)
    return jnp.stack([h, s, maxc], axis=-1)


def _hsv_to_rgb(hsv: Array) -> Array:
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = jnp.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    i = i.astype(jnp.int32) % 6
    choices = [
        jnp.stack(c, axis=-1)
        for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    ]
    out = choices[5]
    for k in range(4, -1, -1):
        out = jnp.where((i == k)[..., None], choices[k], out)
    return out


def color_jitter(
    key: Array,
    img: Array,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
) -> Array:
    """torchvision ColorJitter on one image in [0, 1]: the four ops in a random order.

    Factors: brightness, contrast, saturation ~ U[1 − s, 1 + s], hue shift ~ U[−h, h].
    Images with one channel get brightness and contrast only.
    """
    k_perm, k_b, k_c, k_s, k_h = jax.random.split(key, 5)
    fb = jax.random.uniform(k_b, (), minval=1 - brightness, maxval=1 + brightness)
    fc = jax.random.uniform(k_c, (), minval=1 - contrast, maxval=1 + contrast)
    fs = jax.random.uniform(k_s, (), minval=1 - saturation, maxval=1 + saturation)
    fh = jax.random.uniform(k_h, (), minval=-hue, maxval=hue)
    rgb = img.shape[-1] == 3

    def bright(x):
        return jnp.clip(x * fb, 0.0, 1.0)

    def contr(x):
        m = jnp.mean(_gray(x) if rgb else x)
        return jnp.clip(fc * x + (1 - fc) * m, 0.0, 1.0)

    def satur(x):
        return jnp.clip(fs * x + (1 - fs) * _gray(x), 0.0, 1.0) if rgb else x

    def hue_shift(x):
        if not rgb:
            return x
        hsv = _rgb_to_hsv(x)
        hsv = hsv.at[..., 0].set((hsv[..., 0] + fh) % 1.0)
        return jnp.clip(_hsv_to_rgb(hsv), 0.0, 1.0)

    ops = (bright, contr, satur, hue_shift)
    order = jax.random.permutation(k_perm, 4)
    for slot in range(4):
        img = jax.lax.switch(order[slot], ops, img)
    return img


def simclr_augment_one(
    key: Array,
    img: Array,
    *,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    jitter_strength: float = 1.0,
    jitter_prob: float = 0.8,
    gray_prob: float = 0.2,
    flip_prob: float = 0.5,
) -> Array:
    """SimCLR augmentation of one (H, W, C) float image in [0, 1]."""
    k_crop, k_flip, k_jit, k_jp, k_gray = jax.random.split(key, 5)
    img = random_resized_crop(k_crop, img, scale=crop_scale)
    img = jnp.where(jax.random.bernoulli(k_flip, flip_prob), img[:, ::-1], img)
    s = jitter_strength
    jittered = color_jitter(k_jit, img, 0.4 * s, 0.4 * s, 0.4 * s, 0.1 * s)
    img = jnp.where(jax.random.bernoulli(k_jp, jitter_prob), jittered, img)
    if img.shape[-1] == 3:
        gray = jnp.broadcast_to(_gray(img), img.shape)
        img = jnp.where(jax.random.bernoulli(k_gray, gray_prob), gray, img)
    return img


def simclr_augment(key: Array, images: Array, **kw) -> Array:
    """SimCLR augmentation of a batch.

    Args:
      key: a jax.random key.
      images: (B, H, W, C) uint8, or float in [0, 1]; C is 1 or 3.
      **kw: options of `simclr_augment_one` (crop_scale, jitter_strength, jitter_prob,
        gray_prob, flip_prob).

    Returns:
      (B, H, W, C) float32 in [0, 1].
    """
    images = to_unit_range(images)
    _check_images(images, "simclr")
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(lambda k, x: simclr_augment_one(k, x, **kw))(keys, images)


def _check_images(images: Array, kind: str) -> None:
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"{kind} views need images (B, H, W, 1 or 3), got shape {images.shape}; use "
            "kind='noise' or 'clop' for vectors."
        )


def crop_flip_augment(
    key: Array,
    images: Array,
    *,
    crop_scale: tuple[float, float] = (0.35, 1.0),
    flip_prob: float = 0.5,
) -> Array:
    """Random resized crop and horizontal flip of a batch, no colour changes.

    Args:
      key: a jax.random key.
      images: (B, H, W, C) uint8, or float in [0, 1].
      crop_scale: range of the crop's share of the image area.
      flip_prob: probability of a horizontal flip.

    Returns:
      (B, H, W, C) float32 in [0, 1].
    """
    images = to_unit_range(images)
    _check_images(images, "crop_flip")

    def one(k, img):
        k_crop, k_flip = jax.random.split(k)
        img = random_resized_crop(k_crop, img, scale=tuple(crop_scale))
        return jnp.where(jax.random.bernoulli(k_flip, flip_prob), img[:, ::-1], img)

    return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)


def translate_augment(
    key: Array, images: Array, *, max_shift: int = 1, flip_prob: float = 0.0
) -> Array:
    """Shifts each image by a random integer offset in [−max_shift, max_shift]² (the
    uncovered border is zero), then flips it horizontally with probability flip_prob.

    Returns:
      (B, H, W, C) float32 in [0, 1].
    """
    images = to_unit_range(images)
    _check_images(images, "translate")
    s = int(max_shift)
    if s < 0:
        raise ValueError(f"max_shift must be >= 0, got max_shift={max_shift!r}.")
    _, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)))

    def one(k, img):
        k_shift, k_flip = jax.random.split(k)
        dy, dx = jax.random.randint(k_shift, (2,), 0, 2 * s + 1)
        img = jax.lax.dynamic_slice(img, (dy, dx, 0), (h, w, c))
        return jnp.where(jax.random.bernoulli(k_flip, flip_prob), img[:, ::-1], img)

    return jax.vmap(one)(jax.random.split(key, images.shape[0]), padded)


def augment(key: Array, x: Array, kind: str, **kw) -> Array:
    """One augmented view of every example of `x` (see `make_views` for the kinds)."""
    if kind not in VIEW_KINDS:
        raise ValueError(f"unknown view kind={kind!r}; expected one of {VIEW_KINDS}.")
    return _VIEW_FNS[kind](key, x, **kw)


# --------------------------------------------------------------------------- vectors


def noise_views(key: Array, x: Array, *, std: float = 0.1) -> Array:
    """One view: x + N(0, std² I) [HN §5: variance 0.01, std 0.1]."""
    x = to_unit_range(x)
    return x + std * jax.random.normal(key, x.shape, jnp.float32)


def clop_views(
    key: Array, x: Array, *, std: float = math.sqrt(0.05), flip_prob: float = 0.5
) -> Array:
    """One view: x + N(0, std² I), then −x with probability flip_prob (per example).

    CLOP §5: Gaussian noise of variance 0.05 and a random sign inversion with p = 0.5.
    """
    x = to_unit_range(x)
    k_noise, k_flip = jax.random.split(key)
    x = x + std * jax.random.normal(k_noise, x.shape, jnp.float32)
    flip = jax.random.bernoulli(k_flip, flip_prob, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(flip, -x, x)


def make_views(key: Array, x: Array, kind: str, **kw) -> Array:
    """Two independent views of every example, stacked as concat(view1, view2).

    Args:
      key: a jax.random key (the two views use its two halves).
      x: (B, ...) batch: images (uint8 or float in [0, 1]) for the image kinds
        ("simclr", "crop_flip", "translate"), vectors or any
        float array for "noise" and "clop".
      kind: one of `VIEW_KINDS`.
      **kw: options of the view function (`std` for noise / clop, `flip_prob` for clop,
        crop_flip and translate, `crop_scale` for crop_flip, `max_shift` for translate,
        the `simclr_augment` options for simclr).

    Returns:
      (2B, ...) float32; rows i and B + i are the positive pair of example i.
    """
    k1, k2 = jax.random.split(key)
    return jnp.concatenate([augment(k1, x, kind, **kw), augment(k2, x, kind, **kw)], axis=0)


_VIEW_FNS = {
    "simclr": simclr_augment,
    "crop_flip": crop_flip_augment,
    "translate": translate_augment,
    "noise": noise_views,
    "clop": clop_views,
}
