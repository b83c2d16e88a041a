"""The memory estimate of one train step, checked before anything compiles.

`estimate_step_memory` counts the loss's buffers, the parameters with their optimizer
state and the activations of one step per device; `check_memory` compares it with the
device's memory (`available_memory`) and refuses a step that cannot fit, naming the
fields that drive it. The trainer runs the check once the model's shapes are known
(traced with `jax.eval_shape`, nothing compiled).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import ml_collections

from hncl_jax import losses
from hncl_jax.train.validation import ConfigError

# Floats of activations (forward and backward) per input element of one example: an
# order-of-magnitude figure per model family, for the memory estimate only.
ACTIVATION_FACTORS = {"tiny_mlp": 4, "mlp": 8, "tiny_cnn": 64, "resnet18": 300, "resnet50": 1200}


def estimate_step_memory(
    config: ml_collections.ConfigDict,
    *,
    batch_size: int,
    input_shape: Sequence[int],
    num_params: int,
    num_devices: int = 1,
) -> dict[str, float]:
    """An analytic estimate of one train step's memory per device, in bytes.

    Counted in float32: the loss's (N, N) similarity buffers (about eight: similarities,
    masks, tilted log-probabilities, the sampler's CDF, their gradients), its
    negative buffers, O(N k) for the anchor-shared draws and O(N² k) for fresh draws per
    pair or the triplet ψ, where N is the batch (two views per example with
    `positives="views"`) and k = `loss.k`; the parameters with their gradients and
    optimizer moments (4 copies); and the activations, `ACTIVATION_FACTORS[model]`
    floats per input element per example. The loss and activations are divided over
    the devices.

    Args:
      config: the run's config.
      batch_size: the global batch actually used (after clamping to the data).
      input_shape: the shape of one example.
      num_params: the model's parameter count.
      num_devices: devices the batch is split over.

    Returns:
      dict with "loss", "params", "activations" and "total" bytes.
    """
    lc = config.loss
    n = batch_size * (2 if config.positives == "views" else 1)
    k = int(lc.k)
    loss = 8.0 * n * n
    if lc.name in losses.SETTINGS and lc.estimator == "sampled":
        if lc.draw == "pair" or lc.psi == "triplet":
            loss += 3.0 * n * n * k
        else:
            loss += 4.0 * n * k
    loss *= 4.0 / num_devices
    elements = math.prod(int(d) for d in input_shape)
    factor = ACTIVATION_FACTORS.get(config.model, 64)
    activations = 4.0 * n * elements * factor / num_devices
    params = 4.0 * 4 * num_params
    return {
        "loss": loss,
        "params": params,
        "activations": activations,
        "total": loss + params + activations,
    }


def available_memory() -> tuple[float, str]:
    """Bytes of memory of the first device and where the figure comes from.

    The accelerator's `memory_stats()["bytes_limit"]` where JAX reports it (GPU, TPU);
    otherwise the host's physical RAM (the CPU backend), or the container's memory
    limit (`container_memory_limit`) when that is smaller.
    """
    import jax

    try:
        stats = jax.local_devices()[0].memory_stats() or {}
    except Exception:  # backends without memory statistics raise or return None
        stats = {}
    if stats.get("bytes_limit"):
        return float(stats["bytes_limit"]), f"{jax.local_devices()[0].device_kind} memory"
    return host_memory()


def host_memory() -> tuple[float, str]:
    """Bytes of host memory: physical RAM, or the container's limit where smaller."""
    pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    host = float(pages * page)
    container = container_memory_limit()
    if container is not None and container < host:
        return container, "the container's memory limit"
    return host, "host RAM"


# Examples (train and test together) and channels of the image sets, for the size of a
# resized copy (`config.image_size`) before it is made.
IMAGE_SET_SIZES = {
    "digits": (1797, 1),
    "fashion_mnist": (70000, 1),
    "cifar10": (60000, 3),
    "cifar100": (60000, 3),
    "tinyimagenet": (110000, 3),
}


def _positive_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def estimate_data_bytes(config: ml_collections.ConfigDict) -> tuple[float, str] | None:
    """Peak host bytes of loading the data set the config names, and what drives them.

    Counted before anything is drawn or read: the synthetic sets' float64 draws, their
    float32 copies and the class means (both splits); an image set's resized copy
    (`config.image_size`). None where the size is fixed by the files.
    """
    name = config.dataset
    kw = {k: v for k, v in dict(config.dataset_kwargs or {}).items() if v is not None}
    if name in ("hn_synthetic", "clop_synthetic"):
        defaults = (
            {"num_classes": 3, "per_class": 100, "dim": 3072}
            if name == "hn_synthetic"
            else {"num_classes": 3, "num_points": 500, "dim": 3}
        )
        values = {k: kw.get(k, v) for k, v in defaults.items()}
        if not all(_positive_number(v) for v in values.values()):
            return None  # the data set's own checks name the bad option
        c, dim = float(values["num_classes"]), float(values["dim"])
        n = (
            c * float(values["per_class"])
            if name == "hn_synthetic"
            else float(values["num_points"])
        )
        # One split drawn (float64 noise and means[labels], float32 copy) while the
        # other is held (float32), plus the class means and labels.
        total = n * dim * (8 + 8 + 4 + 4) + c * dim * 8 + 2 * n * 8
        drivers = ", ".join(f"dataset_kwargs.{k}={v!r}" for k, v in values.items())
        return total, drivers
    size = config.get("image_size")
    if name in IMAGE_SET_SIZES and _positive_number(size):
        n, channels = IMAGE_SET_SIZES[name]
        return float(n) * float(size) ** 2 * channels, f"image_size={size!r} on {name}"
    return None


def check_data_size(config: ml_collections.ConfigDict, limit: float | None = None) -> None:
    """Refuses a data set too large for host memory before anything is allocated.

    Args:
      config: the run's config (checked by `validation.validate_config`).
      limit: bytes available (None: `host_memory()`).

    Raises:
      ConfigError: the estimate (`estimate_data_bytes`) exceeds the limit.
    """
    found = estimate_data_bytes(config)
    if found is None:
        return
    total, drivers = found
    where = "the given limit"
    if limit is None:
        limit, where = host_memory()
    if total > limit:
        gb = 2.0**30
        raise ConfigError(
            f"config.dataset={config.dataset!r} with {drivers} needs about {total / gb:.3g} GB "
            f"of host memory to load, {where} is {limit / gb:.3g} GB: it cannot fit. Lower "
            "those values."
        )


# Above this a cgroup v1 "limit" means unlimited (the kernel writes a page-rounded 2**63-1).
_NO_CGROUP_LIMIT = 2**62


def _read_limit(path: str) -> float | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) >= _NO_CGROUP_LIMIT:
        return None  # "max" (cgroup v2) or the v1 no-limit value
    return float(text)


def container_memory_limit(root: str = "/") -> float | None:
    """The memory limit of this process's cgroup in bytes (None: no limit found).

    Reads cgroup v2's `memory.max` and cgroup v1's `memory.limit_in_bytes` of the
    process's own cgroup (from `/proc/self/cgroup`) and of every cgroup above it up to
    the mount point (the smallest limit applies), as a container's runtime sets them.

    Args:
      root: the filesystem root to read `/proc` and `/sys/fs/cgroup` under (tests).
    """
    base = os.path.join(root, "sys", "fs", "cgroup")
    try:
        with open(os.path.join(root, "proc", "self", "cgroup")) as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    candidates = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # cgroup v2 (unified)
            mounts, name = [base, os.path.join(base, "unified")], "memory.max"
        elif "memory" in controllers.split(","):
            mounts, name = [os.path.join(base, "memory")], "memory.limit_in_bytes"
        else:
            continue
        for mount in mounts:
            rel_parts = [p for p in rel.split("/") if p]
            # The cgroup and its ancestors; in a namespaced container the path may not
            # exist under the mount, whose root is then the container's own cgroup.
            for i in range(len(rel_parts), -1, -1):
                candidates.append(os.path.join(mount, *rel_parts[:i], name))
    limits = [v for v in (_read_limit(p) for p in dict.fromkeys(candidates)) if v is not None]
    return min(limits) if limits else None


def check_memory(
    config: ml_collections.ConfigDict,
    *,
    batch_size: int,
    input_shape: Sequence[int],
    num_params: int,
    num_devices: int = 1,
    limit: float | None = None,
) -> dict[str, float]:
    """Refuses a step whose estimated memory exceeds the device's, before compiling.

    Args:
      config, batch_size, input_shape, num_params, num_devices: as in
        `estimate_step_memory`.
      limit: bytes available (None: `available_memory()`).

    Returns:
      The estimate (`estimate_step_memory`).

    Raises:
      ConfigError: the estimate exceeds the limit; the message gives both and the
        fields that drive it (batch size, loss.k, loss.draw).

    Warns:
      UserWarning: the estimate exceeds half the limit.
    """
    estimate = estimate_step_memory(
        config,
        batch_size=batch_size,
        input_shape=input_shape,
        num_params=num_params,
        num_devices=num_devices,
    )
    where = "the given limit"
    if limit is None:
        limit, where = available_memory()
    gb = 2.0**30
    text = (
        f"one train step needs about {estimate['total'] / gb:.3g} GB per device (loss "
        f"{estimate['loss'] / gb:.3g} GB with batch {batch_size} and config.loss.k="
        f"{config.loss.k}, activations {estimate['activations'] / gb:.3g} GB, parameters and "
        f"optimizer {estimate['params'] / gb:.3g} GB), {where} is {limit / gb:.3g} GB"
    )
    if estimate["total"] > limit:
        raise ConfigError(
            f"{text}: it cannot fit. Lower --config.loss.k or --config.batch_size (or use "
            "--config.loss.draw=anchor, O(N k) instead of O(N² k) memory)."
        )
    if estimate["total"] > 0.5 * limit:
        warnings.warn(f"{text}: close to the limit; the step may run out of memory.", stacklevel=2)
    return estimate
