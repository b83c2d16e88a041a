"""Every measured number of REPRODUCTION.md: each section's computation, its results
file, and its generated block of the document.

    python -m hncl_jax.reproduce <section>              # compute (resumable), write results
    python -m hncl_jax.reproduce <section> --write_doc  # regenerate the block from the file

Sections (`SECTIONS`), each written to `results/<section>.json` and rendered between
`<!-- BEGIN generated:<section> -->` and `<!-- END generated:<section> -->`:

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
* `fashion_mnist`: the real-image claims on Fashion-MNIST (below).

The trained sections run through `sweep.run_grid` (one workdir per run under
`runs/reproduce/<section>`, so a rerun skips finished runs and resumes the others); the
paper values are constants here with their source; every verdict is computed from the
numbers by the rule its section states. `--size=tiny` runs a section small (tests).

The Fashion-MNIST section:

    python -m hncl_jax.reproduce fashion_mnist                  # train (resumable), write results
    python -m hncl_jax.reproduce fashion_mnist --write_doc      # regenerate REPRODUCTION.md

The grid (every run from the shipped configs `configs/fashion_mnist.py` and
`configs/clop_fashion_mnist.py`, at the size `--size` names, each row over `seeds`):

* `hn_supervised` [HN Fig. 3 / Table 1]: SCL and HSCL β ∈ {2, 5, 10, 30}, label
  positives: test NCM / kNN / linear-probe accuracy, the NC metrics against epochs, the
  final loss against the Theorem 2 minimum for C = 10.
* `hn_unsupervised` [HN Fig. 4 / §5.3]: UCL and HUCL β ∈ {2, 5, 10, 30}, view positives
  (two crop-and-flip views): the same metrics and the DC spectrum.
* `hn_warm_start` [HN Table 2]: from each seed's HSCL β = 10 model of `hn_supervised`
  (near NC), the same number of epochs again under SCL, HSCL β = 10 and HUCL β = 30.
* `clop` [CLOP Fig. 6 / Table 1]: NT-Xent with and without the CLOP term at 10 %, 50 %
  and 100 % labels at batch 256 and at batches 32, 64, 128 and 512 with 10 % labels,
  and SupCon with and without it: kNN-5 and linear-probe top-1, both fitted on the
  labelled examples.

Runs go to `<root>/<study>/<run>` through `sweep.run_grid`, so rerunning the command
skips finished runs and resumes the others; `--shard=i/n` trains every n-th run of each
study (two processes on two cores). The results (final metrics, curves against
epochs, seconds per run, machine and versions) are written to
`results/fashion_mnist_<size>.json`, and the Fashion-MNIST section of REPRODUCTION.md
and its figures are generated from that file alone (`--write_doc`); a test checks that
the committed section equals what the committed results give.

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

import json
import math
import os
import platform
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from hncl_jax import geometry, sweep
from hncl_jax.train import reporting

DATASETS = ("fashion_mnist",)
STUDIES = ("hn_supervised", "hn_unsupervised", "hn_warm_start", "clop")
BETAS = (2.0, 5.0, 10.0, 30.0)
WARM_START_FROM = 10.0  # the HSCL β whose model starts the Table 2 runs
RESULTS_DIR = "results"
DOC = "REPRODUCTION.md"
BEGIN = "<!-- BEGIN generated:fashion_mnist -->"
END = "<!-- END generated:fashion_mnist -->"

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
def _sized(c: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
    s = SIZES[size]
    c.model = s["model"]
    c.model_kwargs = ml_collections.ConfigDict()
    for option in ("width", "depth"):
        if s[option] is not None:
            c.model_kwargs[option] = s[option]
    c.dataset_kwargs.max_examples = s["max_examples"]
    c.num_epochs = s["epochs"]
    c.eval_every_epochs = s["eval_every"]
    c.checkpoint_every_epochs = s["epochs"]
    c.log_every_steps = 50
    c.probe_epochs = s["probe_epochs"]
    c.loss.k = s["k"]
    c.plots = False
    return c


def hn_config(size: str) -> ml_collections.ConfigDict:
    from hncl_jax.configs import fashion_mnist

    c = _sized(fashion_mnist.get_config(), size)
    c.batch_size = SIZES[size]["batch"]
    c.knn_k = (5,)
    # The grid's committed results were trained on resized-crop views; the shipped
    # config has since moved to shift-and-flip views, so the grid pins its own.
    c.views = "crop_flip"
    c.view_kwargs = ml_collections.ConfigDict({"crop_scale": (0.7, 1.0)})
    return c


def clop_config(size: str) -> ml_collections.ConfigDict:
    from hncl_jax.configs import clop_fashion_mnist

    c = _sized(clop_fashion_mnist.get_config(), size)
    c.batch_size = SIZES[size]["batch"]
    return c


def _unsupervised(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    views = {"positives": "views", "augment": False, "view_kwargs.crop_scale": (0.35, 1.0)}
    return [{**p, **views} for p in points]


def study_plan(
    study: str, size: str, root: str
) -> list[tuple[ml_collections.ConfigDict, list[dict[str, Any]], str, int | None]]:
    """The sweeps of one study: (base config, points, root of the runs, seeds) each."""
    seeds = SIZES[size]["seeds"]
    sup = [{"loss.name": "scl", "loss.beta": 0.0}] + [
        {"loss.name": "hscl", "loss.beta": b} for b in BETAS
    ]
    unsup = _unsupervised(
        [{"loss.name": "ucl", "loss.beta": 0.0}]
        + [{"loss.name": "hucl", "loss.beta": b} for b in BETAS]
    )
    if study == "hn_supervised":
        return [(hn_config(size), sup, os.path.join(root, study), seeds)]
    if study == "hn_unsupervised":
        return [(hn_config(size), unsup, os.path.join(root, study), seeds)]
    if study == "hn_warm_start":
        stage2 = [
            {"loss.name": "scl", "loss.beta": 0.0},
            {"loss.name": "hscl", "loss.beta": WARM_START_FROM},
            *_unsupervised([{"loss.name": "hucl", "loss.beta": 30.0}]),
        ]
        out = []
        for seed in range(seeds):
            source = {"loss.name": "hscl", "loss.beta": WARM_START_FROM, "seed": seed}
            base = hn_config(size)
            base.seed = seed
            base.init_from = os.path.join(root, "hn_supervised", sweep.run_name(source))
            out.append((base, stage2, os.path.join(root, study, f"seed={seed}"), None))
        return out
    if study == "clop":
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
        return [(clop_config(size), points, os.path.join(root, study), seeds)]
    raise ValueError(f"unknown study={study!r}; expected one of {STUDIES}.")


# --------------------------------------------------------------------------- running
def _shard(plan: list, shard: tuple[int, int]) -> list:
    i, n = shard
    return [p for j, p in enumerate(plan) if j % n == i]


def run(
    dataset: str,
    root: str,
    *,
    size: str = "cpu",
    studies: Sequence[str] = STUDIES,
    shard: tuple[int, int] = (0, 1),
) -> dict[str, list[dict[str, Any]]]:
    """Trains the studies' runs (resumable) and returns their rows by study."""
    from hncl_jax import train

    _check_args(dataset, size, studies, shard)
    rows: dict[str, list[dict[str, Any]]] = {}
    # Check every run's config before the first one trains. The warm starts' sources are
    # runs of this grid, trained first, so their existence is checked when they start.
    for study in studies:
        for base, points, study_root, seeds in study_plan(study, size, root):
            base = sweep.apply_assignments(base, {"init_from": ""})
            sweep.check_plan(sweep.plan_grid(base, {}, study_root, points=points, seeds=seeds))
    for study in studies:
        rows[study] = []
        for base, points, study_root, seeds in study_plan(study, size, root):
            plan = sweep.plan_grid(base, {}, study_root, points=points, seeds=seeds)
            mine = [a for a, _, _ in _shard(plan, shard)]
            if mine and base.init_from:
                _wait_for_source(base.init_from, sharded=shard[1] > 1)
            if mine:
                rows[study] += sweep.run_grid(
                    base,
                    {},
                    study_root,
                    points=mine,
                    train_fn=train.train_and_evaluate,
                    validate=False,
                )
    return rows


def _wait_for_source(workdir: str, *, sharded: bool, timeout_s: float = 4 * 3600) -> None:
    """Waits until the warm start's source run has finished (another shard may be
    training it); without shards a missing source is an error at once."""
    done = os.path.join(workdir, sweep.RESULT_FILE)
    if os.path.exists(done):
        return
    if not sharded:
        raise FileNotFoundError(
            f"the warm start needs the finished run {workdir}; run the hn_supervised study "
            "first (--studies=hn_supervised,hn_warm_start)."
        )
    print(f"[reproduce] waiting for {workdir} (trained by another shard)", flush=True)
    start = time.monotonic()
    while not os.path.exists(done):
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{workdir} did not finish within {timeout_s:.0f} s.")
        time.sleep(10)


def _check_args(dataset, size, studies, shard) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}.")
    if size not in SIZES:
        raise ValueError(f"unknown --size={size!r}; expected one of {tuple(SIZES)}.")
    bad = [s for s in studies if s not in STUDIES]
    if bad:
        raise ValueError(f"unknown --studies {bad}; expected some of {STUDIES}.")
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard={i}/{n} must be i/n with 0 <= i < n.")


def _run_record(study: str, assignments: Mapping[str, Any], workdir: str) -> dict[str, Any]:
    with open(os.path.join(workdir, sweep.RESULT_FILE)) as fh:
        record = json.load(fh)
    final = {k: v for k, v in record["final"].items() if KEEP.match(k)}
    curve = []
    for r in reporting.read_metrics(workdir):
        if "epoch" in r and any(k.startswith("nc/") for k in r):
            curve.append({"epoch": r["epoch"], **{k: r[k] for k in CURVE_KEYS if k in r}})
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


def collect(dataset: str, root: str, size: str) -> dict[str, Any]:
    """Reads every finished run of the grid into one results dict (missing runs listed)."""

    runs, missing = [], []
    for study in STUDIES:
        for base, points, study_root, seeds in study_plan(study, size, root):
            for assignments, _, workdir in sweep.plan_grid(
                base, {}, study_root, points=points, seeds=seeds
            ):
                if "seed" not in assignments:
                    assignments = {**assignments, "seed": int(base.seed)}
                if os.path.exists(os.path.join(workdir, sweep.RESULT_FILE)):
                    runs.append(_run_record(study, assignments, workdir))
                else:
                    missing.append({"study": study, "assignments": assignments})
    env = _environment()
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


def results_path(dataset: str, size: str, repo: str | None = None) -> str:
    """`results/<dataset>_<size>.json`, under `repo` when given."""
    name = os.path.join(RESULTS_DIR, f"{dataset}_{size}.json")
    return os.path.join(repo, name) if repo else name


# --------------------------------------------------------------------------- report
def _label(a: Mapping[str, Any]) -> str:
    name = a["loss.name"]
    beta = a.get("loss.beta")
    text = {"scl": "SCL", "ucl": "UCL", "nt_xent": "NT-Xent", "supcon": "SupCon"}.get(name)
    if text is None:
        text = f"{name.upper()} β = {beta:g}"
    return text


def _groups(runs: Sequence[Mapping[str, Any]], study: str) -> list[dict[str, Any]]:
    """Mean ± std over seeds of each setting of a study, in the order of the plan."""
    rows = []
    for r in runs:
        if r["study"] != study:
            continue
        a = {k: v for k, v in r["assignments"].items() if k != "seed"}
        if study == "clop":
            a.setdefault("batch_size", r["batch_size"])
        rows.append({"key": json.dumps(a, sort_keys=True), "seed": r["seed"], **r["final"]})
    return sweep.aggregate(rows, keys=["key"])


def _ms(g: Mapping[str, Any], key: str, digits: int = 3) -> str:
    if key not in g:
        return "—"
    return sweep.format_mean_std(g[key], g.get(f"{key}_std"), digits)


def compare(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> tuple[float, float]:
    """(mean of b − mean of a, its standard error) over seeds."""
    se = math.sqrt(
        a.get(f"{key}_std", 0.0) ** 2 / max(a["n"], 1)
        + b.get(f"{key}_std", 0.0) ** 2 / max(b["n"], 1)
    )
    return b[key] - a[key], se


def _verdict(diff: float, se: float, *, higher_is: str, lower_is: str) -> str:
    if abs(diff) <= 2 * se:
        return f"within noise (difference {diff:+.3g} ± {se:.2g} s.e.)"
    word = higher_is if diff > 0 else lower_is
    return f"{word} (difference {diff:+.3g} ± {se:.2g} s.e.)"


def _settings(groups: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(_label(json.loads(g["key"])), g) for g in groups]


def _table(
    groups: Sequence[tuple[str, Mapping[str, Any]]], columns: Sequence[tuple[str, str, int]]
) -> str:
    if not groups:
        return "Not run: no finished run of this study is in the results file."
    head = "| setting | seeds | " + " | ".join(c[0] for c in columns) + " |"
    lines = [head, "|" + " --- |" * (len(columns) + 2)]
    for label, g in groups:
        cells = [_ms(g, key, d) for _, key, d in columns]
        lines.append(f"| {label} | {g['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


ACC = [
    ("NCM (z)", "eval/test/z/ncm_acc", 3),
    ("kNN-5 (z)", "eval/test/z/knn5_acc", 3),
    ("probe (z)", "eval/test/z/probe_top1", 3),
    ("probe (h)", "eval/test/h/probe_top1", 3),
]
NC = [
    ("zero-sum", "nc/train/z/zero_sum", 3),
    ("unit-norm", "nc/train/z/unit_norm", 3),
    ("equal inner-product", "nc/train/z/equal_inner_product", 3),
    ("within-class var.", "nc/train/z/within_class_variance", 3),
    ("DC rank (of 9)", "nc/train/z/dc_rank", 1),
]


def _hn_claims(sup: list, unsup: list, bound: float) -> list[str]:
    out = []
    if not sup:
        return ["| hardening raises accuracy, brings NC (Fig. 3) | not run |"]
    scl, hscl = sup[0][1], sup[1:]
    for label, key, more in (
        ("linear-probe accuracy (z)", "eval/test/z/probe_top1", "higher"),
        ("NCM accuracy (z)", "eval/test/z/ncm_acc", "higher"),
    ):
        parts = []
        for name, g in hscl:
            if key in g and key in scl:
                parts.append(
                    f"{name}: " + _verdict(*compare(scl, g, key), higher_is=more, lower_is="lower")
                )
        out.append(
            f"| HSCL has higher {label} than SCL [HN Fig. 3, Table 1] | {'; '.join(parts)} |"
        )
    for label, key in (
        ("zero-sum", "nc/train/z/zero_sum"),
        ("equal inner-product", "nc/train/z/equal_inner_product"),
    ):
        parts = []
        for name, g in hscl:
            if key in g and key in scl:
                parts.append(
                    f"{name}: "
                    + _verdict(
                        *compare(scl, g, key), higher_is="farther from NC", lower_is="closer to NC"
                    )
                )
        out.append(f"| HSCL is closer to NC than SCL ({label}) [HN Fig. 3] | {'; '.join(parts)} |")
    gaps = [(name, g) for name, g in sup if "train/loss_gap" in g]
    if gaps:
        above = all(
            g["train/loss_gap"] - 2 * g.get("train/loss_gap_std", 0) >= -1e-6 for _, g in gaps
        )
        text = ", ".join(f"{n}: {_ms(g, 'train/loss_gap', 3)}" for n, g in gaps)
        out.append(
            f"| the final loss stays above the Thm 2 minimum {bound:.4f} [HN Thm 2] | "
            f"{'holds' if above else 'violated'}: gap (final epoch loss − "
            f"minimum) {text} |"
        )
    if unsup:
        ucl = unsup[0][1]
        key = "nc/train/z/dc_rank"
        parts = [
            f"{n}: rank {_ms(g, key, 1)}"
            + (
                " ("
                + _verdict(*compare(ucl, g, key), higher_is="higher", lower_is="lower than UCL")
                + ")"
                if key in g and key in ucl
                else ""
            )
            for n, g in unsup
        ]
        out.append(
            "| HUCL at large β collapses dimensions (DC) [HN Fig. 4, §5.3] | "
            + "; ".join(parts)
            + " |"
        )
    return out


def _warm_claims(warm: list, start: Mapping[str, Any] | None) -> list[str]:
    if not warm or start is None:
        return ["| Table 2 claims | not run |"]
    key = "nc/train/z/zero_sum"
    parts = [
        f"{n}: {_ms(g, key)} ("
        + _verdict(*compare(start, g, key), higher_is="leaves NC", lower_is="closer to NC")
        + ")"
        for n, g in warm
    ]
    caveat = ""
    if start[key] > 0.1:  # HN Table 2's near-NC CIFAR-100 model: zero-sum 0.012
        caveat = (
            " Not a test of the claim at this size: the starting model is far from NC "
            "(the paper's starts at zero-sum 0.012)."
        )
    return [
        f"| supervised settings stay at NC, HUCL at large β leaves it [HN Table 2]; zero-sum "
        f"of the starting model {_ms(start, key)} | " + "; ".join(parts) + "." + caveat + " |"
    ]


def _clop_claims(clop_groups: list[dict[str, Any]]) -> list[str]:
    by_key = {}
    for g in clop_groups:
        a = json.loads(g["key"])
        w = a.pop("clop.weight")
        by_key.setdefault(json.dumps(a, sort_keys=True), {})[w] = g
    lines = []
    for key in ("eval/test/z/knn5_acc", "eval/test/z/probe_top1"):
        parts, wins, total = [], 0, 0
        for a_text, pair in by_key.items():
            if 0.0 in pair and 1.0 in pair and key in pair[0.0] and key in pair[1.0]:
                diff, se = compare(pair[0.0], pair[1.0], key)
                total += 1
                wins += diff > 2 * se
                parts.append(f"{_clop_label(json.loads(a_text))}: {diff:+.3f} ± {se:.3f}")
        if not total:
            lines.append(f"| the CLOP term raises {key.rsplit('/', 1)[1]} | not run |")
            continue
        lines.append(
            f"| the CLOP term raises {key.rsplit('/', 1)[1]} [CLOP Fig. 6, Table 1] | "
            f"higher beyond 2 s.e. in {wins} of {total} pairs; with − without: "
            + "; ".join(parts)
            + " |"
        )
    return lines


def _clop_label(a: Mapping[str, Any]) -> str:
    name = _label(a)
    return f"{name}, {a['label_fraction']:.0%} labels, batch {a['batch_size']}"


def _model_options(size: Mapping[str, Any]) -> str:
    """The size's model options as the table's heading states them, e.g. " (width 32, depth 1)"."""
    options = ", ".join(f"{name} {size[name]}" for name in ("width", "depth") if size.get(name))
    return f" ({options})" if options else ""


def render(results: Mapping[str, Any], figure_dir: str = RESULTS_DIR) -> str:
    """The generated Fashion-MNIST section of REPRODUCTION.md (between the markers)."""
    s = results["size_settings"]
    runs = results["runs"]
    sup = _settings(_groups(runs, "hn_supervised"))
    unsup = _settings(_groups(runs, "hn_unsupervised"))
    warm = _settings(_groups(runs, "hn_warm_start"))
    clop = _groups(runs, "clop")
    start = next((g for n, g in sup if n == f"HSCL β = {WARM_START_FROM:g}"), None)
    minutes = sum(r["seconds"] for r in runs) / 60
    m, v = results["machine"], results["versions"]
    base = results_path(results["dataset"], results["size"])
    lines = [
        BEGIN,
        "## Fashion-MNIST (real images, measured here)",
        "",
        f"Generated by `python -m hncl_jax.reproduce {results['dataset']} --write_doc` from "
        f"`{base}`, which `{results['command']}` wrote; do not edit by hand. Machine: "
        f"{m['cpu_count']} CPU cores ({m['processor']}, JAX {v['jax']}, {m['platform']}). "
        f"Whole grid: {len(runs)} runs, {minutes:.0f} min of training and evaluation.",
        "",
        f"Size `{results['size']}` (chosen so that the grid fits a 2-core CPU; the papers "
        "train ResNets for hundreds of epochs on CIFAR): "
        f"{s['max_examples'] or 'all'} training images (a seeded subset per seed) and as "
        f"many test images, model `{s['model']}`" + _model_options(s) + f", {s['epochs']} "
        f"epochs, batch {s['batch']}, k = {s['k']}, evaluation every {s['eval_every']} "
        f"epochs, linear probe {s['probe_epochs']} epochs at the end. Values are mean ± "
        f"std over {s['seeds']} seeds (sample std). NC metrics are of the training "
        "embeddings z, accuracies on the test images.",
        "",
    ]
    if results["missing"]:
        lines += [
            f"**{len(results['missing'])} runs of the grid are missing** from the results "
            "file; rows below use the runs that finished.",
            "",
        ]
    lines += [
        "### HN Fig. 3 / Table 1: SCL and HSCL (label positives)",
        "",
        _table(
            sup,
            ACC + [("final loss", "train/epoch_loss", 4), ("gap to Thm 2", "train/loss_gap", 4)],
        ),
        "",
        _table(sup, NC),
        "",
        f"![accuracy and NC against epochs](results/{results['dataset']}_{results['size']}_hn.png)",
        "",
        "### HN Fig. 4 / §5.3: UCL and HUCL (view positives)",
        "",
        _table(unsup, ACC),
        "",
        _table(unsup, NC),
        "",
        f"![DC spectrum](results/{results['dataset']}_{results['size']}_dc.png)",
        "",
        f"### HN Table 2: warm start from the near-NC HSCL β = {WARM_START_FROM:g} model",
        "",
        _table(warm, NC[:3] + ACC[:1]),
        "",
        "### CLOP Fig. 6 / Table 1: with and without the CLOP term",
        "",
        _clop_table(clop),
        "",
        "### Verdicts (computed from the rows above: a difference counts when it exceeds "
        "2 standard errors over seeds)",
        "",
        "| claim | Fashion-MNIST |",
        "| --- | --- |",
        *_hn_claims(sup, unsup, results["theorem2_bound"]),
        *_warm_claims(warm, start),
        *_clop_claims(clop),
        "",
        END,
    ]
    return "\n".join(lines)


def _clop_table(groups: Sequence[Mapping[str, Any]]) -> str:
    if not groups:
        return "Not run: no finished run of this study is in the results file."
    lines = [
        "| loss | labels | batch | CLOP λ | seeds | kNN-5 (z) | probe top-1 (z) "
        "| probe top-1 (h) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for g in groups:
        a = json.loads(g["key"])
        lines.append(
            f"| {_label(a)} | {a['label_fraction']:.0%} | {a['batch_size']} | "
            f"{a['clop.weight']:g} | {g['n']} | {_ms(g, 'eval/test/z/knn5_acc')} | "
            f"{_ms(g, 'eval/test/z/probe_top1')} | {_ms(g, 'eval/test/h/probe_top1')} |"
        )
    return "\n".join(lines)


def plot(results: Mapping[str, Any], out_dir: str) -> list[str]:
    """The report's figures: accuracy and NC against epochs (HN Fig. 3 style) and the
    DC spectra of the unsupervised runs (HN Fig. 4 style), mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = os.path.join(out_dir, f"{results['dataset']}_{results['size']}")
    paths = []
    panels = [
        ("eval/test/z/ncm_acc", "test NCM accuracy (z)"),
        ("nc/train/z/zero_sum", "zero-sum"),
        ("nc/train/z/equal_inner_product", "equal inner-product"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for row, study in enumerate(("hn_supervised", "hn_unsupervised")):
        by_setting: dict[str, list] = {}
        for r in results["runs"]:
            if r["study"] == study:
                by_setting.setdefault(_label(r["assignments"]), []).append(r["curve"])
        for ax, (key, title) in zip(axes[row], panels, strict=True):
            for i, (label, curves) in enumerate(by_setting.items()):
                epochs = sorted({p["epoch"] for c in curves for p in c if key in p})
                vals = [
                    [p[key] for c in curves for p in c if p["epoch"] == e and key in p]
                    for e in epochs
                ]
                mean = [float(np.mean(v)) for v in vals]
                std = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in vals]
                ax.errorbar(
                    epochs,
                    mean,
                    yerr=std,
                    marker="osD^v"[i % 5],
                    capsize=3,
                    alpha=0.85,
                    label=label,
                    linestyle=("-", "--", ":", "-.")[i % 4],
                )
            ax.set_title(f"{'supervised' if row == 0 else 'unsupervised'}: {title}", fontsize=9)
            ax.set_xlabel("epoch")
            if key.startswith("nc/"):
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        if by_setting:
            axes[row][0].legend(fontsize=7)
    fig.suptitle(f"Fashion-MNIST, size {results['size']} (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    paths.append(stem + "_hn.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    by_setting = {}
    for r in results["runs"]:
        if r["study"] == "hn_unsupervised" and r["dc_spectrum"]:
            by_setting.setdefault(_label(r["assignments"]), []).append(r["dc_spectrum"])
    for i, (label, spectra) in enumerate(by_setting.items()):
        arr = np.asarray(spectra, np.float64)
        ax.errorbar(
            np.arange(1, arr.shape[1] + 1),
            arr.mean(0),
            yerr=arr.std(0),
            capsize=3,
            marker="osD^v"[i % 5],
            label=label,
            alpha=0.85,
        )
    ax.set_yscale("log")
    ax.set_xlabel("index of the singular value")
    ax.set_ylabel("normalized singular value of z's covariance")
    ax.set_title("DC spectrum of the training embeddings (unsupervised)", fontsize=9)
    if by_setting:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(stem + "_dc.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    return paths


def write_doc(results: Mapping[str, Any], doc_path: str = DOC) -> str:
    """Replaces the generated section of `doc_path` (appends it when absent)."""
    return replace_block(doc_path, BEGIN, END, render(results))


def replace_block(doc_path: str, begin: str, end: str, block: str) -> str:
    """Writes `block` (which starts with `begin` and ends with `end`) over the text
    between those markers in `doc_path`, or appends it when the markers are absent."""
    text = open(doc_path).read() if os.path.exists(doc_path) else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(doc_path, "w") as fh:
        fh.write(text)
    return doc_path


def generated_section(doc_path: str = DOC) -> str:
    """The generated section currently in `doc_path` (markers included)."""
    text = open(doc_path).read()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{doc_path} has no generated Fashion-MNIST section ({BEGIN} ... {END}).")
    return BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END


# =========================================================================== the other sections
# The sections of REPRODUCTION.md above the Fashion-MNIST one. Each has `compute_<name>`
# (trains or computes, resumable where it trains; returns the results dict that
# `python -m hncl_jax.reproduce <name>` writes to `results/<name>.json`) and
# `render_<name>` (the section's block between its markers, from the results alone).
SECTIONS = ("theory", "hn_synthetic", "near_nc", "clop_theory", "clop_synthetic", "fashion_mnist")
SECTION_SIZES = ("full", "tiny")  # "full": the notebooks' full size; "tiny": tests


def markers(section: str) -> tuple[str, str]:
    """The BEGIN / END comments around a generated section of REPRODUCTION.md."""
    return f"<!-- BEGIN generated:{section} -->", f"<!-- END generated:{section} -->"


def section_results_path(section: str, size: str = "full", repo: str | None = None) -> str:
    """`results/<section>.json` (size "full"; `results/<section>_<size>.json` otherwise);
    Fashion-MNIST's is `results_path`."""
    if section == "fashion_mnist":
        return results_path(section, "cpu" if size == "full" else size, repo)
    stem = section if size == "full" else f"{section}_{size}"
    name = os.path.join(RESULTS_DIR, f"{stem}.json")
    return os.path.join(repo, name) if repo else name


def _environment() -> dict[str, Any]:
    import jax

    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "device": jax.devices()[0].device_kind,
            "platform": jax.default_backend(),
        },
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
        "written": time.strftime("%Y-%m-%d"),
    }


def _enable_compilation_cache(root: str) -> None:
    """A persistent compilation cache beside `root`: runs of one section differ in values,
    not shapes, so every run after the first reuses the compiled programs."""
    import jax

    cache = os.path.join(os.path.dirname(os.path.abspath(root)), ".jax_cache")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


CPU_FILE = "reproduce_cpu_seconds.json"


def _timed_train(config: ml_collections.ConfigDict, workdir: str) -> None:
    """`train.train_and_evaluate` (quiet), recording the process CPU seconds it took in
    `<workdir>/reproduce_cpu_seconds.json` (the sweep records the wall seconds)."""
    from hncl_jax import train

    start = time.process_time()
    train.train_and_evaluate(config, workdir, verbose=False)
    with open(os.path.join(workdir, CPU_FILE), "w") as fh:
        json.dump({"cpu_seconds": time.process_time() - start}, fh)


def _grid(
    base: ml_collections.ConfigDict,
    root: str,
    points: Sequence[Mapping[str, Any]],
    seeds: int | None = None,
) -> list[dict[str, Any]]:
    """`sweep.run_grid` over `points` (resumable); each row with its seconds and CPU
    seconds (recorded when the run trained) and its assignments."""
    rows = sweep.run_grid(base, {}, root, points=points, seeds=seeds, train_fn=_timed_train)
    plan = sweep.plan_grid(base, {}, root, points=points, seeds=seeds)
    out = []
    for row, (assignments, _, workdir) in zip(rows, plan, strict=True):
        with open(os.path.join(workdir, sweep.RESULT_FILE)) as fh:
            record = json.load(fh)
        cpu = None
        if os.path.exists(os.path.join(workdir, CPU_FILE)):
            with open(os.path.join(workdir, CPU_FILE)) as fh:
                cpu = json.load(fh)["cpu_seconds"]
        out.append(
            {
                **row,
                "assignments": {k: sweep._json_value(v) for k, v in assignments.items()},
                "seconds": record["seconds"],
                "cpu_seconds": cpu,
            }
        )
    return out


def _cost(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Total wall and CPU seconds of trained runs (as recorded when each trained)."""
    return {
        "seconds": float(sum(r.get("seconds") or 0.0 for r in rows)),
        "cpu_seconds": float(sum(r.get("cpu_seconds") or 0.0 for r in rows)),
    }


def _header(results: Mapping[str, Any], section: str) -> str:
    """The 'Generated by ...' paragraph of a section: command, file, machine, time."""
    m, v = results["machine"], results["versions"]
    wall, cpu = results["seconds"], results.get("cpu_seconds")
    cost = f"{_duration(wall)} wall"
    if cpu:
        cost += f", {_duration(cpu)} of CPU time"
    shared = "; the machine was shared with other work, so wall time exceeds CPU time / cores"
    return (
        f"Generated by `python -m hncl_jax.reproduce {section} --write_doc` from "
        f"`{section_results_path(section, results['size'])}`, which `{results['command']}` "
        f"wrote; do not edit by hand. Machine: {m['cpu_count']} CPU cores ({m['processor']}, "
        f"JAX {v['jax']}, {m['platform']}). Measured cost of the section: {cost}"
        + (" (the sum over its runs, as each was trained" if results.get("trains") else " (")
        + shared.lstrip("; " if not results.get("trains") else "")
        + ")."
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _paper_digits(paper: str) -> int:
    return len(paper.split(".")[1]) if "." in paper else 0


def value_verdict(measured: float, paper: str, se: float | None = None) -> str:
    """Rule for a printed paper value: "match" when the measured value rounds to it at
    the paper's printed digits (or lies within 2 standard errors of it, for an estimate
    with one); "match if truncated" when it truncates to it; else "differs"."""
    digits = _paper_digits(paper)
    target = float(paper)
    if round(measured, digits) == round(target, digits) or (
        se is not None and abs(measured - target) <= 2 * se
    ):
        return "match"
    if math.floor(measured * 10**digits) / 10**digits == target:
        return f"match if truncated (rounded to {digits} digits it is {measured:.{digits}f})"
    return f"differs ({measured - target:+.2g})"


# --------------------------------------------------------------------------- CLOP synthetic
# [CLOP App. B, Table 3]: kNN (k = 5) accuracy (%) on the synthetic lines, fit on the
# labelled 10 %, without and with the CLOP term.
CLOP_SYNTHETIC_PAPER = {
    "nt_xent": (68.91, 99.89),
    "dcl": (88.56, 100.0),
    "vicreg": (98.64, 99.96),
    "barlow_twins": (82.50, 100.0),
}
CLOP_LOSS_NAMES = {
    "nt_xent": "InfoNCE (NT-Xent)",
    "dcl": "DCL",
    "vicreg": "VICReg",
    "barlow_twins": "Barlow Twins",
}
CLOP_PAPER_FRACTION = 0.1  # [CLOP §5]: 10 % of the labels
# The exploration of the generator's free choices (data.synthetic.clop_synthetic): every
# combination of `directions`, `radii` and `noises` at the paper's 10 % labels, and the
# `extra_fraction` labels for the directions `extra_directions`; NT-Xent with and
# without CLOP, over `seeds`. Then the other `losses` at the chosen setting.
CLOP_SYNTHETIC_SIZES: dict[str, dict[str, Any]] = {
    "full": dict(
        epochs=None, seeds=2, radii=(1.0, 3.0, 10.0, 30.0),
        directions=("random", "orthogonal", "planar"),
        noises=(("noise_variance", 0.05), ("noise_std", 0.05)),
        extra_fraction=0.5, extra_directions=("orthogonal",),
        losses=("dcl", "vicreg", "barlow_twins"),
    ),
    "tiny": dict(
        epochs=2, seeds=1, radii=(3.0,), directions=("random",),
        noises=(("noise_variance", 0.05),), extra_fraction=None, extra_directions=(),
        losses=("dcl",),
    ),
}  # fmt: skip
GENERATOR_FIELDS = ("directions", "radius", "noise_variance", "noise_std")


def clop_synthetic_base(size: str) -> ml_collections.ConfigDict:
    """`configs/clop_synthetic.py` with the generator's fields unset (each run sets them),
    evaluated once at the end, no probe, no plots."""
    from hncl_jax.configs import clop_synthetic

    c = clop_synthetic.get_config()
    s = CLOP_SYNTHETIC_SIZES[size]
    if s["epochs"]:
        c.num_epochs = s["epochs"]
    c.eval_every_epochs = c.checkpoint_every_epochs = c.num_epochs
    c.linear_probe, c.plots = "off", False
    c.knn_k = (5,)
    c.dataset_kwargs.noise_variance = None
    c.dataset_kwargs.noise_std = None
    return c


def generator_settings(size: str) -> list[dict[str, Any]]:
    """The explored data settings: {dataset_kwargs.*, label_fraction} each."""
    s = CLOP_SYNTHETIC_SIZES[size]
    out = []
    fractions = [(CLOP_PAPER_FRACTION, s["directions"])]
    if s["extra_fraction"]:
        fractions.append((s["extra_fraction"], s["extra_directions"]))
    for frac, dirs in fractions:
        for radius in s["radii"]:
            for noise_field, noise in s["noises"]:
                for d in dirs:
                    out.append(
                        {
                            "dataset_kwargs.directions": d,
                            "dataset_kwargs.radius": float(radius),
                            f"dataset_kwargs.{noise_field}": float(noise),
                            "label_fraction": float(frac),
                        }
                    )
    return out


def _data_cap(config: ml_collections.ConfigDict) -> dict[str, float]:
    """Nearest-true-line accuracy of a run's data: on the test split and on the
    unlabelled training points."""
    from hncl_jax import train
    from hncl_jax.data import labelled_mask, synthetic

    kw = {k: v for k, v in dict(config.dataset_kwargs).items() if v is not None}
    kw.pop("max_examples", None)
    train_ds, test_ds = train.load_data(config)
    u = synthetic.clop_directions(
        config.seed, train_ds.num_classes, train_ds.images.shape[1], kind=kw["directions"]
    )
    unl = ~labelled_mask(len(train_ds.labels), config.label_fraction, config.seed)
    return {
        "cap_test": synthetic.nearest_line_accuracy(test_ds.images, test_ds.labels, u),
        "cap_unlabelled": synthetic.nearest_line_accuracy(
            train_ds.images[unl], train_ds.labels[unl], u
        ),
    }


def _paper_protocol_knn(config: ml_collections.ConfigDict, workdir: str) -> float:
    """The paper's protocol: kNN (k = 5) fit on the labelled training points, accuracy on
    the unlabelled ones (from the run's final checkpoint)."""
    from hncl_jax import evaluation
    from hncl_jax.data import labelled_mask

    _, z, y = sweep.restore_representations(config, workdir, "train")
    lab = labelled_mask(len(y), config.label_fraction, config.seed)
    return evaluation.knn_accuracy(
        z[lab], y[lab], z[~lab], y[~lab], int(y.max()) + 1, k=5, weighted=False
    )


def _clop_row(row: Mapping[str, Any], config, workdir: str, protocol: bool) -> dict[str, Any]:
    a = dict(row["assignments"])
    out = {
        "loss": str(config.loss.name),
        "clop_weight": float(config.clop.weight),
        "seed": int(config.seed),
        "setting": {
            **{f: config.dataset_kwargs.get(f) for f in GENERATOR_FIELDS},
            "label_fraction": float(config.label_fraction),
        },
        "knn_test": float(row["eval/test/z/knn5_acc"]),
        "final_loss": float(row.get("train/epoch_loss", float("nan"))),
        "seconds": row["seconds"],
        "cpu_seconds": row["cpu_seconds"],
        "assignments": a,
        **_data_cap(config),
    }
    if protocol:
        out["knn_unlabelled"] = float(_paper_protocol_knn(config, workdir))
    return out


def _setting_key(setting: Mapping[str, Any]) -> str:
    return json.dumps({k: setting.get(k) for k in (*GENERATOR_FIELDS, "label_fraction")})


def clop_setting_groups(runs: Sequence[Mapping[str, Any]], loss: str = "nt_xent") -> list[dict]:
    """One group per explored setting of `loss`: mean ± std over seeds of kNN without
    and with CLOP and of the data's cap, the gain (with − without) and its s.e."""
    by: dict[str, dict[float, list]] = {}
    for r in runs:
        if r["loss"] == loss:
            by.setdefault(_setting_key(r["setting"]), {}).setdefault(r["clop_weight"], []).append(r)
    out = []
    for key, pair in by.items():
        g: dict[str, Any] = {"setting": json.loads(key)}
        for w, name in ((0.0, "without"), (1.0, "with")):
            rs = pair.get(w, [])
            vals = np.asarray([100 * r["knn_test"] for r in rs])
            g[f"{name}_n"] = len(vals)
            g[name] = float(vals.mean()) if len(vals) else None
            g[f"{name}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            if rs and "knn_unlabelled" in rs[0]:
                u = np.asarray([100 * r["knn_unlabelled"] for r in rs])
                g[f"{name}_unlabelled"] = float(u.mean())
                g[f"{name}_unlabelled_std"] = float(u.std(ddof=1)) if len(u) > 1 else 0.0
        caps = [100 * r["cap_test"] for w in pair for r in pair[w]]
        g["cap"] = float(np.mean(caps)) if caps else None
        if g["without"] is not None and g["with"] is not None:
            g["gain"] = g["with"] - g["without"]
            g["gain_se"] = math.sqrt(
                g["without_std"] ** 2 / max(g["without_n"], 1)
                + g["with_std"] ** 2 / max(g["with_n"], 1)
            )
        out.append(g)
    return out


def paper_distance(g: Mapping[str, Any], loss: str = "nt_xent") -> float:
    """Distance (in accuracy points) of a setting's pair from the paper's:
    |without − paper's| + |with − paper's|. The chosen setting minimises it."""
    without, with_ = CLOP_SYNTHETIC_PAPER[loss]
    return abs(g["without"] - without) + abs(g["with"] - with_)


def clop_feasible(g: Mapping[str, Any], loss: str = "nt_xent") -> bool:
    """Whether a setting's data can hold the paper's accuracy with CLOP: its cap (the
    nearest-true-line accuracy) is at least that value."""
    return g["cap"] is not None and g["cap"] >= CLOP_SYNTHETIC_PAPER[loss][1]


def choose_clop_setting(groups: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The setting at the paper's 10 % labels closest to the paper's NT-Xent pair
    (`paper_distance`), among those whose data can hold the paper's accuracy with CLOP
    (`clop_feasible`; among all when none can)."""
    ok = [
        g
        for g in groups
        if g.get("gain") is not None and g["setting"]["label_fraction"] == CLOP_PAPER_FRACTION
    ]
    pool = [g for g in ok if clop_feasible(g)] or ok
    return dict(min(pool, key=paper_distance)["setting"]) if pool else None


def _assignments_of(setting: Mapping[str, Any]) -> dict[str, Any]:
    a = {f"dataset_kwargs.{f}": setting[f] for f in GENERATOR_FIELDS if setting.get(f) is not None}
    return {**a, "label_fraction": setting["label_fraction"]}


def compute_clop_synthetic(root: str, size: str = "full") -> dict[str, Any]:
    """Explores the generator (NT-Xent ± CLOP on every setting), chooses the setting
    closest to the paper's NT-Xent pair, trains the other losses ± CLOP there."""
    _enable_compilation_cache(root)
    s = CLOP_SYNTHETIC_SIZES[size]
    base = clop_synthetic_base(size)
    points = [{**p, "clop.weight": w} for p in generator_settings(size) for w in (0.0, 1.0)]
    explore_root = os.path.join(root, "explore")
    rows = _grid(base, explore_root, points, seeds=s["seeds"])
    plan = sweep.plan_grid(base, {}, explore_root, points=points, seeds=s["seeds"])
    runs = [_clop_row(r, c, w, False) for r, (_, c, w) in zip(rows, plan, strict=True)]
    chosen = choose_clop_setting(clop_setting_groups(runs))
    # At the chosen setting: every loss ± CLOP, also scored by the paper's protocol.
    chosen_base = sweep.apply_assignments(base, _assignments_of(chosen))
    loss_points = [
        {"loss.name": name, "clop.weight": w}
        for name in ("nt_xent", *s["losses"])
        for w in (0.0, 1.0)
    ]
    loss_root = os.path.join(root, "losses", sweep.run_name(_assignments_of(chosen)))
    loss_rows = _grid(chosen_base, loss_root, loss_points, seeds=s["seeds"])
    loss_plan = sweep.plan_grid(chosen_base, {}, loss_root, points=loss_points, seeds=s["seeds"])
    loss_runs = [
        _clop_row(r, c, w, True) for r, (_, c, w) in zip(loss_rows, loss_plan, strict=True)
    ]
    cost = _cost(rows + loss_rows)
    return {
        "section": "clop_synthetic",
        "size": size,
        "size_settings": dict(s),
        "trains": True,
        "command": "python -m hncl_jax.reproduce clop_synthetic"
        + ("" if size == "full" else f" --size={size}"),
        **_environment(),
        **cost,
        "config": {
            "epochs": int(base.num_epochs),
            "batch_size": int(base.batch_size),
            "model": str(base.model),
            "temperature": float(base.loss.temperature),
            "num_points": 500,
        },
        "chosen": chosen,
        "runs": runs,
        "loss_runs": loss_runs,
    }


# The CLOP synthetic verdict rules: a value matches the paper's when it lies within
# VALUE_POINTS accuracy points or 2 standard errors of it; the paper's gap (with − without
# CLOP) is reproduced when the measured gain exceeds 2 standard errors and is at least
# GAP_SHARE of the paper's.
VALUE_POINTS = 2.0
GAP_SHARE = 0.5


def _pct(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" if n < 2 else f"{mean:.2f} ± {std:.2f}"


def _setting_text(setting: Mapping[str, Any]) -> tuple[str, str, str, str]:
    if setting.get("noise_std") is not None:
        noise = f"std {setting['noise_std']:g}"
    else:
        v = setting.get("noise_variance")
        noise = f"variance {0.05 if v is None else v:g}"
    return (
        str(setting["directions"]),
        f"{setting['radius']:g}",
        noise,
        f"{setting['label_fraction']:.0%}",
    )


def clop_value_verdict(mean: float, std: float, n: int, paper: float) -> bool:
    se = std / math.sqrt(n) if n > 1 else 0.0
    return abs(mean - paper) <= max(VALUE_POINTS, 2 * se)


def clop_gap_verdict(g: Mapping[str, Any], loss: str) -> str:
    """Whether a setting reproduces the paper's gain of `loss` (rule above)."""
    without, with_ = CLOP_SYNTHETIC_PAPER[loss]
    paper_gain = with_ - without
    gain, se = g["gain"], g["gain_se"]
    if gain > 2 * se and gain >= GAP_SHARE * paper_gain:
        return f"gap reproduced ({gain:+.1f} ± {se:.1f} against {paper_gain:+.1f})"
    if gain > 2 * se:
        return f"smaller gap ({gain:+.1f} ± {se:.1f} against {paper_gain:+.1f})"
    if gain < -2 * se:
        return f"CLOP lowers it ({gain:+.1f} ± {se:.1f} against {paper_gain:+.1f})"
    return f"no gap beyond noise ({gain:+.1f} ± {se:.1f} against {paper_gain:+.1f})"


def render_clop_synthetic(results: Mapping[str, Any]) -> str:
    cfg = results["config"]
    s = results["size_settings"]
    groups = clop_setting_groups(results["runs"])
    chosen = results["chosen"]
    paper_nt = CLOP_SYNTHETIC_PAPER["nt_xent"]
    lines = [
        "### Synthetic data, Fig. 5 and App. B Table 3 (`colabs/clop.ipynb`, section 1)",
        "",
        _header(results, "clop_synthetic"),
        "",
        f"{cfg['num_points']} points in R³ on three lines through the origin, "
        f"`configs/clop_synthetic.py`: a 3-layer MLP to R³ on the unit sphere, views = "
        f"noise + sign flip, NT-Xent τ = {cfg['temperature']:g}, batch {cfg['batch_size']}, "
        f"{cfg['epochs']} epochs; the CLOP term (λ = 1) on the labelled points. The paper "
        'states the noise as "variance 0.05" and 10 % labels, and neither the extent of the '
        "points along their lines nor the lines' directions. kNN (k = 5) is fit on the "
        "labelled training points; accuracies in %, mean ± std over "
        f"{s['seeds']} seed(s) (the seed draws the data, the directions where random, the "
        "initialisation and the labelled subset).",
        "",
        "**The generator's free choices, explored** (NT-Xent without and with CLOP; kNN "
        'accuracy on the test split; `cap` is the accuracy of the rule "nearest true line", '
        "which knows the lines: the most any classifier gets from this data). Directions: "
        "`random` (i.i.d. Gaussian, per seed), `orthogonal` (a random orthonormal set, per "
        "seed), `planar` (three coplanar lines 60° apart); `radius` r: t ~ U[−r, r] along "
        "the line; the noise as a variance or as a standard deviation. `distance` = "
        f"|without − {paper_nt[0]}| + |with − {paper_nt[1]}|, the distance from the paper's "
        "InfoNCE pair.",
        "",
        "| directions | r | noise | labels | cap | without CLOP | with CLOP | gain | "
        "distance | verdict on InfoNCE's gap |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for g in groups:
        d, r, noise, lab = _setting_text(g["setting"])
        mark = " **(chosen)**" if chosen and g["setting"] == chosen else ""
        lines.append(
            f"| {d}{mark} | {r} | {noise} | {lab} | {g['cap']:.1f} | "
            f"{_pct(g['without'], g['without_std'], g['without_n'])} | "
            f"{_pct(g['with'], g['with_std'], g['with_n'])} | "
            + (f"{g['gain']:+.1f} ± {g['gain_se']:.1f}" if g.get("gain") is not None else "—")
            + f" | {paper_distance(g):.1f} | {clop_gap_verdict(g, 'nt_xent')} |"
        )
    complete = [g for g in groups if g.get("gain") is not None]
    reproduced = [g for g in complete if clop_gap_verdict(g, "nt_xent").startswith("gap rep")]
    both = [
        g
        for g in complete
        if clop_value_verdict(g["without"], g["without_std"], g["without_n"], paper_nt[0])
        and clop_value_verdict(g["with"], g["with_std"], g["with_n"], paper_nt[1])
    ]
    best_gain = max(complete, key=lambda g: g["gain"]) if complete else None
    lines += [
        "",
        f"Verdict rules: a value matches the paper's when it lies within {VALUE_POINTS:g} "
        "points or 2 standard errors of it; a gain (with − without CLOP) reproduces the "
        "paper's when it exceeds 2 standard errors and is at least "
        f"{GAP_SHARE:.0%} of the paper's. The chosen setting is the one at the paper's 10 % "
        "labels with the smallest distance among those whose cap is at least the paper's "
        f"{paper_nt[1]} with CLOP (data that cannot hold the paper's value cannot reproduce "
        "it; among all settings when none can); it is the default of "
        "`configs/clop_synthetic.py` (a test checks this).",
        "",
        f"Of {len(complete)} settings, {len(reproduced)} reproduce InfoNCE's gap by this rule "
        f"and {len(both)} match both of the paper's InfoNCE values."
        + (
            f" The largest gain is {best_gain['gain']:+.1f} ± {best_gain['gain_se']:.1f} points "
            f"({', '.join(_setting_text(best_gain['setting']))}); the paper's is "
            f"{paper_nt[1] - paper_nt[0]:+.1f}."
            if best_gain
            else ""
        ),
        "",
    ]
    if chosen is None:
        lines.append("No setting at 10 % labels finished; no setting is chosen.")
        return "\n".join(lines)
    d, r, noise, lab = _setting_text(chosen)
    lines += [
        f"**At the chosen setting** (directions {d}, r = {r}, noise {noise}, {lab} labels), "
        "every loss without and with CLOP. `unlabelled` is the paper's protocol (kNN fit on "
        "the labelled training points predicts the other training points), `test` the same "
        "fit scored on the test split:",
        "",
        "| loss | without CLOP: unlabelled (paper) | with CLOP: unlabelled (paper) | "
        "without / with: test | cap | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    verdicts = {}
    for loss in ("nt_xent", *s["losses"]):
        lg = clop_setting_groups(results["loss_runs"], loss)
        if not lg or lg[0].get("gain") is None:
            lines.append(f"| {CLOP_LOSS_NAMES[loss]} | not run | | | | |")
            continue
        g = lg[0]
        paper = CLOP_SYNTHETIC_PAPER[loss]
        n0, n1 = g["without_n"], g["with_n"]
        # The verdict uses the paper's protocol (the unlabelled points).
        gu = {
            **g,
            "without": g["without_unlabelled"],
            "with": g["with_unlabelled"],
            "without_std": g["without_unlabelled_std"],
            "with_std": g["with_unlabelled_std"],
        }
        gu["gain"] = gu["with"] - gu["without"]
        gu["gain_se"] = math.sqrt(
            gu["without_std"] ** 2 / max(n0, 1) + gu["with_std"] ** 2 / max(n1, 1)
        )
        m0 = clop_value_verdict(gu["without"], gu["without_std"], n0, paper[0])
        m1 = clop_value_verdict(gu["with"], gu["with_std"], n1, paper[1])
        verdict = clop_gap_verdict(gu, loss)
        verdicts[loss] = verdict.startswith("gap rep")
        values = {
            (True, True): "both values match",
            (True, False): "without matches, with differs",
            (False, True): "without differs, with matches",
            (False, False): "both values differ",
        }[(m0, m1)]
        lines.append(
            f"| {CLOP_LOSS_NAMES[loss]} | {_pct(gu['without'], gu['without_std'], n0)} "
            f"({paper[0]:.2f}) | {_pct(gu['with'], gu['with_std'], n1)} ({paper[1]:.2f}) | "
            f"{_pct(g['without'], g['without_std'], n0)} / {_pct(g['with'], g['with_std'], n1)} "
            f"| {g['cap']:.1f} | {values}; {verdict} |"
        )
    got = [CLOP_LOSS_NAMES[k] for k, v in verdicts.items() if v]
    paper_labels = [g for g in complete if g["setting"]["label_fraction"] == CLOP_PAPER_FRACTION]
    low = [
        g
        for g in paper_labels
        if clop_value_verdict(g["without"], g["without_std"], g["without_n"], paper_nt[0])
    ]
    feasible = [g for g in paper_labels if clop_feasible(g)]

    def names(gs):
        return "; ".join(
            f"{', '.join(_setting_text(g['setting'])[:3])}: cap {g['cap']:.1f}, without "
            f"{g['without']:.1f}, gain {g['gain']:+.1f} ± {g['gain_se']:.1f}"
            for g in gs
        )

    lines += [
        "",
        f"**Verdict.** {len(reproduced)} of {len(complete)} explored settings reproduce "
        f"InfoNCE's gap, and at the chosen setting the paper's gaps are reproduced for "
        f"{len(got)} of {len(verdicts)} losses"
        + (f" ({', '.join(got)})" if got else "")
        + ". At the paper's 10 % labels, InfoNCE without CLOP matches the paper's "
        f"{paper_nt[0]} in {len(low)} setting(s)"
        + (f" ({names(low)})" if low else "")
        + f"; the data can hold the paper's {paper_nt[1]} with CLOP in {len(feasible)} "
        "setting(s)"
        + (f" ({names(feasible)})" if feasible else "")
        + ". Not explored here (training choices, not the generator's): the MLP's widths, "
        "the optimiser and its learning rate, the number of epochs, the temperature.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HN theory
# Paper values, as printed: [HN §5.1] the minima for C = 3, k = 256; [HN Table 1,
# "Theory" row] the Theorem 2 minimum for CIFAR-100 (C = 100).
THEORY_PAPER = {"thm2_c3": "0.2014", "thm2_c100": "0.3105", "thm3_c3": "0.3935"}
THEORY_SIZES = {
    "full": dict(nc_draws=1000, enum_trials=100, mc_draws=20000),
    "tiny": dict(nc_draws=16, enum_trials=3, mc_draws=500),
}


def exact_expected_loss(
    z: np.ndarray, y: np.ndarray, k: int, beta: float, supervised: bool
) -> float:
    """The exact expected InfoNCE loss (docs/math.md §2-6) of a small set, by enumerating
    every k-tuple of negatives: mean over anchors i and positives j (same class, i
    included) of Σ_tuples q(tuple) ψ_k(tuple), with q the uniform (β = 0) or tilted
    q(m) ∝ exp(β s_im) distribution over the candidates (other classes when supervised,
    every example otherwise)."""
    import itertools

    s = np.asarray(z, np.float64) @ np.asarray(z, np.float64).T
    per_anchor = []
    for i in range(len(y)):
        cand = np.flatnonzero(y != y[i]) if supervised else np.arange(len(y))
        q = np.exp(beta * s[i, cand])
        q /= q.sum()
        tuples = np.array(list(itertools.product(range(len(cand)), repeat=k)))
        prob = np.prod(q[tuples], axis=1)
        t = s[i, cand][tuples][:, None, :] - s[i, y == y[i]][None, :, None]
        psi = np.log1p(np.exp(t).mean(-1))
        per_anchor.append((prob[:, None] * psi).sum(0).mean())
    return float(np.mean(per_anchor))


def compute_theory(root: str, size: str = "full") -> dict[str, Any]:
    """[HN Thm 1-3]: the minima, the library's losses at NC, Thm 1 by exact enumeration,
    the sampled estimator's bias (what `colabs/theory.ipynb` sections 1-4 compute)."""
    import jax
    import jax.numpy as jnp

    from hncl_jax import losses

    start, cpu = time.perf_counter(), time.process_time()
    s = THEORY_SIZES[size]
    C, per, k = 3, 100, 256
    out: dict[str, Any] = {
        "thm2_c3": geometry.scl_lower_bound(3, k),
        "thm2_c100": geometry.scl_lower_bound(100, k),
        "thm3_c3": geometry.ucl_lower_bound(3, k),
        # The paper's 0.3935 is the value with the expectation over the number of
        # same-class negatives moved inside the log: log(1 + p e^{−C/(C−1)} + (1 − p)).
        "thm3_inside_log": float(np.log(1 + (2 / 3) * np.exp(-1.5) + 1 / 3)),
        "ucl_k_infinity": geometry.ucl_reweighted_limit(3),
    }
    labels = jnp.repeat(jnp.arange(C), per)
    z_nc = geometry.simplex_etf(C)[labels]
    key = jax.random.key(0)
    out["nc_supervised"] = [
        {
            "setting": setting,
            "beta": beta,
            "loss": float(
                losses.contrastive_loss(z_nc, labels, key, setting=setting, beta=beta, k=k)
            ),
        }
        for setting, beta in (("scl", 0.0), ("hscl", 10.0), ("hscl", 50.0))
    ]
    keys = jax.random.split(key, s["nc_draws"])
    out["nc_unsupervised"] = []
    for setting, beta in (("ucl", 0.0), ("hucl", 10.0)):
        draws = np.asarray(
            jax.vmap(
                lambda kk, st=setting, b=beta: losses.contrastive_loss(
                    z_nc, labels, kk, setting=st, beta=b, k=k
                )
            )(keys)
        )
        out["nc_unsupervised"].append(
            {
                "setting": setting,
                "beta": beta,
                "draws": len(keys),
                "mean": float(draws.mean()),
                "se": float(draws.std() / np.sqrt(len(keys))),
            }
        )
    out["ucl_reweighted_at_nc"] = float(
        losses.contrastive_loss(z_nc, labels, setting="ucl", estimator="reweighted")
    )
    # Theorem 1 by exact enumeration on n = 9 points (3 classes), k = 3.
    rng = np.random.default_rng(0)
    y9 = np.repeat(np.arange(3), 3)
    gaps = {"supervised": [], "unsupervised": []}
    z9 = None
    for _ in range(s["enum_trials"]):
        f = rng.normal(size=(9, 2)) * rng.uniform(0.2, 2.0)
        z9 = np.asarray(geometry.normalize(f, "unit_ball"), dtype=np.float64)
        for beta in (1.0, 5.0):
            for name, sup in (("supervised", True), ("unsupervised", False)):
                gaps[name].append(
                    exact_expected_loss(z9, y9, 3, beta, sup)
                    - exact_expected_loss(z9, y9, 3, 0.0, sup)
                )
    out["thm1"] = {
        "trials": s["enum_trials"],
        "betas": [1.0, 5.0],
        **{f"{n}_min": float(min(g)) for n, g in gaps.items()},
        **{f"{n}_count": len(g) for n, g in gaps.items()},
    }
    # The sampled estimator against the exact value, on the last representation.
    z9j, y9j = jnp.asarray(z9, jnp.float32), jnp.asarray(y9)
    keys = jax.random.split(jax.random.key(1), s["mc_draws"])
    out["unbiased"] = []
    for setting, beta in (("hscl", 5.0), ("hucl", 5.0)):
        mc = np.asarray(
            jax.vmap(
                lambda kk, st=setting, b=beta: losses.contrastive_loss(
                    z9j, y9j, kk, setting=st, beta=b, k=3
                )
            )(keys)
        )
        out["unbiased"].append(
            {
                "setting": setting,
                "beta": beta,
                "draws": len(keys),
                "exact": exact_expected_loss(z9, y9, 3, beta, setting == "hscl"),
                "mean": float(mc.mean()),
                "se": float(mc.std() / np.sqrt(len(keys))),
            }
        )
    return {
        "section": "theory",
        "size": size,
        "size_settings": dict(s),
        "trains": False,
        "command": "python -m hncl_jax.reproduce theory"
        + ("" if size == "full" else f" --size={size}"),
        **_environment(),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "values": out,
    }


def _within_se(measured: float, exact: float, se: float) -> str:
    d = measured - exact
    return (
        f"match (within 2 s.e.: {d:+.1e} ± {se:.1e})"
        if abs(d) <= 2 * se
        else f"differs ({d:+.1e}, {abs(d) / se:.1f} s.e.)"
    )


def render_theory(results: Mapping[str, Any]) -> str:
    v = results["values"]
    p = THEORY_PAPER
    sup = v["nc_supervised"]
    ucl, hucl = v["nc_unsupervised"]
    t1 = v["thm1"]
    sup_ok = all(abs(r["loss"] - v["thm2_c3"]) <= 1e-5 for r in sup)
    thm1_ok = t1["supervised_min"] >= -1e-12 and t1["unsupervised_min"] >= -1e-12
    inside = value_verdict(v["thm3_inside_log"], p["thm3_c3"])
    lines = [
        "### Theory (`colabs/theory.ipynb`, sections 1-4)",
        "",
        _header(results, "theory"),
        "",
        "Verdict rule: a paper value matches when the measured value rounds to it at the "
        "paper's printed digits; a sampled estimate matches an exact value when they differ "
        "by at most 2 standard errors; an inequality holds when no case violates it.",
        "",
        "| claim | paper | measured here | verdict |",
        "| --- | --- | --- | --- |",
        f"| Thm 2 minimum, InfoNCE, C = 3, k = 256 [HN §5.1] | {p['thm2_c3']} | "
        f"{v['thm2_c3']:.5f} | {value_verdict(v['thm2_c3'], p['thm2_c3'])} |",
        f'| Thm 2 minimum, C = 100 [HN Table 1 "Theory"] | {p["thm2_c100"]} | '
        f"{v['thm2_c100']:.6f} | {value_verdict(v['thm2_c100'], p['thm2_c100'])} |",
        f"| Thm 3 minimum, C = 3, k = 256 [HN §5.1] | {p['thm3_c3']} | {v['thm3_c3']:.5f} "
        f"(exact binomial expectation) | {value_verdict(v['thm3_c3'], p['thm3_c3'])}. With the "
        "expectation over the number of same-class negatives taken inside the log, "
        f"log(1 + p e^(−3/2) + (1 − p)) = {v['thm3_inside_log']:.6f} ({inside} against the "
        f"paper's value), which is also the k → ∞ limit ({v['ucl_k_infinity']:.6f}); Jensen "
        "makes the exact finite-k value smaller. docs/math.md §11 prescribes the exact "
        "form. |",
        "| The batched SCL / HSCL loss at NC equals the Thm 2 minimum for every β and draw "
        "| — | "
        + ", ".join(f"{r['setting'].upper()} β = {r['beta']:g}: {r['loss']:.6f}" for r in sup)
        + f" (Thm 2: {v['thm2_c3']:.6f}) | {'match' if sup_ok else 'differs'} "
        "(each within 1e-5) |",
        f"| The sampled UCL loss at NC equals the Thm 3 minimum in expectation | — | "
        f"{ucl['mean']:.5f} ± {ucl['se']:.5f} s.e. over {ucl['draws']} draws (Thm 3: "
        f"{v['thm3_c3']:.5f}); reweighted estimator {v['ucl_reweighted_at_nc']:.5f} (k → ∞ "
        f"limit {v['ucl_k_infinity']:.5f}) | {_within_se(ucl['mean'], v['thm3_c3'], ucl['se'])} |",
        f"| HUCL at NC lies above UCL (tilting favours same-class negatives) | — | HUCL "
        f"β = {hucl['beta']:g}: {hucl['mean']:.5f} ± {hucl['se']:.5f} s.e. | "
        + ("holds" if hucl["mean"] - 2 * hucl["se"] > v["thm3_c3"] else "not seen")
        + " |",
        f"| Thm 1: HSCL ≥ SCL and HUCL ≥ UCL for every representation | — | exact "
        f"enumeration of all 3-tuples of negatives, n = 9, {t1['trials']} random unit-ball "
        f"representations × β ∈ {{1, 5}}: smallest gap {t1['supervised_min']:.1e} "
        f"(supervised, {t1['supervised_count']} cases), {t1['unsupervised_min']:.1e} "
        f"(unsupervised, {t1['unsupervised_count']} cases) | "
        + ("holds in every case" if thm1_ok else "violated")
        + " |",
    ]
    for r in v["unbiased"]:
        lines.append(
            f"| Unbiasedness of the sampled estimator (Algorithm 1), {r['setting'].upper()} "
            f"β = {r['beta']:g} | — | exact {r['exact']:.5f}, library {r['mean']:.5f} ± "
            f"{r['se']:.5f} s.e. ({r['draws']} draws) | "
            + _within_se(r["mean"], r["exact"], r["se"])
            + " |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLOP theory
# [CLOP Thm 1 / App. D]: the printed bound for k = 30; [CLOP §3.1, Fig. 3 left/middle]:
# k = 30 unit vectors in R^100, η = 2.0 keeps rank, η = 2.1 collapses to rank one.
CLOP_THEORY_PAPER = {"bound_k30": "2.0333"}
CLOP_THEORY_SIZES = {
    "full": dict(fig3_steps=4000, bisect_ks=(3, 5, 10, 20, 30, 50, 100), bisect_steps=20000,
                 bisect_halvings=16, trials=5, fig4_steps=2000),
    "tiny": dict(fig3_steps=200, bisect_ks=(3, 10), bisect_steps=500, bisect_halvings=4,
                 trials=2, fig4_steps=100),
}  # fmt: skip
# A bound counts as tight when the largest non-collapsing η lies within this fraction
# of it for every k.
TIGHT_TOLERANCE = 0.05


def compute_clop_theory(root: str, size: str = "full") -> dict[str, Any]:
    """[CLOP Thm 1, §3.1-3.2, Figs. 3-4]: the bound, the gradient-descent experiment and
    the largest non-collapsing η by bisection (`colabs/theory.ipynb` sections 5-6)."""
    import jax
    import jax.numpy as jnp

    start, cpu = time.perf_counter(), time.process_time()
    s = CLOP_THEORY_SIZES[size]
    gd = jax.jit(geometry.clop_gradient_descent)

    def unit_columns(key, m, k):
        x = jax.random.normal(key, (m, k))
        return x / jnp.linalg.norm(x, axis=0)

    def exact_root(k):
        return (k - 1) * (2 * k * k - 3 * k + 2) / ((k - 2) * (k * k - k + 1))

    x0 = unit_columns(jax.random.key(0), 100, 30)
    fig3 = [
        {
            "lr": lr,
            "steps": s["fig3_steps"],
            "rank": int(geometry.effective_rank(gd(x0, lr, s["fig3_steps"]))),
        }
        for lr in (2.0, 2.1)
    ]

    def collapses(lr, k):
        xs = jax.vmap(lambda kk: unit_columns(kk, 100, k))(
            jax.random.split(jax.random.key(k), s["trials"])
        )
        out = jax.vmap(lambda x: gd(x, lr, s["bisect_steps"]))(xs)
        return bool(jnp.any(jax.vmap(geometry.effective_rank)(out) == 1))

    bisection = []
    for k in s["bisect_ks"]:
        lo, hi = 1.0, 6.0  # 1.0 never collapses, 6.0 always does
        for _ in range(s["bisect_halvings"]):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if collapses(mid, k) else (mid, hi)
        bisection.append(
            {
                "k": k,
                "largest_safe_lr": lo,
                "printed_bound": geometry.clop_lr_bound(k),
                "exact_root": exact_root(k),
                "threshold": 2 * (k - 1) / (k - 2),
            }
        )
    k = 30
    x = gd(unit_columns(jax.random.key(3), 100, k), 0.5, s["fig4_steps"])
    cos = np.asarray(x.T @ x)[~np.eye(k, dtype=bool)]
    return {
        "section": "clop_theory",
        "size": size,
        "size_settings": {key: list(v) if isinstance(v, tuple) else v for key, v in s.items()},
        "trains": False,
        "command": "python -m hncl_jax.reproduce clop_theory"
        + ("" if size == "full" else f" --size={size}"),
        **_environment(),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "values": {
            "bound_k30": geometry.clop_lr_bound(30),
            "exact_root_k30": exact_root(30),
            "threshold_k30": 2 * 29 / 28,
            "fig3": fig3,
            "bisection": bisection,
            "fig4": {
                "k": k,
                "lr": 0.5,
                "steps": s["fig4_steps"],
                "rank": int(geometry.effective_rank(x)),
                "mean_norm": float(jnp.linalg.norm(x.mean(1))),
                "cos_min": float(cos.min()),
                "cos_max": float(cos.max()),
                "etf_cos": -1 / (k - 1),
            },
        },
    }


def bound_verdict(bisection: Sequence[Mapping[str, Any]]) -> str:
    """ "holds" when the largest non-collapsing η is at or above the printed bound for
    every k; "tight" when it is also within TIGHT_TOLERANCE of it for every k."""
    holds = all(b["largest_safe_lr"] >= b["printed_bound"] for b in bisection)
    worst = max(bisection, key=lambda b: b["largest_safe_lr"] / b["printed_bound"])
    ratio = worst["largest_safe_lr"] / worst["printed_bound"]
    if not holds:
        return "violated: a collapse below the bound"
    if ratio - 1 <= TIGHT_TOLERANCE:
        return "the bound holds and is tight"
    return (
        f"the bound holds but is not tight: {worst['largest_safe_lr']:.2f} against the bound "
        f"{worst['printed_bound']:.2f} at k = {worst['k']}"
    )


def render_clop_theory(results: Mapping[str, Any]) -> str:
    v = results["values"]
    b30 = value_verdict(v["bound_k30"], CLOP_THEORY_PAPER["bound_k30"])
    f3 = {r["lr"]: r for r in v["fig3"]}
    f3_ok = f3[2.0]["rank"] == 29 and f3[2.1]["rank"] == 1
    bis = v["bisection"]
    track = max(abs(b["largest_safe_lr"] - b["threshold"]) for b in bis)
    f4 = v["fig4"]
    f4_ok = f4["rank"] == f4["k"] - 1 and f4["cos_max"] - f4["cos_min"] > 0.1
    lines = [
        "### Learning-rate bound and the geometry of cosine minimisation "
        "(`colabs/theory.ipynb`, sections 5-6)",
        "",
        _header(results, "clop_theory"),
        "",
        "Verdict rules: a printed value matches when the computed one rounds to it; the "
        "bound of Thm 1 *holds* when no η at or below it collapses, and is *tight* when the "
        f"largest non-collapsing η lies within {TIGHT_TOLERANCE:.0%} of it for every k.",
        "",
        "| claim | paper | measured here | verdict |",
        "| --- | --- | --- | --- |",
        f"| Thm 1 bound for k = 30 (`geometry.clop_lr_bound(30)`) [CLOP App. D] | "
        f"{CLOP_THEORY_PAPER['bound_k30']} | {v['bound_k30']:.4f} | {b30}. The printed closed "
        "form has an algebra slip: the exact root of the paper's own inequality, "
        f"(k−1)(2k²−3k+2)/((k−2)(k²−k+1)), is {v['exact_root_k30']:.4f} at k = 30 "
        "(documented in `geometry.clop_lr_bound`) |",
        f"| §3.1, Fig. 3 left/middle: k = 30 unit vectors in R^100, gradient descent on the "
        f"total cosine similarity: η = 2.0 keeps rank, η = 2.1 collapses to rank one | rank "
        f"kept / rank 1 | effective rank after {f3[2.0]['steps']} steps: {f3[2.0]['rank']} at "
        f"η = 2.0, {f3[2.1]['rank']} at η = 2.1 | {'match' if f3_ok else 'differs'} |",
        "| Fig. 3 right: the largest non-collapsing η (bisection) against the bound, "
        "for every k | figure | "
        + ", ".join(f"k = {b['k']}: {b['largest_safe_lr']:.4f}" for b in bis)
        + " (printed bound "
        + ", ".join(f"{b['printed_bound']:.4f}" for b in bis)
        + ") | "
        + bound_verdict(bis)
        + ". The values found lie within "
        + f"{track:.1e} of 2(k−1)/(k−2) ("
        + ", ".join(f"{b['threshold']:.4f}" for b in bis)
        + "), above which the mean direction grows: the exact collapse threshold of these "
        "dynamics (docs/math.md §9) |",
        f"| §3.2, Fig. 4: minimising cosine similarity converges to rank k − 1, not to equal "
        f"angles | rank {f4['k'] - 1} of {f4['k']}, unequal cosines | effective rank "
        f"{f4['rank']}, ‖mean‖ = {f4['mean_norm']:.0e}, pairwise cosines from "
        f"{f4['cos_min']:.3f} to {f4['cos_max']:.3f} (simplex: {f4['etf_cos']:.4f}) | "
        + ("match" if f4_ok else "differs")
        + " |",
        "",
        "| k | printed bound | exact root | 2(k−1)/(k−2) | largest non-collapsing η |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {b['k']} | {b['printed_bound']:.4f} | {b['exact_root']:.4f} | "
            f"{b['threshold']:.4f} | {b['largest_safe_lr']:.4f} |"
            for b in bis
        ),
        "",
        f"Bisection: {results['size_settings']['trials']} random starts per k, "
        f"{results['size_settings']['bisect_steps']} steps, "
        f"{results['size_settings']['bisect_halvings']} halvings of [1, 6].",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HN synthetic
# [HN §5.1, Fig. 2]: the minima the losses reach on the synthetic set (C = 3, k = 256).
HN_SYNTHETIC_PAPER = {"scl": "0.2014", "ucl": "0.3935"}
# NC-rule thresholds: a run "reaches the minimum" when its final loss is within
# REACH_TOLERANCE of it, and "is at NC" when zero-sum, unit-norm and equal inner-product
# are all at most NC_TOLERANCE.
REACH_TOLERANCE = 1e-3
NC_TOLERANCE = 0.01
NC_COLUMNS = ("zero_sum", "unit_norm", "equal_inner_product")
HN_SYNTHETIC_SIZES: dict[str, dict[str, Any]] = {
    # The paper's data and loss sizes (`colabs/synthetic_collapse.ipynb` at full size)
    # and a quick ResNet-18 run on the vectors reshaped to 32×32×3.
    "full": dict(
        epochs=400, k=256, dim=3072, per_class=100, hidden_sizes=None, eval_every=20,
        betas=(10.0, 30.0, 50.0),
        resnet=dict(model="resnet18", num_filters=16, epochs=30, image_shape=(32, 32, 3),
                    points=(("scl", 0.0), ("hscl", 10.0))),
    ),
    "tiny": dict(
        epochs=20, k=16, dim=48, per_class=10, hidden_sizes=(16,), eval_every=10,
        betas=(10.0,),
        resnet=dict(model="resnet18", num_filters=2, epochs=1, image_shape=(4, 4, 3),
                    points=(("hscl", 10.0),)),
    ),
}  # fmt: skip
GRID_FILE = "grid_result.json"


def _hn_sized(c: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
    s = HN_SYNTHETIC_SIZES[size]
    c.num_epochs, c.loss.k = s["epochs"], s["k"]
    c.dataset_kwargs.dim, c.dataset_kwargs.per_class = s["dim"], s["per_class"]
    if s["hidden_sizes"]:
        c.model_kwargs.hidden_sizes = s["hidden_sizes"]
    return c


def hn_grid_config(size: str) -> ml_collections.ConfigDict:
    """The Fig. 2 grid: `synthetic_grid.get_config()` at the size's data and loss sizes."""
    from hncl_jax import synthetic_grid

    s = HN_SYNTHETIC_SIZES[size]
    cfg = _hn_sized(synthetic_grid.get_config(), size)
    cfg.grid.betas, cfg.grid.positives = tuple(s["betas"]), ("labels", "noise_views")
    cfg.grid.settings = ("scl", "hscl", "ucl", "hucl")
    cfg.eval_every_epochs = s["eval_every"]
    return cfg


def _train_grid_cached(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """`synthetic_grid.train_grid(cfg)`'s rows, cached in `<workdir>/grid_result.json`
    (reused when the config is the same, so a rerun trains nothing)."""
    from hncl_jax import synthetic_grid

    cfg_json = json.loads(cfg.to_json_best_effort())
    path = os.path.join(workdir, GRID_FILE)
    if os.path.exists(path):
        with open(path) as fh:
            record = json.load(fh)
        if record.get("config") == cfg_json:
            print(f"[reproduce] the Fig. 2 grid is finished already: {path}", flush=True)
            return record
    print("[reproduce] training the Fig. 2 grid (one compiled program)", flush=True)
    cpu = time.process_time()
    res = synthetic_grid.train_grid(cfg)
    record = {
        "config": cfg_json,
        "rows": [{k: sweep._json_value(v) for k, v in r.items()} for r in res.rows],
        "last_epoch_loss": [float(c[-1]) for c in res.loss_curves],
        "seconds": res.seconds,
        "cpu_seconds": time.process_time() - cpu,
    }
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=True)
    return record


def _trainer_row(row: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("train/epoch_loss", "train/theorem_bound", "train/loss_gap", "eval/test/z/ncm_acc")
    out = {k: row.get(k) for k in keep}
    out.update({m: row.get(f"nc/train/z/{m}") for m in (*NC_COLUMNS, "within_class_variance")})
    out.update(
        assignments=row["assignments"], seconds=row["seconds"], cpu_seconds=row["cpu_seconds"]
    )
    return out


def compute_hn_synthetic(root: str, size: str = "full") -> dict[str, Any]:
    """[HN Fig. 2]: the 16-run grid (`synthetic_grid.train_grid`, an MLP), its HSCL
    β = 10 run through the trainer as a cross-check, and a quick ResNet-18 on the vectors
    reshaped to images (`configs/synthetic.py`, `dataset_kwargs.image_shape`)."""
    from hncl_jax.configs import synthetic

    _enable_compilation_cache(root)
    s = HN_SYNTHETIC_SIZES[size]
    cfg = hn_grid_config(size)
    grid = _train_grid_cached(cfg, os.path.join(root, "grid"))
    # The trainer on the grid's HSCL β = 10 run (label positives).
    single = _hn_sized(synthetic.get_config("hscl"), size)
    single.loss.beta = 10.0
    single.eval_every_epochs = single.checkpoint_every_epochs = single.num_epochs
    single.plots, single.linear_probe = False, "off"
    check = _grid(single, os.path.join(root, "trainer_check"), [{}])[0]
    i = next(
        j
        for j, r in enumerate(grid["rows"])
        if (r["setting"], r["beta"], r["positives"]) == ("hscl", 10.0, "labels")
    )
    # The ResNet: the vectors reshaped to images, label positives.
    rs = s["resnet"]
    resnet = _hn_sized(synthetic.get_config(), size)
    resnet.model = rs["model"]
    resnet.model_kwargs = ml_collections.ConfigDict({"num_filters": rs["num_filters"]})
    resnet.dataset_kwargs.image_shape = tuple(rs["image_shape"])
    resnet.num_epochs = rs["epochs"]
    resnet.eval_every_epochs = resnet.checkpoint_every_epochs = rs["epochs"]
    resnet.plots, resnet.linear_probe = False, "off"
    points = [{"loss.name": n, "loss.beta": b} for n, b in rs["points"]]
    resnet_rows = _grid(resnet, os.path.join(root, "resnet"), points)
    trained = [grid, check, *resnet_rows]
    return {
        "section": "hn_synthetic",
        "size": size,
        "size_settings": json.loads(json.dumps(s)),
        "trains": True,
        "command": "python -m hncl_jax.reproduce hn_synthetic"
        + ("" if size == "full" else f" --size={size}"),
        **_environment(),
        **_cost(trained),
        "grid": {
            "rows": grid["rows"],
            "seconds": grid["seconds"],
            "cpu_seconds": grid["cpu_seconds"],
            "epochs": int(cfg.num_epochs),
            "k": int(cfg.loss.k),
            "dim": int(cfg.dataset_kwargs.dim),
            "per_class": int(cfg.dataset_kwargs.per_class),
            "batch_size": int(cfg.batch_size),
            "learning_rate": float(cfg.optimizer.learning_rate),
            "optimizer": str(cfg.optimizer.name),
            "average_last": int(cfg.grid.average_last),
            "hidden_sizes": list(cfg.model_kwargs.get("hidden_sizes") or [1024, 512]),
        },
        "trainer_check": {
            "trainer_last_epoch_loss": check["train/epoch_loss"],
            "grid_last_epoch_loss": grid["last_epoch_loss"][i],
            "seconds": check["seconds"],
            "cpu_seconds": check["cpu_seconds"],
        },
        "resnet": {
            "model": rs["model"],
            "num_filters": rs["num_filters"],
            "epochs": rs["epochs"],
            "image_shape": list(rs["image_shape"]),
            "rows": [_trainer_row(r) for r in resnet_rows],
        },
    }


def _paper_sized(g: Mapping[str, Any]) -> bool:
    """Whether the grid ran at the paper's sizes [HN §5.1] (docs/math.md §13)."""
    return (g["dim"], g["per_class"], g["k"], g["epochs"]) == (3072, 100, 256, 400)


def _hn_label(setting: str, beta: float) -> str:
    return setting.upper() + (f" β = {beta:g}" if setting in ("hscl", "hucl") else "")


def _at_nc(r: Mapping[str, Any]) -> bool:
    return all(r.get(m) is not None and r[m] <= NC_TOLERANCE for m in NC_COLUMNS)


def _g(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    if x != 0 and abs(x) < 10 ** (-digits + 1):
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def render_hn_synthetic(results: Mapping[str, Any]) -> str:
    g = results["grid"]
    rows = g["rows"]
    sup = [r for r in rows if r["setting"] in ("scl", "hscl")]
    ucl_lab = [r for r in rows if r["setting"] == "ucl" and r["positives"] == "labels"]
    hucl_lab = [r for r in rows if r["setting"] == "hucl" and r["positives"] == "labels"]
    unsup_views = [
        r for r in rows if r["setting"] in ("ucl", "hucl") and r["positives"] == "noise_views"
    ]
    hidden = " × ".join(str(h) for h in g["hidden_sizes"])
    tc = results["trainer_check"]
    same = abs(tc["trainer_last_epoch_loss"] - tc["grid_last_epoch_loss"]) <= 1e-4 * abs(
        tc["grid_last_epoch_loss"]
    )
    lines = [
        "### Synthetic data, Fig. 2 (`colabs/synthetic_collapse.ipynb`)",
        "",
        _header(results, "hn_synthetic"),
        "",
        f"**Model: an MLP (hidden {hidden}), not the paper's.** The paper trains a ResNet-50 "
        "on the vectors reshaped to 32×32×3; a quick ResNet-18 run is the second table "
        "below. Data and loss "
        + ("at the paper's sizes" if _paper_sized(g) else "at a test size (not the paper's)")
        + f": 3 classes × {g['per_class']} points in "
        f"R^{g['dim']}, d = 2, unit ball, InfoNCE with k = {g['k']}; {g['optimizer']} "
        f"{g['learning_rate']:g}, the whole set as one batch, {g['epochs']} epochs. All "
        f"{len(rows)} runs are trained in one compiled program by "
        f"`hncl_jax.synthetic_grid.train_grid` ({_duration(g['seconds'])} wall, compilation "
        f"included). Cross-check: the HSCL β = 10 run through the command-line trainer "
        f"(`configs/synthetic.py`) ends at last-epoch loss {tc['trainer_last_epoch_loss']:.6f}, "
        f"the grid's at {tc['grid_last_epoch_loss']:.6f} "
        f"({'equal to 1e-4 relative' if same else 'they differ'}). `final` is the mean loss "
        f"of the last {g['average_last']} epochs, `bound` the Thm 2 (SCL/HSCL) or Thm 3 "
        "(UCL) minimum; for HUCL the Thm 3 value is only a lower bound (Thm 1), shown in "
        "brackets.",
        "",
        "| positives | setting | β | final loss | bound | zero-sum | unit-norm | "
        "equal inner-product |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        bound = _g(r["bound"])
        if r["setting"] == "hucl":
            bound = f"({bound})"
        lines.append(
            f"| {'labels' if r['positives'] == 'labels' else 'noise views'} | "
            f"{r['setting'].upper()} | {r['beta']:g} | {_g(r['final_loss'])} | {bound} | "
            + " | ".join(_g(r[m], 3) for m in NC_COLUMNS)
            + " |"
        )
    sup_reach = all(r["gap"] <= REACH_TOLERANCE for r in sup)
    sup_nc = all(_at_nc(r) for r in sup)
    max_gap = max(r["gap"] for r in sup)
    max_nc = max(r[m] for r in sup for m in NC_COLUMNS)
    paper_scl = HN_SYNTHETIC_PAPER["scl"]
    lines += [
        "",
        f"Verdict rule: a run reaches its minimum when its final loss is within "
        f"{REACH_TOLERANCE:g} of it, and is at NC when zero-sum, unit-norm and equal "
        f"inner-product are all ≤ {NC_TOLERANCE:g}; the paper's printed minima are compared "
        "at their printed digits. The verdicts are about this MLP, not the paper's ResNet-50.",
        "",
        "| claim [HN §5.1, Fig. 2] | paper | measured here (MLP) | verdict |",
        "| --- | --- | --- | --- |",
        f"| SCL and HSCL (every β) reach the Thm 2 minimum and NC, with label or noise-view "
        f"positives | {paper_scl} for all β | final "
        + ", ".join(sorted({_g(r["final_loss"]) for r in sup}))
        + f" (largest gap {max_gap:.1e}), NC metrics ≤ {max_nc:.1e} | "
        + (
            f"match; against the paper's printed {paper_scl}: "
            + (
                "match for every run"
                if all(value_verdict(r["final_loss"], paper_scl) == "match" for r in sup)
                else "differs for some runs"
            )
            if sup_reach and sup_nc
            else "differs"
        )
        + " |",
    ]
    if ucl_lab:
        u = ucl_lab[0]
        ok = u["gap"] <= REACH_TOLERANCE and _at_nc(u)
        lines.append(
            f"| UCL with label positives reaches the Thm 3 minimum and NC | "
            f"{HN_SYNTHETIC_PAPER['ucl']} | {_g(u['final_loss'])} (exact minimum "
            f"{u['bound']:.5f}, gap {u['gap']:.1e}); NC metrics ≤ "
            f"{max(u[m] for m in NC_COLUMNS):.1e} | "
            + ("match" if ok else "differs")
            + " (against the exact minimum); against the paper's printed "
            + f"{HN_SYNTHETIC_PAPER['ucl']}: "
            + value_verdict(u["final_loss"], HN_SYNTHETIC_PAPER["ucl"])
            + " (see the Thm 3 row of the theory table) |"
        )
    if hucl_lab:
        not_nc = all(not _at_nc(r) for r in hucl_lab)
        lines.append(
            "| HUCL does not attain NC (label positives) | figure only | final loss "
            + ", ".join(f"β = {r['beta']:g}: {_g(r['final_loss'])}" for r in hucl_lab)
            + f" (log 2 = {math.log(2):.4f}); zero-sum "
            + ", ".join(_g(r["zero_sum"], 3) for r in hucl_lab)
            + " | "
            + (
                "differs: some HUCL run is at NC"
                if not not_nc
                else "holds (qualitative): the loss sits at log 2, where the tilted negatives "
                "are almost all of the anchor's own class and the loss is flat"
                if all(abs(r["final_loss"] - math.log(2)) <= 0.01 for r in hucl_lab)
                else "holds (qualitative)"
            )
            + " |"
        )
    if unsup_views:
        not_nc = all(not _at_nc(r) for r in unsup_views)
        lines.append(
            "| UCL / HUCL with noise views do not reach NC | figure only | unit-norm "
            f"{min(r['unit_norm'] for r in unsup_views):.3f} – "
            f"{max(r['unit_norm'] for r in unsup_views):.3f}, zero-sum "
            f"{min(r['zero_sum'] for r in unsup_views):.3f} – "
            f"{max(r['zero_sum'] for r in unsup_views):.3f} | "
            + ("holds (qualitative)" if not_nc else "differs: some run is at NC")
            + ". The bound printed for them treats the reference examples as the latent "
            "classes (docs/math.md §0), which views make the only ones the loss sees. |"
        )
    rn = results["resnet"]
    shape = "×".join(str(v) for v in rn["image_shape"])
    lines += [
        "",
        f"**ResNet, quick size** (not the paper's): `{rn['model']}` with "
        f"`model_kwargs.num_filters={rn['num_filters']}` (the paper's ResNet-50 has 64) on "
        f"the same vectors reshaped to {shape} (`dataset_kwargs.image_shape`), label "
        f"positives, {rn['epochs']} epoch(s) (the paper: 400), the other settings as above; "
        "one run each through the trainer:",
        "",
        "| setting | epochs | final loss | bound | gap | zero-sum | unit-norm | "
        "equal inner-product | NCM (test) | at NC | wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rn["rows"]:
        a = r["assignments"]
        lines.append(
            f"| {_hn_label(a['loss.name'], a['loss.beta'])} | {rn['epochs']} | "
            f"{_g(r['train/epoch_loss'])} | {_g(r['train/theorem_bound'])} | "
            f"{_g(r['train/loss_gap'])} | "
            + " | ".join(_g(r[m], 3) for m in NC_COLUMNS)
            + f" | {_g(r['eval/test/z/ncm_acc'], 3)} | {'yes' if _at_nc(r) else 'no'} | "
            f"{_duration(r['seconds'])} |"
        )
    reached = [r for r in rn["rows"] if _at_nc(r) and (r["train/loss_gap"] or 1) <= REACH_TOLERANCE]
    lines += [
        "",
        f"At this size {len(reached)} of {len(rn['rows'])} ResNet runs reach the minimum and "
        "NC by the rule above"
        + (
            "; the run is far shorter than the paper's, so this does not test the "
            "paper's ResNet-50 claim."
            if len(reached) < len(rn["rows"])
            else "."
        ),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- near-NC
# [HN Table 2] (CIFAR-100, ResNet-50): zero-sum, unit-norm, equal inner-product after the
# second stage; "near-NC model" is the stage-1 HSCL β = 10 model.
NEAR_NC_PAPER = {
    "near-NC model": (0.012, 1.8e-8, 0.004),
    "SCL": (0.006, 2.0e-8, 0.007),
    "HSCL β = 2": (0.005, 2.2e-8, 0.004),
    "HSCL β = 5": (0.007, 1.9e-8, 0.002),
    "HSCL β = 10": (0.007, 2.0e-8, 0.002),
    "HSCL β = 30": (0.004, 1.7e-8, 0.001),
    "UCL": (0.005, 3.9e-4, 0.005),
    "HUCL β = 2": (0.005, 6.1e-4, 0.003),
    "HUCL β = 5": (0.004, 1.4e-3, 0.002),
    "HUCL β = 10": (0.093, 1.5e-3, 0.047),
    "HUCL β = 30": (0.761, 7.9e-4, 0.586),
}
NEAR_NC_BETAS = (0.0, 2.0, 5.0, 10.0, 30.0)
# Verdict rules: a value matches the paper's when it lies within a factor MATCH_FACTOR of
# it (one seed, so no standard error); a run stays at NC when its zero-sum and equal
# inner-product are both at most STAY_TOLERANCE, which sorts the paper's own rows as the
# paper does (those that stay are ≤ 0.012; HUCL β = 10 and 30 have zero-sum 0.093, 0.761).
MATCH_FACTOR = 3.0
STAY_TOLERANCE = 0.05
NEAR_NC_SIZES = {
    "full": dict(stage1=None, stage2=None),  # the config's 400 epochs, twice
    "tiny": dict(stage1=4, stage2=2, dim=48, per_class=10, hidden_sizes=(16,), k=16),
}


def near_nc_configs(size: str, root: str):
    """(stage-1 config, stage-2 base config, stage-2 grid) as the notebook builds them
    for `HNCL_DATASET=hn_synthetic`."""
    from hncl_jax import configs

    s = NEAR_NC_SIZES[size]
    base = configs.load("synthetic:hscl")
    if size == "tiny":
        base.dataset_kwargs.dim, base.dataset_kwargs.per_class = s["dim"], s["per_class"]
        base.model_kwargs.hidden_sizes = s["hidden_sizes"]
        base.loss.k = s["k"]
    if s["stage1"]:
        base.num_epochs = s["stage1"]
    base.loss.name, base.loss.beta = "hscl", 10.0
    base.eval_every_epochs = base.checkpoint_every_epochs = max(base.num_epochs // 4, 1)
    base.linear_probe, base.plots = "off", False
    stage1_workdir = os.path.abspath(os.path.join(root, "stage1", "base"))
    epochs2 = s["stage2"] or base.num_epochs
    warm = sweep.apply_assignments(base, {"init_from": stage1_workdir, "num_epochs": epochs2})
    warm.eval_every_epochs = warm.checkpoint_every_epochs = max(epochs2 // 4, 1)
    grid = {"loss.name": ["hscl", "hucl"], "loss.beta": list(NEAR_NC_BETAS)}
    return base, warm, grid


def compute_near_nc(root: str, size: str = "full") -> dict[str, Any]:
    """[HN Table 2] on the HN synthetic set: HSCL β = 10, then each of the ten settings
    from its checkpoint (`colabs/near_nc_warm_start.ipynb` with HNCL_DATASET=hn_synthetic)."""
    _enable_compilation_cache(root)
    base, warm, grid = near_nc_configs(size, root)
    near = _grid(base, os.path.join(root, "stage1"), [{}])
    points = sweep.expand_grid(grid)
    stage2 = _grid(warm, os.path.join(root, "stage2"), points)

    def metrics(r):
        return {m: r[f"nc/train/z/{m}"] for m in NC_COLUMNS}

    from hncl_jax import train

    train_ds, _ = train.load_data(base)

    rows = [{"setting": "near-NC model", **metrics(near[0])}]
    for r in stage2:
        a = r["assignments"]
        fam = {"hscl": "SCL", "hucl": "UCL"}[a["loss.name"]]
        name = fam if a["loss.beta"] == 0 else f"H{fam} β = {a['loss.beta']:g}"
        rows.append({"setting": name, **metrics(r)})
    return {
        "section": "near_nc",
        "size": size,
        "size_settings": json.loads(json.dumps(NEAR_NC_SIZES[size])),
        "trains": True,
        "command": "python -m hncl_jax.reproduce near_nc"
        + ("" if size == "full" else f" --size={size}"),
        **_environment(),
        **_cost(near + stage2),
        "stage1_epochs": int(base.num_epochs),
        "stage2_epochs": int(warm.num_epochs),
        "dim": int(np.prod(train_ds.images.shape[1:])),
        "per_class": int(np.bincount(train_ds.labels).max()),
        "rows": rows,
    }


def _ratio_text(measured: float, paper: float) -> str:
    r = measured / paper
    return f"×{r:.1f}" if r >= 1 else f"×{r:.2f}"


def near_nc_row_verdict(r: Mapping[str, Any]) -> str:
    """ "match" when zero-sum and equal inner-product are both within MATCH_FACTOR of the
    paper's; otherwise the ratios measured / paper."""
    zs, _, eip = NEAR_NC_PAPER[r["setting"]]
    ratios = (r["zero_sum"] / zs, r["equal_inner_product"] / eip)
    if all(1 / MATCH_FACTOR <= x <= MATCH_FACTOR for x in ratios):
        return "match"
    side = (
        " (closer to NC)"
        if all(x < 1 for x in ratios)
        else " (farther from NC)"
        if all(x > 1 for x in ratios)
        else ""
    )
    return (
        f"differs{side}: zero-sum {_ratio_text(r['zero_sum'], zs)}, equal inner-product "
        f"{_ratio_text(r['equal_inner_product'], eip)} the paper's"
    )


def _stays(r: Mapping[str, Any]) -> bool:
    return r["zero_sum"] <= STAY_TOLERANCE and r["equal_inner_product"] <= STAY_TOLERANCE


def render_near_nc(results: Mapping[str, Any]) -> str:
    rows = results["rows"]
    by = {r["setting"]: r for r in rows}
    lines = [
        "### Near-NC warm start, Table 2 (`colabs/near_nc_warm_start.ipynb`)",
        "",
        _header(results, "near_nc"),
        "",
        "Paper: CIFAR-100, ResNet-50, HSCL β = 10 for 400 epochs, then 400 more under each "
        "setting. Here (no CIFAR): the same protocol on the HN synthetic set "
        f"(3 × {results['per_class']} points in R^{results['dim']}, the MLP of "
        f"`configs/synthetic.py`), {results['stage1_epochs']} + {results['stage2_epochs']} "
        "epochs, `config.init_from` = the stage-1 workdir; one seed. NC metrics of the train "
        "representations after stage 2, the paper's in brackets.",
        "",
        f"Verdict rule: a row matches when its zero-sum and equal inner-product both lie "
        f"within a factor {MATCH_FACTOR:g} of the paper's (unit-norm, at float precision in "
        f"both, is not compared row by row); a run stays at NC when zero-sum and equal "
        f"inner-product are ≤ {STAY_TOLERANCE:g}.",
        "",
        "| setting | zero-sum (paper) | unit-norm (paper) | equal inner-product (paper) | "
        "verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        zs, un, eip = NEAR_NC_PAPER[r["setting"]]
        lines.append(
            f"| {r['setting']} | {_g(r['zero_sum'])} ({zs:g}) | {r['unit_norm']:.1e} ({un:.1e}) "
            f"| {_g(r['equal_inner_product'])} ({eip:g}) | {near_nc_row_verdict(r)} |"
        )
    sup = [r for r in rows if r["setting"].startswith(("SCL", "HSCL"))]
    small = [r for r in rows if r["setting"] in ("UCL", "HUCL β = 2", "HUCL β = 5")]

    def summary(rs):
        matched = [r for r in rs if near_nc_row_verdict(r) == "match"]
        stay = [r for r in rs if _stays(r)]
        text = (
            f"{len(stay)} of {len(rs)} stay at NC, {len(matched)} of {len(rs)} match the "
            "paper's values"
        )
        off = [r["setting"] for r in rs if r not in matched]
        return (
            text + (f" (not: {', '.join(off)})" if off else ""),
            len(stay) == len(rs),
            len(matched) == len(rs),
        )

    sup_text, sup_stay, sup_match = summary(sup)
    small_text, small_stay, small_match = summary(small)
    lines += [
        "",
        "| claim [HN §5.4] | measured here | verdict |",
        "| --- | --- | --- |",
        f"| Supervised settings (SCL, HSCL every β) stay at NC from the near-NC model | "
        f"{sup_text} | "
        + ("match" if sup_stay and sup_match else "holds qualitatively" if sup_stay else "differs")
        + " |",
        f"| UCL and HUCL at small β (≤ 5) stay near NC | {small_text} | "
        + (
            "match"
            if small_stay and small_match
            else "partly: they stay at NC, but not every value is near the paper's"
            if small_stay
            else "differs"
        )
        + " |",
    ]
    for name, paper_zs in (("HUCL β = 10", NEAR_NC_PAPER["HUCL β = 10"][0]),):
        if name in by:
            r = by[name]
            lines.append(
                f"| {name} leaves NC | zero-sum {_g(r['zero_sum'])} (paper {paper_zs:g}) | "
                + ("holds" if not _stays(r) else "differs: it stays at NC here")
                + (f"; {near_nc_row_verdict(r)}" if not _stays(r) else "")
                + " |"
            )
    if "HUCL β = 30" in by:
        r = by["HUCL β = 30"]
        furthest = max(
            (x for x in rows if x["setting"] != "near-NC model"), key=lambda x: x["zero_sum"]
        )
        holds = furthest is r
        lines.append(
            f"| HUCL β = 30 leaves NC furthest | zero-sum {_g(r['zero_sum'])} (paper "
            f"{NEAR_NC_PAPER['HUCL β = 30'][0]:g}); furthest here: {furthest['setting']} | "
            + (
                "holds"
                if holds
                else "differs on the synthetic stand-in. A likely reason, not tested here: "
                "from the near-NC start the tilted distribution at β = 30 puts almost all its "
                "mass on the anchor's own class, whose representations at NC coincide, so the "
                "loss is flat and the optimiser barely moves the class means (from a random "
                "start HUCL β = 30 does stay far from NC: the Fig. 2 table). The CIFAR-100 "
                "notebook runs the paper's setting."
            )
            + " |"
        )
    unsup = [r for r in rows if r["setting"].startswith(("UCL", "HUCL"))]
    if unsup:
        top = max(r["unit_norm"] for r in unsup)
        lines.append(
            "| Unit-norm of the unsupervised settings grows to 1e-4 – 1e-3 | largest "
            f"{top:.1e} | "
            + (
                "holds"
                if top >= 1e-4
                else "differs: here the class means' norms stay within float precision of 1"
            )
            + " |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line
def _computers() -> dict[str, Any]:
    return {
        "theory": compute_theory,
        "hn_synthetic": compute_hn_synthetic,
        "near_nc": compute_near_nc,
        "clop_theory": compute_clop_theory,
        "clop_synthetic": compute_clop_synthetic,
    }


def render_section(section: str, results: Mapping[str, Any]) -> str:
    """The generated block of `section` (markers included) from its results."""
    if section == "fashion_mnist":
        return render(results)
    renderers = {
        "theory": render_theory,
        "hn_synthetic": render_hn_synthetic,
        "near_nc": render_near_nc,
        "clop_theory": render_clop_theory,
        "clop_synthetic": render_clop_synthetic,
    }
    begin, end = markers(section)
    return begin + "\n" + renderers[section](results).strip("\n") + "\n" + end


def write_section(section: str, results: Mapping[str, Any], doc_path: str = DOC) -> str:
    """Replaces `section`'s generated block of `doc_path` (appends it when absent)."""
    begin, end = markers(section)
    return replace_block(doc_path, begin, end, render_section(section, results))


def section_block(section: str, doc_path: str = DOC) -> str:
    """The generated block of `section` currently in `doc_path` (markers included)."""
    begin, end = markers(section)
    text = open(doc_path).read()
    if begin not in text or end not in text:
        raise ValueError(f"{doc_path} has no generated {section} section ({begin} ... {end}).")
    return begin + text.split(begin, 1)[1].split(end, 1)[0] + end


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m hncl_jax.reproduce",
        description="Compute (train where needed, resumable) one section of REPRODUCTION.md, "
        "write its results file, and regenerate the section from it.",
    )
    p.add_argument("section", choices=SECTIONS)
    p.add_argument(
        "--root",
        default=None,
        help="parent folder of the runs (default runs/reproduce/<section>[_<size>])",
    )
    p.add_argument(
        "--size",
        default=None,
        help=f"run size: fashion_mnist {tuple(SIZES)} (default cpu), the other sections "
        f"{SECTION_SIZES} (default full)",
    )
    p.add_argument(
        "--studies",
        default=",".join(STUDIES),
        help=f"fashion_mnist: comma-separated subset of {','.join(STUDIES)}",
    )
    p.add_argument(
        "--shard", default="0/1", help="fashion_mnist: i/n: train every n-th run of each study"
    )
    p.add_argument("--results", default=None, help="results file (default results/<section>.json)")
    p.add_argument(
        "--write_doc",
        action="store_true",
        help="only regenerate the REPRODUCTION.md section (and figures) from the results file",
    )
    p.add_argument("--doc", default=DOC, help="the document to update")
    args = p.parse_args(argv)
    if args.section == "fashion_mnist":
        return _main_fashion_mnist(p, args)
    size = args.size or "full"
    if size not in SECTION_SIZES:
        p.error(f"--size={size!r}: {args.section} has sizes {SECTION_SIZES}.")
    root = args.root or os.path.join(
        "runs", "reproduce", args.section + ("" if size == "full" else f"_{size}")
    )
    out = args.results or section_results_path(args.section, size)
    if not args.write_doc:
        start = time.perf_counter()
        results = _computers()[args.section](root, size)
        results.setdefault("seconds", time.perf_counter() - start)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as fh:
            json.dump(results, fh, indent=1, sort_keys=True)
        print(f"wrote {out}")
    with open(out) as fh:
        results = json.load(fh)
    write_section(args.section, results, args.doc)
    print(f"wrote the {args.section} section of {args.doc} from {out}")
    return 0


def _main_fashion_mnist(p, args) -> int:
    size = args.size or "cpu"
    if size not in SIZES:
        p.error(f"--size={size!r}: fashion_mnist has sizes {tuple(SIZES)}.")
    root = args.root or os.path.join("runs", "reproduce", f"{args.section}_{size}")
    out = args.results or results_path(args.section, size)
    try:
        shard = tuple(int(v) for v in args.shard.split("/"))
        if len(shard) != 2:
            raise ValueError
    except ValueError:
        p.error(f"--shard={args.shard!r} must look like i/n, e.g. 0/2")
    studies = [s for s in args.studies.split(",") if s]
    try:
        _check_args(args.section, size, studies, shard)
    except ValueError as e:
        p.error(str(e))
    if not args.write_doc:
        run(args.section, root, size=size, studies=studies, shard=shard)
        results = collect(args.section, root, size)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as fh:
            json.dump(results, fh, indent=1, sort_keys=True)
        print(f"wrote {out}: {len(results['runs'])} runs, {len(results['missing'])} missing")
    with open(out) as fh:
        results = json.load(fh)
    plot(results, os.path.dirname(os.path.abspath(out)))
    write_doc(results, args.doc)
    print(f"wrote the Fashion-MNIST section of {args.doc} from {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
