"""hncl_jax: hard negatives and collapse in contrastive learning, in JAX/Flax.

    import hncl_jax
    hncl_jax.losses.contrastive_loss(z, labels, key, setting="hscl", beta=10.0)

The modules load on first use (`import hncl_jax` itself imports neither JAX nor
TensorFlow Datasets; it only adds the library's XLA:CPU flags to `XLA_FLAGS`, see
`hncl_jax.runtime.configure_xla`), from the bottom floor up:

* `geometry`: normalizations (unit ball, unit sphere), the simplex ETF, class means,
  Neural-Collapse metrics, the Dimensional-Collapse spectrum, the closed-form minima of
  the hard-negative paper's Theorems 2 and 3, CLOP's learning-rate bound.
* `hardening`: the loss functions ψ_k, hardening functions η, tilted (inverse-CDF and
  SIR) negative sampling.
* `losses`: SCL, HSCL, UCL, HUCL with the `sampled` and `reweighted` estimators, and the
  SimCLR-form loss.
* `baselines`: NT-Xent, SupCon, SINCERE, DCL, DCLW, VICReg, Barlow Twins, CLOP's
  orthonormal prototypes and term.
* `layers`: CPU-friendly lowerings the models use (im2col for few-channel convolutions,
  a max-pool with a one-pass gradient).
* `models`: ResNet-18/50 (CIFAR stem) with a projection head, MLPs, small CNNs.
* `data`: the synthetic sets of both papers, digits, CIFAR-10/100 and Tiny-ImageNet
  (TFDS), on-device augmentation.
* `evaluation`: nearest class mean, kNN and linear probe on frozen features, the collapse
  report.
* `train`: the trainer, a package: `train.train_and_evaluate(config, workdir)`, the
  library's one entry point, its factories and the pure train step; beside them
  `train.validation` (config, data and workdir checks run before anything compiles),
  `train.workdir` (the workdir's lock), `train.checkpointing` (Orbax checkpoints: resume,
  fallback past a damaged step, warm start), `train.reporting` (the metric writer,
  `metrics.jsonl` and TensorBoard, progress bar, summary), `train.plots` and `train.cli`.
* `sweep`: resumable grids of runs (one workdir per grid point, tables, seed means).
* `reproduce`: every measured number of REPRODUCTION.md, one module per section
  (`python -m hncl_jax.reproduce <section>`), and `reproduce.synthetic_grid`, the
  hard-negative paper's synthetic β grid, every run in one compiled program
  (`jax.vmap`), built from the trainer's own factories.
* `configs`: the shipped experiment configs (`get_config(arg)`), e.g.
  `from hncl_jax.configs import digits; digits.get_config("smoke")`.
* `main`, `benchmark`: the command lines (`python -m hncl_jax.main`, ...).
* `colab`: notebook set-up (installing without replacing a runtime's jax, GPU check).

The formulas and conventions are in docs/math.md, the layout in docs/architecture.md.
"""

import importlib

from hncl_jax import runtime as _runtime

__version__ = "0.1.0"

# XLA:CPU's flags must be in the environment before JAX starts its CPU backend, so they
# are set here, on import (see hncl_jax.runtime.configure_xla; no JAX import needed).
_runtime.configure_xla()

# Public modules, reachable as attributes (`hncl_jax.losses`) without their own import.
_MODULES = (
    "geometry",
    "hardening",
    "losses",
    "baselines",
    "layers",
    "models",
    "data",
    "evaluation",
    "train",
    "sweep",
    "reproduce",
    "configs",
    "main",
    "benchmark",
    "colab",
)
__all__ = [*_MODULES, "__version__"]


def __getattr__(name: str):
    # Loaded lazily: importing everything would cost seconds (JAX, Flax, TFDS) for a user
    # who only wants one module, and `colab` must import before jax is installed.
    if name in _MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULES])
