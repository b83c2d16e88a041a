"""The runs of REPRODUCTION.md's `fashion_mnist_convergence` section: the hard-negative
paper's Figs. 3-4 and Table 2 trained until the geometry settles, on Fashion-MNIST.

    from hncl_jax.reproduce import convergence_grid as grid
    grid.run("runs/reproduce/fashion_mnist_convergence_tiny", size="tiny")
    results = grid.collect("runs/reproduce/fashion_mnist_convergence_tiny", "tiny")

The recipe is the paper's for its Figs. 3-4 in every setting: label positives (the
positive is another example of the anchor's class, also for UCL / HUCL, whose negatives
are drawn from the whole batch), no augmentation, the unit ball, a constant Adam learning
rate, k = 256 negatives per anchor. Its "cpu" size trains the small CNN (width 32, one
convolution per stage, d = C − 1 = 9) on 2,000 training images drawn at random (about
200 per class; the test split is 2,000 of the 10,000 test images) for 200 epochs of 7
steps, which a 2-core CPU trains in about 7 minutes a run.

Studies, each resumable and written to the results as it finishes:

* `supervised` [HN Fig. 3, Fig. 4 left]: SCL, HSCL β ∈ {5, 10}.
* `unsupervised` [HN Fig. 3, Fig. 4 right]: UCL, HUCL β ∈ {5, 30}, label positives.
* `warm_start` [HN Table 2]: from each seed's converged HSCL β = 10 model, a fresh Adam
  for `warm_epochs` more epochs under SCL, HSCL β = 10, UCL and HUCL β ∈ {10, 30}.
* `variants` [HN §5.5, §5.7]: SCL and HSCL β = 10 on the unit sphere and without
  normalization, and HSCL with polynomial hardening (ε = 10) on the unit ball; the
  `supervised` study's unit-ball runs are their reference.
* `batch` [HN §5.6, App. B.3]: HSCL β = 10 at batch 64 and 32, β = 30 at 32, the same number of
  epochs (so 4 and 8 times the steps) and the same k = 256 negatives per anchor, drawn
  with replacement from the smaller batch; the `supervised` study's HSCL β = 10 at the
  size's batch is their reference.
* `simclr` [HN App. B.5, Figs. 12-13]: SimCLR sampling (the positive is a second
  augmented view of the anchor's image, no label used) under InfoNCE (UCL, k = 256) and
  under the SimCLR-form loss of eq. 42 (Q = batch − 2).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from hncl_jax import geometry, losses, sweep
from hncl_jax.configs import fashion_mnist as fashion_mnist_config
from hncl_jax.reproduce import common
from hncl_jax.reproduce import fashion_mnist_grid as fm_grid
from hncl_jax.sweep import launchers

STUDIES = ("supervised", "warm_start", "unsupervised", "variants", "batch", "simclr")
WARM_START_FROM = 10.0  # the HSCL β whose converged model starts the Table 2 runs
VARIANT_BETA = 10.0  # the HSCL β of the normalization variants [HN §5.5]
POLYNOMIAL_EPSILON = 10.0  # ε of the polynomial hardening, one of the paper's 3, 5, 10, 20
# HN App. B.3 (Figs. 8, 9): at batch 64 HSCL β ∈ {5, 10, 30} is nearly at NC, at batch 32
# only β = 30 is; the `batch` study's (batch, β) points test both statements.
SMALL_BATCH_POINTS = ((64, 10.0), (32, 10.0), (32, 30.0))
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        max_examples=192, model="tiny_cnn", width=None, depth=None, epochs=4, eval_every=2,
        warm_epochs=2, batch=64, k=16, seeds=2, probe_epochs=5,
    ),
    "cpu": dict(
        max_examples=2000, model="small_cnn", width=32, depth=1, epochs=200, eval_every=25,
        warm_epochs=30, batch=256, k=256, seeds=2, probe_epochs=30,
    ),
    "full": dict(
        max_examples=None, model="small_cnn", width=32, depth=2, epochs=300, eval_every=25,
        warm_epochs=100, batch=512, k=256, seeds=3, probe_epochs=100,
    ),
}  # fmt: skip
DEFAULT_SIZE = "cpu"

# Beyond the Fashion-MNIST grid's curve: the test split's NC, and the hard-negative
# sampler's diagnostics (the paper explains its §5.4 by latent-class collision).
CURVE_KEYS = fm_grid.CURVE_KEYS + (
    "nc/train/z/rankme",
    "nc/test/z/zero_sum",
    "nc/test/z/within_class_variance",
    "nc/test/z/dc_rank",
    "train/loss_gap",
    "train/hn_collision",
    "train/hn_ess_fraction",
)


# The final metrics kept: the Fashion-MNIST grid's, and the test split's NC as well.
KEEP = re.compile(
    r"^(eval/|train/(epoch_loss|theorem_bound|loss_gap)$|nc/(train|test)/z/(?!class))"
)


def base_config(size: str) -> ml_collections.ConfigDict:
    """The recipe at `size`: label positives, no augmentation, constant Adam 1e-3."""
    s = SIZES[size]
    c = fashion_mnist_config.get_config()
    fm_grid.set_model_and_data(c, s)
    c.positives = "labels"
    c.augment = False
    c.normalization = "unit_ball"
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.schedule = "constant"
    c.batch_size = s["batch"]
    c.loss.k = s["k"]
    c.num_epochs = s["epochs"]
    c.eval_every_epochs = s["eval_every"]
    c.checkpoint_every_epochs = s["eval_every"]
    c.log_every_steps = 50
    c.knn_k = (5,)
    c.probe_epochs = s["probe_epochs"]
    c.plots = False
    return c


def _points(name: str, betas: Sequence[float]) -> list[dict[str, Any]]:
    base = "scl" if name == "hscl" else "ucl"
    return [{"loss.name": base, "loss.beta": 0.0}] + [
        {"loss.name": name, "loss.beta": float(b)} for b in betas
    ]


def variant_points() -> list[dict[str, Any]]:
    """The `variants` study's points: [HN §5.5] the other two normalizations for SCL and
    HSCL, then [HN §5.7] HSCL with polynomial hardening max(t + 1, 0)^ε."""
    points = [
        {"normalization": norm, **p}
        for norm in ("unit_sphere", "none")
        for p in _points("hscl", (VARIANT_BETA,))
    ]
    return points + [
        {
            "loss.name": "hscl",
            "loss.beta": 0.0,  # polynomial hardening reads ε, not β
            "loss.hardening": "polynomial",
            "loss.epsilon": POLYNOMIAL_EPSILON,
        }
    ]


def batch_points() -> list[dict[str, Any]]:
    """The `batch` study's points [HN §5.6]: HSCL at each (batch, β) of
    `SMALL_BATCH_POINTS`."""
    return [
        {"batch_size": b, "loss.name": "hscl", "loss.beta": beta} for b, beta in SMALL_BATCH_POINTS
    ]


def simclr_points() -> list[dict[str, Any]]:
    """The `simclr` study's points [HN App. B.5]: two augmented views of one image as the
    positive pair, under InfoNCE (Fig. 13) and under the SimCLR-form loss (Fig. 12; it
    weighs the mean over all the batch's negatives, so the recipe's k is not read and the
    trainer says so with an IgnoredOptionWarning)."""
    return [
        {"positives": "views", "loss.name": name, "loss.beta": 0.0}
        for name in ("ucl", "simclr_form")
    ]


def views_of(size: str) -> dict[str, Any]:
    """The `simclr` study's views: their kind and options, as its runs train them."""
    c = base_config(size)
    return {"views": c.views, **c.view_kwargs.to_dict()}


def _source(size: str, root: str, seed: int) -> str:
    point = {"loss.name": "hscl", "loss.beta": WARM_START_FROM, "seed": seed}
    return os.path.abspath(os.path.join(root, "supervised", sweep.run_name(point)))


def study_plan(
    study: str, size: str, root: str
) -> list[tuple[ml_collections.ConfigDict, list[dict[str, Any]], str, int | None]]:
    """The sweeps of one study: (base config, points, root of the runs, seeds) each."""
    seeds = SIZES[size]["seeds"]
    if study == "supervised":
        return [(base_config(size), _points("hscl", (5.0, 10.0)), os.path.join(root, study), seeds)]
    if study == "unsupervised":
        return [(base_config(size), _points("hucl", (5.0, 30.0)), os.path.join(root, study), seeds)]
    if study == "variants":
        return [(base_config(size), variant_points(), os.path.join(root, study), seeds)]
    if study == "batch":
        return [(base_config(size), batch_points(), os.path.join(root, study), seeds)]
    if study == "simclr":
        return [(base_config(size), simclr_points(), os.path.join(root, study), seeds)]
    if study == "warm_start":
        stage2 = [
            {"loss.name": "scl", "loss.beta": 0.0},
            {"loss.name": "hscl", "loss.beta": WARM_START_FROM},
            {"loss.name": "ucl", "loss.beta": 0.0},
            {"loss.name": "hucl", "loss.beta": 10.0},
            {"loss.name": "hucl", "loss.beta": 30.0},
        ]
        out = []
        for seed in range(seeds):
            base = base_config(size)
            base.seed = seed
            base.num_epochs = SIZES[size]["warm_epochs"]
            base.eval_every_epochs = base.checkpoint_every_epochs = max(1, base.num_epochs // 3)
            base.init_from = _source(size, root, seed)
            out.append((base, stage2, os.path.join(root, study, f"seed={seed}"), None))
        return out
    raise ValueError(f"unknown study={study!r}; expected one of {STUDIES}.")


def plan(
    root: str, *, size: str = DEFAULT_SIZE, studies: Sequence[str] = STUDIES
) -> list[tuple[dict[str, Any], ml_collections.ConfigDict, str]]:
    """Every run of the studies, in order; a warm start's source comes first (a warm start
    without `supervised` in `studies` needs that study's runs finished)."""
    return fm_grid.plan_studies(study_plan, studies, size, root)


def check_args(size: str, studies: Sequence[str]) -> None:
    """Raises ValueError, naming the option, for an unknown size or study."""
    common.check_size_and_studies(size, SIZES, studies, STUDIES)


def _check_sources(size: str, root: str, studies: Sequence[str]) -> None:
    if "warm_start" not in studies or "supervised" in studies:
        return
    for seed in range(SIZES[size]["seeds"]):
        src = _source(size, root, seed)
        if not os.path.exists(os.path.join(src, sweep.RESULT_FILE)):
            raise ValueError(
                f"--studies=warm_start starts from {src}, which has not finished; "
                "add the study 'supervised' (it trains the sources first)."
            )


def run(
    root: str,
    *,
    size: str = DEFAULT_SIZE,
    studies: Sequence[str] = STUDIES,
    launch: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]] | None:
    """Trains the studies' runs (resumable; `launch`: `sweep.launchers.launch`'s options)
    and returns their table rows; None while SLURM still holds runs."""
    check_args(size, studies)
    _check_sources(size, root, studies)
    return launchers.launch(plan(root, size=size, studies=studies), root, **dict(launch or {}))


def nc_value(setting: str, beta: float, num_classes: int) -> float:
    """The reweighted (k → ∞, InfoNCE mean form) loss at exact Neural Collapse with equal
    class sizes: log(1 + E_q e^t).

    SCL/HSCL: every candidate is of another class (t = −C/(C−1)), so the value is Theorem
    2's minimum log(1 + e^{−C/(C−1)}) for every β. UCL/HUCL: a candidate is of the
    anchor's class (s = 1, t = 0) with probability 1/C, else t = −C/(C−1) at s = −1/(C−1);
    the hardening tilts q by e^{βs}. At β = 0 this is the k → ∞ limit of Theorem 3's
    minimum (`geometry.ucl_reweighted_limit`); for β > 0 it is HUCL's value at NC, which
    the paper does not prove minimal.
    """
    c = num_classes
    t_other = -c / (c - 1)
    if setting in ("scl", "hscl"):
        return math.log1p(math.exp(t_other))
    beta = 0.0 if setting == "ucl" else float(beta)
    w_same = math.exp(beta) / c
    w_other = (c - 1) / c * math.exp(-beta / (c - 1))
    return math.log1p((w_same + w_other * math.exp(t_other)) / (w_same + w_other))


def reweighted_losses(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """A finished run's final model scored by the deterministic reweighted estimator on
    its whole training split (every anchor, its class as positives, every candidate
    weighted by the hardening), so that no sampling noise enters [HN Table 1]:

    * `eval/train/z/reweighted_gap`: the run's own loss (its setting and β) minus that
      loss's value at Neural Collapse (`nc_value`; Theorem 2's minimum for SCL/HSCL);
    * `eval/train/z/reweighted_scl_gap`: the SCL loss (β = 0) minus Theorem 2's minimum,
      one yardstick for every model;
    * `train_class_counts`: the examples of each class in the training split (a random
      subset is not exactly balanced, and NC's simplex is the minimum for equal classes).

    Without normalization the losses have no minimum (scaling z lowers them towards 0),
    so such a run gets its class counts only. A run whose own loss has no value at NC
    here (views as positives, or the SimCLR-form loss) gets the SCL yardstick alone.
    """
    _, z, labels = sweep.restore_representations(config, workdir, "train")
    num_classes = int(labels.max()) + 1
    counts = np.bincount(np.asarray(labels), minlength=num_classes).tolist()
    if config.normalization == "none":
        return {"train_class_counts": counts}
    loss = config.loss
    common_args = dict(
        estimator="reweighted", positive_ids=labels, self_positive=True, reduction=loss.reduction
    )
    scl = losses.contrastive_loss(z, labels, setting="scl", **common_args)
    out = {
        "train_class_counts": counts,
        "eval/train/z/reweighted_scl_gap": float(np.asarray(scl))
        - nc_value("scl", 0.0, num_classes),
    }
    if config.positives != "labels" or loss.name not in losses.SETTINGS:
        return out
    own = losses.contrastive_loss(
        z,
        labels,
        setting=loss.name,
        beta=float(loss.beta),
        hardening=loss.hardening,
        epsilon=float(loss.epsilon),
        exclude_anchor=bool(loss.exclude_anchor),
        **common_args,
    )
    out["eval/train/z/reweighted_gap"] = float(np.asarray(own)) - nc_value(
        loss.name, loss.beta, num_classes
    )
    return out


def collect(root: str, size: str) -> dict[str, Any]:
    """Reads every finished run into one results dict (the unfinished ones listed)."""

    def record(study, assignments, config, workdir):
        out = fm_grid.run_record(study, assignments, workdir, CURVE_KEYS, KEEP)
        scores = reweighted_losses(config, workdir)
        out["train_class_counts"] = scores.pop("train_class_counts")
        out["final"].update(scores)
        return out

    runs, missing = fm_grid.collect_runs(study_plan, STUDIES, size, root, record)
    env = common.environment()
    return {
        "dataset": "fashion_mnist",
        "size": size,
        "size_settings": dict(SIZES[size]),
        "machine": env["machine"],
        "versions": env["versions"],
        "theorem2_bound": geometry.scl_lower_bound(10, SIZES[size]["k"]),
        "simclr_views": views_of(size),
        "command": common.command("fashion_mnist_convergence", size, DEFAULT_SIZE),
        "written": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "missing": missing,
    }
