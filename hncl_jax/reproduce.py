"""The papers' real-image claims on Fashion-MNIST: the grid, its results file, the report.

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
* `clop` [CLOP Fig. 6 / Table 1]: NT-Xent with and without the CLOP term at 10 % and
  100 % labels at size "cpu" (also 50 % at size "full"), batch 256 (and, at size
  "full", batches 32 to 512 at 10 % labels), and SupCon with
  and without it: kNN-5 and linear-probe top-1, both fitted on the labelled examples.

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
  arXiv:2209.00078), §5, Figs. 3-4, Tables 1-2.
  [CLOP] Li, Nguyen and Pimentel-Alarcón, "Preventing Collapse in Contrastive Learning
  with Orthonormal Prototypes (CLOP)" (arXiv:2403.18699), §5, Fig. 6, Table 1.
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

from hncl_jax import geometry, reporting, sweep

DATASETS = ("fashion_mnist",)
STUDIES = ("hn_supervised", "hn_unsupervised", "hn_warm_start", "clop")
BETAS = (2.0, 5.0, 10.0, 30.0)
WARM_START_FROM = 10.0  # the HSCL β whose model starts the Table 2 runs
RESULTS_DIR = "results"
DOC = "REPRODUCTION.md"
BEGIN = "<!-- BEGIN generated:fashion_mnist -->"
END = "<!-- END generated:fashion_mnist -->"

# Run sizes. "cpu" is what the committed results were run at (a 2-core CPU, about an
# hour for the whole grid); "full" is the whole training set and longer training for a
# GPU; "tiny" checks the pipeline in tests.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        max_examples=192, model="tiny_cnn", width=None, epochs=2, eval_every=1,
        batch=64, k=16, seeds=2, probe_epochs=5, clop_batches=(32,), clop_fractions=(0.5, 1.0),
    ),
    "cpu": dict(
        max_examples=5000, model="small_cnn", width=16, epochs=6, eval_every=2,
        batch=256, k=256, seeds=3, probe_epochs=30, clop_batches=(),
        clop_fractions=(0.1, 1.0),
    ),
    "full": dict(
        max_examples=None, model="small_cnn", width=32, epochs=50, eval_every=5,
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
    if s["width"] is not None:
        c.model_kwargs.width = s["width"]
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
    import jax

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
    return {
        "dataset": dataset,
        "size": size,
        "size_settings": {k: v for k, v in SIZES[size].items()},
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "device": jax.devices()[0].device_kind,
            "platform": jax.default_backend(),
        },
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
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
        f"many test images, model `{s['model']}`"
        + (f" (width {s['width']})" if s["width"] else "")
        + f", {s['epochs']} "
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
    section = render(results)
    text = open(doc_path).read() if os.path.exists(doc_path) else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(doc_path, "w") as fh:
        fh.write(text)
    return doc_path


def generated_section(doc_path: str = DOC) -> str:
    """The generated section currently in `doc_path` (markers included)."""
    text = open(doc_path).read()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{doc_path} has no generated Fashion-MNIST section ({BEGIN} ... {END}).")
    return BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END


# --------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m hncl_jax.reproduce",
        description="Train the Fashion-MNIST reproduction grid (resumable), write its "
        "results file, and regenerate REPRODUCTION.md's section from it.",
    )
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument(
        "--root",
        default=None,
        help="parent folder of the runs (default runs/reproduce/<dataset>_<size>)",
    )
    p.add_argument("--size", default="cpu", choices=tuple(SIZES), help="run size (default cpu)")
    p.add_argument(
        "--studies",
        default=",".join(STUDIES),
        help=f"comma-separated subset of {','.join(STUDIES)}",
    )
    p.add_argument("--shard", default="0/1", help="i/n: train every n-th run of each study")
    p.add_argument(
        "--results", default=None, help="results file (default results/<dataset>_<size>.json)"
    )
    p.add_argument(
        "--write_doc",
        action="store_true",
        help="only regenerate the REPRODUCTION.md section and figures from the results file",
    )
    p.add_argument("--doc", default=DOC, help="the document to update")
    args = p.parse_args(argv)
    root = args.root or os.path.join("runs", "reproduce", f"{args.dataset}_{args.size}")
    out = args.results or results_path(args.dataset, args.size)
    try:
        shard = tuple(int(v) for v in args.shard.split("/"))
        if len(shard) != 2:
            raise ValueError
    except ValueError:
        p.error(f"--shard={args.shard!r} must look like i/n, e.g. 0/2")
    studies = [s for s in args.studies.split(",") if s]
    try:
        _check_args(args.dataset, args.size, studies, shard)
    except ValueError as e:
        p.error(str(e))
    if not args.write_doc:
        run(args.dataset, root, size=args.size, studies=studies, shard=shard)
        results = collect(args.dataset, root, args.size)
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
