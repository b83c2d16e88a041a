"""Every measured number of REPRODUCTION.md: each section's computation, its results
file, and its generated block of the document.

    python -m hncl_jax.reproduce <section>              # compute (resumable), write results
    python -m hncl_jax.reproduce <section> --write_doc  # regenerate the block from the file

One module per section (`SECTIONS`, loaded by `section(name)`), each written to
`results/<section>.json` and rendered between `<!-- BEGIN generated:<section> -->` and
`<!-- END generated:<section> -->`:

* `theory` [HN Thm 1-3]: the minima, the library's losses at Neural Collapse, Theorem 1
  by exact enumeration, the sampled estimator against the exact expectation.
* `hn_synthetic` [HN §5.1, Fig. 2]: the synthetic grid (`synthetic_grid.train_grid`, an
  MLP, cached in its workdir), its HSCL β = 10 run through the trainer, and a quick
  ResNet-18 on the vectors reshaped to 32×32×3.
* `near_nc` [HN Table 2]: the near-NC warm start on the HN synthetic set.
* `clop_theory` [CLOP Thm 1, §3, Figs. 3-4]: the learning-rate bound, the gradient-descent
  experiment and the largest non-collapsing learning rate by bisection.
* `clop_synthetic` [CLOP §5, App. B Table 3]: the synthetic generator's free choices
  (directions, radius, noise as variance or standard deviation, label fraction) with
  and without CLOP, then every loss at the setting closest to the paper's.
* `fashion_mnist` [HN Figs. 3-4, Tables 1-2; CLOP Fig. 6, Table 1]: the real-image
  claims on Fashion-MNIST, a grid of runs over seeds (`fashion_mnist_grid`), written to
  `results/fashion_mnist_<size>.json`, with its figures.
* `fashion_mnist_convergence` [HN Figs. 3-4, Tables 1-2]: the same claims trained until
  the geometry settles (label positives in all four settings, no augmentation, constant
  Adam, 200 epochs on 2,000 images; `convergence_grid`), with each final model's loss by
  the deterministic reweighted estimator.
* `fashion_mnist_clop` [CLOP Figs. 6-7, Table 1, §4]: CLOP under LARS on Fashion-MNIST:
  the learning-rate sweep with and without CLOP, the λ ablation, orthonormal against
  simplex-ETF prototypes, and the batch size at lr = 0.3·B/256, collapse measured by
  accuracy and by the DC spectrum / RankMe.

A section module has the same names as every other: `NAME`, `SIZES` (its run sizes;
`--size=tiny` runs it small, for tests), `DEFAULT_SIZE`, `results_path(size)`,
`compute(root, size, ...)` (trains or computes, resumable where it trains; returns the
results dict the command writes), `render(results)` (its block, markers included, from
the results alone), its paper constants and verdict rules at its top, and, where it has
them, `figures(results, out_dir)` and its own command-line options (`add_arguments`,
`options`). A new section is one new module and one line of `SECTIONS`. What the
sections share (the results files and blocks, the machine record and header, the grid
runner of the trained sections, the rule for a printed value) is in `common`; the
trained sections run through `sweep.run_grid` (one workdir per run under
`runs/reproduce/<section>`, so a rerun skips finished runs and resumes the others).

References:
  [HN] Jiang et al., "Hard-Negative Sampling for Contrastive Learning: Optimal
  Representation Geometry and Neural- vs Dimensional-Collapse" (earlier version:
  arXiv:2209.00078), Thm 1-3, §5, Figs. 2-4, Tables 1-2.
  [CLOP] Li, Nguyen and Pimentel-Alarcón, "Preventing Collapse in Contrastive Learning
  with Orthonormal Prototypes (CLOP)" (arXiv:2403.18699), Thm 1, §3, §5, Figs. 3-6,
  Table 1, App. B Table 3, App. D.
  Xiao, Rasul and Vollgraf, "Fashion-MNIST", arXiv:1708.07747.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The sections of REPRODUCTION.md, in the document's order: the module
# `hncl_jax.reproduce.<name>` of each.
SECTIONS = (
    "theory",
    "hn_synthetic",
    "near_nc",
    "clop_theory",
    "clop_synthetic",
    "fashion_mnist",
    "fashion_mnist_convergence",
    "fashion_mnist_clop",
)


def section(name: str) -> ModuleType:
    """The module of section `name` (one of `SECTIONS`), imported on first use."""
    if name not in SECTIONS:
        raise ValueError(f"unknown section {name!r}; expected one of {SECTIONS}.")
    return importlib.import_module(f"{__name__}.{name}")
