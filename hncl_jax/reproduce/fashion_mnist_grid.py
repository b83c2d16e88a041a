"""The Fashion-MNIST grid of REPRODUCTION.md's `fashion_mnist` section: its sizes, its
studies' runs (from the shipped configs), the resumable runner that trains them (here,
one run per GPU, or on SLURM) and `collect`, which reads the finished runs into the
section's results.

    from hncl_jax.reproduce import fashion_mnist_grid as grid
    grid.run("fashion_mnist", "runs/reproduce/fashion_mnist_tiny", size="tiny")
    results = grid.collect("fashion_mnist", "runs/reproduce/fashion_mnist_tiny", "tiny")

Runs go to `<root>/<study>/<run>` through `sweep`'s launchers, so rerunning skips
finished runs and resumes the others; on SLURM the warm starts wait for their sources'
jobs (job dependencies).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import ml_collections

from hncl_jax import geometry, sweep
from hncl_jax.configs import clop_fashion_mnist as clop_fashion_mnist_config
from hncl_jax.configs import fashion_mnist as fashion_mnist_config
from hncl_jax.reproduce import common
from hncl_jax.sweep import launchers
from hncl_jax.train import reporting

DATASETS = ("fashion_mnist",)
STUDIES = ("hn_supervised", "hn_unsupervised", "hn_warm_start", "clop")
BETAS = (2.0, 5.0, 10.0, 30.0)
WARM_START_FROM = 10.0  # the HSCL β whose model starts the Table 2 runs
# Run sizes. "cpu" is what the committed results were run at (a 2-core CPU, within two
# hours for the whole grid); "full" is the whole training set and longer training for a
# GPU; "tiny" checks the pipeline in tests.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        max_examples=192, model="tiny_cnn", width=None, depth=None, epochs=2, eval_every=1,
        batch=64, k=16, seeds=2, probe_epochs=5, clop_batches=(32,), clop_fractions=(0.5, 1.0),
    ),
    "cpu": dict(
        max_examples=8000, model="small_cnn", width=32, depth=1, epochs=6, eval_every=2,
        batch=256, k=256, seeds=3, probe_epochs=30, clop_batches=(32, 64, 128, 512),
        clop_fractions=(0.1, 0.5, 1.0),
    ),
    "full": dict(
        max_examples=None, model="small_cnn", width=32, depth=2, epochs=50, eval_every=5,
        batch=512, k=256, seeds=3, probe_epochs=100, clop_batches=(32, 64, 128, 512),
        clop_fractions=(0.1, 0.5, 1.0),
    ),
}  # fmt: skip
DEFAULT_SIZE = "cpu"

# The metrics kept per run (final values; curves keep those marked in CURVE_KEYS).
KEEP = re.compile(r"^(eval/|train/(epoch_loss|theorem_bound|loss_gap)$|nc/train/z/(?!class))")
CURVE_KEYS = (
    "train/epoch_loss",
    "eval/test/z/ncm_acc",
    "eval/test/z/knn5_acc",
    "nc/train/z/zero_sum",
    "nc/train/z/unit_norm",
    "nc/train/z/equal_inner_product",
    "nc/train/z/within_class_variance",
    "nc/train/z/dc_rank",
)


# --------------------------------------------------------------------------- configs
def set_model_and_data(c: ml_collections.ConfigDict, s: Mapping[str, Any]) -> None:
    """Sets a config's model (`model`, and `width` / `depth` where not None) and its
    training subset (`max_examples`) from a size's settings `s`."""
    c.model = s["model"]
    c.model_kwargs = ml_collections.ConfigDict()
    for option in ("width", "depth"):
        if s[option] is not None:
            c.model_kwargs[option] = s[option]
    c.dataset_kwargs.max_examples = s["max_examples"]


def _sized(c: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
    s = SIZES[size]
    set_model_and_data(c, s)
    c.num_epochs = s["epochs"]
    c.eval_every_epochs = s["eval_every"]
    c.checkpoint_every_epochs = s["epochs"]
    c.log_every_steps = 50
    c.probe_epochs = s["probe_epochs"]
    c.loss.k = s["k"]
    c.plots = False
    return c


def hn_config(size: str) -> ml_collections.ConfigDict:
    c = _sized(fashion_mnist_config.get_config(), size)
    c.batch_size = SIZES[size]["batch"]
    c.knn_k = (5,)
    # The grid's committed results were trained on resized-crop views; the shipped
    # config has since moved to shift-and-flip views, so the grid pins its own.
    c.views = "crop_flip"
    c.view_kwargs = ml_collections.ConfigDict({"crop_scale": (0.7, 1.0)})
    return c


def clop_config(size: str) -> ml_collections.ConfigDict:
    c = _sized(clop_fashion_mnist_config.get_config(), size)
    c.batch_size = SIZES[size]["batch"]
    return c


def _unsupervised(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    views = {"positives": "views", "augment": False, "view_kwargs.crop_scale": (0.35, 1.0)}
    return [{**p, **views} for p in points]


def _warm_start_plan(size: str, root: str) -> list:
    stage2 = [
        {"loss.name": "scl", "loss.beta": 0.0},
        {"loss.name": "hscl", "loss.beta": WARM_START_FROM},
        *_unsupervised([{"loss.name": "hucl", "loss.beta": 30.0}]),
    ]
    out = []
    for seed in range(SIZES[size]["seeds"]):
        source = {"loss.name": "hscl", "loss.beta": WARM_START_FROM, "seed": seed}
        base = hn_config(size)
        base.seed = seed
        base.init_from = os.path.join(root, "hn_supervised", sweep.run_name(source))
        out.append((base, stage2, os.path.join(root, "hn_warm_start", f"seed={seed}"), None))
    return out


def _clop_points(size: str) -> list[dict[str, Any]]:
    s = SIZES[size]
    points = []
    for frac in s["clop_fractions"]:
        for w in (0.0, 1.0):
            points.append({"loss.name": "nt_xent", "label_fraction": frac, "clop.weight": w})
    for batch in s["clop_batches"]:
        for w in (0.0, 1.0):
            points.append(
                {
                    "loss.name": "nt_xent",
                    "label_fraction": min(s["clop_fractions"]),
                    "clop.weight": w,
                    "batch_size": batch,
                }
            )
    for w in (0.0, 1.0):
        points.append({"loss.name": "supcon", "label_fraction": 1.0, "clop.weight": w})
    return points


def study_plan(
    study: str, size: str, root: str
) -> list[tuple[ml_collections.ConfigDict, list[dict[str, Any]], str, int | None]]:
    """The sweeps of one study: (base config, points, root of the runs, seeds) each."""
    seeds = SIZES[size]["seeds"]
    if study == "hn_supervised":
        sup = [{"loss.name": "scl", "loss.beta": 0.0}] + [
            {"loss.name": "hscl", "loss.beta": b} for b in BETAS
        ]
        return [(hn_config(size), sup, os.path.join(root, study), seeds)]
    if study == "hn_unsupervised":
        unsup = _unsupervised(
            [{"loss.name": "ucl", "loss.beta": 0.0}]
            + [{"loss.name": "hucl", "loss.beta": b} for b in BETAS]
        )
        return [(hn_config(size), unsup, os.path.join(root, study), seeds)]
    if study == "hn_warm_start":
        return _warm_start_plan(size, root)
    if study == "clop":
        return [(clop_config(size), _clop_points(size), os.path.join(root, study), seeds)]
    raise ValueError(f"unknown study={study!r}; expected one of {STUDIES}.")


# --------------------------------------------------------------------------- running
def plan(
    root: str, *, size: str = DEFAULT_SIZE, studies: Sequence[str] = STUDIES
) -> list[tuple[dict[str, Any], ml_collections.ConfigDict, str]]:
    """Every run of the studies, in order (a warm start after its source): `sweep`'s plan."""
    return plan_studies(study_plan, studies, size, root)


def plan_studies(
    plan_fn: Callable, studies: Sequence[str], size: str, root: str
) -> list[tuple[dict[str, Any], ml_collections.ConfigDict, str]]:
    """`sweep.plan_grid`'s (assignments, config, workdir) of every run that `plan_fn` (a
    section's `study_plan`) gives the studies, in order."""
    runs = []
    for study in studies:
        for base, points, study_root, seeds in plan_fn(study, size, root):
            runs += sweep.plan_grid(base, {}, study_root, points=points, seeds=seeds)
    return runs


def run(
    dataset: str,
    root: str,
    *,
    size: str = DEFAULT_SIZE,
    studies: Sequence[str] = STUDIES,
    launch: Mapping[str, Any] | None = None,
) -> dict[str, list[dict[str, Any]]] | None:
    """Trains the studies' runs (resumable) and returns their rows by study.

    `launch`: `sweep.launchers.launch`'s options (default: one run after another in this
    process). Every run's config is checked before the first one trains or is submitted;
    the warm starts' sources are runs of the plan, trained first, or on SLURM the warm
    starts' jobs wait for their sources' (`afterok`). Returns None while SLURM still holds
    runs (rerun the command, or pass `wait`).
    """
    check_args(dataset, size, studies)
    runs = plan(root, size=size, studies=studies)
    rows = launchers.launch(runs, root, **dict(launch or {}))
    if rows is None:
        return None
    by_study: dict[str, list[dict[str, Any]]] = {study: [] for study in studies}
    for r in rows:
        by_study[os.path.basename(os.path.dirname(r["workdir"]))].append(r)
    return by_study


def check_args(dataset, size, studies) -> None:
    """Raises ValueError, naming the option, for an unknown dataset, size or study."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}.")
    common.check_size_and_studies(size, SIZES, studies, STUDIES)


def run_record(
    study: str,
    assignments: Mapping[str, Any],
    workdir: str,
    curve_keys: Sequence[str] = CURVE_KEYS,
    keep: re.Pattern = KEEP,
) -> dict[str, Any]:
    """A finished run as the results keep it: its final metrics (those `keep` matches),
    its curve of `curve_keys` at every evaluated epoch, its DC spectrum and its seconds."""
    record = common.read_results(os.path.join(workdir, sweep.RESULT_FILE))
    final = {k: v for k, v in record["final"].items() if keep.match(k)}
    rows = reporting.read_metrics(workdir)
    # The training metrics logged at an evaluation's step join its point of the curve.
    train_at = {r["step"]: r for r in rows if "epoch" not in r and "step" in r}
    curve = []
    for r in rows:
        if "epoch" in r and any(k.startswith("nc/") for k in r):
            r = {**train_at.get(r.get("step"), {}), **r}
            curve.append({"epoch": r["epoch"], **{k: r[k] for k in curve_keys if k in r}})
    spectrum = sorted(
        (int(k.rsplit("/", 1)[1]), v)
        for k, v in record["final"].items()
        if k.startswith("nc/train/z/dc_spectrum/")
    )
    return {
        "study": study,
        "assignments": {k: sweep._json_value(v) for k, v in assignments.items()},
        "seed": int(record["config"].get("seed", 0)),
        "batch_size": int(record["config"]["batch_size"]),
        "seconds": record["seconds"],
        "final": final,
        "curve": curve,
        "dc_spectrum": [v for _, v in spectrum],
    }


def planned_runs(
    plan_fn: Callable, studies: Sequence[str], size: str, root: str
) -> Iterator[tuple[str, dict[str, Any], ml_collections.ConfigDict, str]]:
    """(study, assignments with the seed, config, workdir) of every run that `plan_fn`
    (a `study_plan`) gives the studies, in plan order."""
    for study in studies:
        for base, points, study_root, seeds in plan_fn(study, size, root):
            for assignments, config, workdir in sweep.plan_grid(
                base, {}, study_root, points=points, seeds=seeds
            ):
                if "seed" not in assignments:
                    assignments = {**assignments, "seed": int(base.seed)}
                yield study, assignments, config, workdir


def collect_runs(
    plan_fn: Callable,
    studies: Sequence[str],
    size: str,
    root: str,
    record: Callable[[str, dict[str, Any], ml_collections.ConfigDict, str], dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(runs, missing): `record(study, assignments, config, workdir)` of every finished
    run that `plan_fn` (a `study_plan`) gives the studies, and {study, assignments} of
    every unfinished one, in plan order."""
    runs, missing = [], []
    for study, assignments, config, workdir in planned_runs(plan_fn, studies, size, root):
        if os.path.exists(os.path.join(workdir, sweep.RESULT_FILE)):
            runs.append(record(study, assignments, config, workdir))
        else:
            missing.append({"study": study, "assignments": assignments})
    return runs, missing


def collect(dataset: str, root: str, size: str) -> dict[str, Any]:
    """Reads every finished run of the grid into one results dict (missing runs listed)."""
    runs, missing = collect_runs(
        study_plan, STUDIES, size, root, lambda study, a, _, w: run_record(study, a, w)
    )
    env = common.environment()
    return {
        "dataset": dataset,
        "size": size,
        "size_settings": {k: v for k, v in SIZES[size].items()},
        "machine": env["machine"],
        "versions": env["versions"],
        "theorem2_bound": geometry.scl_lower_bound(10, SIZES[size]["k"]),
        "command": f"python -m hncl_jax.reproduce {dataset} --size={size}",
        "written": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "missing": missing,
    }
