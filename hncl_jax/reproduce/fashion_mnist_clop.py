"""REPRODUCTION.md, section `fashion_mnist_clop`: CLOP's learning-rate sweep, its λ
ablation and its prototypes against the simplex ETF on Fashion-MNIST, under the paper's
optimizer (LARS).

    python -m hncl_jax.reproduce fashion_mnist_clop              # train, write results
    python -m hncl_jax.reproduce fashion_mnist_clop --write_doc  # regenerate the section

The recipe is CLOP §5's fully supervised one at CPU size: SupCon on two crop-and-flip
views of every (labelled) image, with and without the CLOP term (λ = 1, orthonormal
prototypes), LARS (momentum 0.9, trust coefficient 0.001) with cosine decay, d = 16,
unit sphere, τ = 0.5, and the paper's base learning rate 0.3·B/256. Studies, each
resumable and written to the results as it finishes (`--studies`):

* `learning_rate` [CLOP Fig. 7, Thm 1]: the learning rates of `SIZES[size]
  ["learning_rates"]`, with and without CLOP;
* `lambda` [CLOP Table 1]: λ of `SIZES[size]["lambdas"]` at the base learning rate
  (λ = 0 and 1 there are the `learning_rate` study's runs);
* `prototypes` [CLOP §4]: simplex-ETF prototypes at the base and the largest learning
  rate, against the orthonormal ones of the `learning_rate` study;
* `batch` [CLOP Fig. 6]: the batch sizes of `SIZES[size]["batches"]` at the paper's
  learning rate 0.3·B/256 and the same number of epochs, with and without CLOP (the size's
  own batch is the `learning_rate` study's runs at the base rate).

Collapse is measured as the paper does (top-1 and top-5 of a linear probe, here also
kNN-5) and by the geometry the paper's Theorem 1 speaks of: the DC rank and the smallest
normalized singular value of the class means' covariance, and RankMe of the embeddings.

Verdict rule: a difference between two settings counts when Welch's two-sided t-test
over the seeds gives p < `common.ALPHA` (`common.difference_verdict`); with two seeds
the test has about one degree of freedom, so only large, consistent differences count.

The project's CLOP term is a mean over the labelled anchors (docs/math.md §9) where the
paper's eq. 4 sums: at the same λ it weighs 1/|S| of the paper's term against the
contrastive loss (|S| = the labelled anchors of a batch).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
from matplotlib.figure import Figure

from hncl_jax import sweep
from hncl_jax.configs import clop_fashion_mnist as clop_config
from hncl_jax.reproduce import common
from hncl_jax.reproduce import fashion_mnist as fm
from hncl_jax.reproduce import fashion_mnist_grid as fm_grid
from hncl_jax.sweep import launchers

NAME = "fashion_mnist_clop"
STUDIES = ("learning_rate", "lambda", "prototypes", "batch")
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        max_examples=192, model="tiny_cnn", width=None, depth=None, epochs=2, eval_every=2,
        batch=64, seeds=2, probe_epochs=5, learning_rates=(0.075, 10.0), lambdas=(0.5,),
        batches=(32,),
    ),
    "cpu": dict(
        max_examples=8000, model="small_cnn", width=32, depth=1, epochs=6, eval_every=3,
        batch=256, seeds=2, probe_epochs=30, learning_rates=(0.3, 3.0, 10.0),
        lambdas=(0.1, 0.5, 1.5), batches=(32,),
    ),
    "full": dict(
        max_examples=None, model="small_cnn", width=32, depth=2, epochs=50, eval_every=10,
        batch=1024, seeds=3, probe_epochs=100, learning_rates=(0.1, 0.3, 1.2, 3.0, 10.0),
        lambdas=(0.1, 0.5, 1.5), batches=(32, 64, 128, 256, 512, 2048),
    ),
}  # fmt: skip
DEFAULT_SIZE = "cpu"
UNSUFFIXED_SIZE = None  # results/fashion_mnist_clop_<size>.json
KEEP = re.compile(r"^(eval/test/|train/epoch_loss$|train/nonfinite|nc/train/z/(?!class))")
CURVE_KEYS = fm_grid.CURVE_KEYS + ("nc/train/z/rankme",)

ACCURACY = [
    ("kNN-5 (z)", "eval/test/z/knn5_acc", 3),
    ("probe top-1 (z)", "eval/test/z/probe_top1", 3),
    ("probe top-1 (h)", "eval/test/h/probe_top1", 3),
    ("probe top-5 (z)", "eval/test/z/probe_top5", 3),
]
GEOMETRY = [
    ("DC rank (of 9)", "nc/train/z/dc_rank", 1),
    ("log10 smallest sing. value", fm.LOG_SV_MIN, 2),
    ("RankMe (of 16)", "nc/train/z/rankme", 2),
    ("final loss", "train/epoch_loss", 3),
]
# The metrics each claim is scored on: accuracy as the paper reports it, and collapse.
SCORED = [
    ("probe top-1 (z)", "eval/test/z/probe_top1", 3),
    ("probe top-5 (z)", "eval/test/z/probe_top5", 3),
    ("RankMe", "nc/train/z/rankme", 2),
]


TRUST_COEFFICIENT = 0.001  # optax.lars' default, which the trainer's "lars" uses


def paper_learning_rate(batch: int) -> float:
    """The paper's learning rate 0.3·B/256 for batch B [CLOP §5, Fig. 6]."""
    return 0.3 * batch / 256


def base_learning_rate(size: str) -> float:
    """The paper's learning rate at the size's batch."""
    return paper_learning_rate(SIZES[size]["batch"])


def results_path(size: str = DEFAULT_SIZE, repo: str | None = None) -> str:
    """`results/fashion_mnist_clop_<size>.json`, under `repo` when given."""
    return common.results_path(NAME, size, UNSUFFIXED_SIZE, repo)


# --------------------------------------------------------------------------- the runs
def base_config(size: str) -> ml_collections.ConfigDict:
    """SupCon on every label with CLOP λ = 1 (orthonormal), LARS at the base rate."""
    s = SIZES[size]
    c = clop_config.get_config("100pct")
    fm_grid.set_model_and_data(c, s)
    c.loss.name = "supcon"
    c.optimizer.name = "lars"
    c.optimizer.learning_rate = base_learning_rate(size)
    c.batch_size = s["batch"]
    c.num_epochs = s["epochs"]
    c.eval_every_epochs = s["eval_every"]
    c.checkpoint_every_epochs = s["eval_every"]
    c.probe_epochs = s["probe_epochs"]
    c.plots = False
    return c


def study_plan(
    study: str, size: str, root: str
) -> list[tuple[ml_collections.ConfigDict, list[dict[str, Any]], str, int]]:
    """The sweep of one study: [(base config, points, root of its runs, seeds)]."""
    s, base_lr = SIZES[size], base_learning_rate(size)
    if study == "learning_rate":
        points = [
            {"optimizer.learning_rate": float(lr), "clop.weight": w}
            for lr in s["learning_rates"]
            for w in (0.0, 1.0)
        ]
    elif study == "lambda":
        points = [
            {"optimizer.learning_rate": base_lr, "clop.weight": float(w)} for w in s["lambdas"]
        ]
    elif study == "prototypes":
        points = [
            {"optimizer.learning_rate": float(lr), "clop.weight": 1.0, "clop.prototypes": "simplex"}
            for lr in sorted({base_lr, max(s["learning_rates"])})
        ]
    elif study == "batch":
        points = [
            {"batch_size": b, "optimizer.learning_rate": paper_learning_rate(b), "clop.weight": w}
            for b in s["batches"]
            for w in (0.0, 1.0)
        ]
    else:
        raise ValueError(f"unknown study={study!r}; expected one of {STUDIES}.")
    return [(base_config(size), points, os.path.join(root, study), s["seeds"])]


def plan(
    root: str, *, size: str = DEFAULT_SIZE, studies: Sequence[str] = STUDIES
) -> list[tuple[dict[str, Any], ml_collections.ConfigDict, str]]:
    """Every run of the studies, in order."""
    return fm_grid.plan_studies(study_plan, studies, size, root)


def check_args(size: str, studies: Sequence[str]) -> None:
    """Raises ValueError, naming the option, for an unknown size or study, or a size whose
    learning rates leave out the base rate that the λ and prototype studies use, or whose
    batches repeat its own batch (the `learning_rate` study's runs are that point)."""
    common.check_size_and_studies(size, SIZES, studies, STUDIES)
    s = SIZES[size]
    if base_learning_rate(size) not in s["learning_rates"]:
        raise ValueError(
            f"size {size!r}: its learning_rates {s['learning_rates']} must include "
            f"the base rate 0.3·B/256 = {base_learning_rate(size):g}."
        )
    if s["batch"] in s["batches"]:
        raise ValueError(
            f"size {size!r}: its batches {s['batches']} repeat its batch {s['batch']}, "
            "which the learning_rate study already trains at the base rate; remove it."
        )


# --------------------------------------------------------------------------- command line
add_arguments = common.add_grid_arguments  # the same options as the other grid sections


def options(args: argparse.Namespace, size: str) -> dict[str, Any]:
    """`compute`'s options from the parsed command line; ValueError for a bad one."""
    studies = common.studies_option(args, STUDIES)
    check_args(size, studies)
    return {"studies": studies, "launch": common.launch_options(args)}


def collect(root: str, size: str) -> dict[str, Any]:
    """Reads every finished run into one results dict (the unfinished ones listed)."""
    runs, missing = fm_grid.collect_runs(
        study_plan,
        STUDIES,
        size,
        root,
        lambda study, a, _, w: fm_grid.run_record(study, a, w, CURVE_KEYS, KEEP),
    )
    env = common.environment()
    return {
        "dataset": "fashion_mnist",
        "size": size,
        "size_settings": dict(SIZES[size]),
        "base_learning_rate": base_learning_rate(size),
        "machine": env["machine"],
        "versions": env["versions"],
        "command": common.command(NAME, size, DEFAULT_SIZE),
        "written": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "missing": missing,
    }


def compute(
    root: str,
    size: str = DEFAULT_SIZE,
    *,
    studies: Sequence[str] = STUDIES,
    launch: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Trains the studies' runs (resumable), then reads every finished run of the
    section into the results; None while SLURM still holds runs."""
    check_args(size, studies)
    if launchers.launch(plan(root, size=size, studies=studies), root, **dict(launch or {})) is None:
        return None
    results = collect(root, size)
    print(
        f"[reproduce] {len(results['runs'])} runs finished, {len(results['missing'])} missing",
        flush=True,
    )
    return results


# --------------------------------------------------------------------------- groups
Setting = tuple[float, float, str, int]  # (learning rate, λ, prototypes, batch)


def _setting(a: Mapping[str, Any], batch: int) -> Setting:
    """(learning rate, λ, prototypes, batch) of a run's assignments; `batch`: the size's."""
    return (
        float(a["optimizer.learning_rate"]),
        float(a["clop.weight"]),
        a.get("clop.prototypes", "orthonormal"),
        int(a.get("batch_size", batch)),
    )


def label(lr: float, weight: float, prototypes: str, batch: int | None = None) -> str:
    """The setting's name; the batch is named when given."""
    at = f", lr {lr:g}" + ("" if batch is None else f", batch {batch}")
    if weight == 0:
        return f"SupCon{at}"
    return f"SupCon + CLOP λ = {weight:g} ({prototypes}){at}"


def groups(results: Mapping[str, Any]) -> dict[Setting, dict[str, Any]]:
    """(learning rate, λ, prototypes, batch) -> mean ± std over the seeds, whichever
    study ran it."""
    rows = []
    batch = _own_batch(results)
    for r in results["runs"]:
        final = dict(r["final"])
        if final.get("nc/train/z/dc_sv_min", 0) > 0:
            final[fm.LOG_SV_MIN] = math.log10(final["nc/train/z/dc_sv_min"])
        a = {k: v for k, v in r["assignments"].items() if k != "seed"}
        rows.append({"key": json.dumps(_setting(a, batch)), "seed": r["seed"], **final})
    return {tuple(json.loads(g["key"])): g for g in sweep.aggregate(rows, keys=["key"])}


def _own_batch(results: Mapping[str, Any]) -> int:
    """The size's batch: that of every study but `batch`."""
    return int(results["size_settings"]["batch"])


def _at_own_batch(
    g: Mapping[Setting, Mapping[str, Any]], results: Mapping[str, Any]
) -> dict[tuple[float, float, str], Mapping[str, Any]]:
    """The groups trained at the size's batch, keyed (learning rate, λ, prototypes)."""
    return {k[:3]: v for k, v in g.items() if k[3] == _own_batch(results)}


def _table(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    return fm.table(rows, ACCURACY + GEOMETRY)


def _versus(a: tuple[str, Mapping], b: tuple[str, Mapping], higher: str, lower: str) -> str:
    """b against a on each scored metric, by the section's rule."""
    (na, ga), (nb, gb) = a, b
    return "; ".join(
        f"{metric}: {fm.ms(ga, key, d)} → {fm.ms(gb, key, d)} ("
        + common.difference_verdict(ga, gb, key, higher_is=higher, lower_is=lower, names=(na, nb))
        + ")"
        for metric, key, d in SCORED
        if key in ga and key in gb
    )


def _row(
    claim: str, a: tuple[str, Mapping], b: tuple[str, Mapping], higher: str, lower: str
) -> str:
    """A verdict row: `claim`, then b against a on each scored metric (`_versus`)."""
    return f"| {claim} | " + _versus(a, b, higher, lower) + " |"


def claims(results: Mapping[str, Any]) -> list[str]:
    """The verdict rows of CLOP Fig. 7, Table 1, §4 and Fig. 6 on the runs present."""
    everything = groups(results)
    g = _at_own_batch(everything, results)
    lrs = sorted({lr for lr, w, p in g if w in (0.0, 1.0) and p == "orthonormal"})
    base = results["base_learning_rate"]
    top = max(lrs) if lrs else None

    def get(lr, w, p="orthonormal"):
        key = (lr, w, p)
        return (label(*key), g[key]) if key in g else None

    rows = []
    for w, who in ((0.0, "SupCon"), (1.0, "SupCon + CLOP")):
        lo, hi = get(base, w), get(top, w)
        if lo and hi and top != base:
            claim = (
                f"an excessively large learning rate collapses {who} [CLOP Fig. 7, Thm 1] "
                f"(lr {base:g} → {top:g})"
            )
            rows.append(_row(claim, lo, hi, "higher at the large rate", "lower at the large rate"))
    for lr in lrs:
        without, with_clop = get(lr, 0.0), get(lr, 1.0)
        if without and with_clop:
            claim = (
                f"CLOP outperforms the baseline at every learning rate [CLOP Fig. 7] "
                f"(lr {lr:g}; SupCon → SupCon + CLOP)"
            )
            rows.append(_row(claim, without, with_clop, "CLOP higher", "CLOP lower"))
    one = get(base, 1.0)
    for w in sorted(w for lr, w, p in g if lr == base and p == "orthonormal" and w not in (0, 1)):
        if one:
            claim = (
                f"accuracy is stable for λ from 0.1 to 1.5 [CLOP Table 1] (λ = 1 → λ = {w:g}, "
                f"lr {base:g})"
            )
            rows.append(_row(claim, one, get(base, w), "higher", "lower"))
    for lr in sorted(lr for lr, w, p in g if p == "simplex"):
        ortho, simplex = get(lr, 1.0), get(lr, 1.0, "simplex")
        if ortho:
            claim = (
                f"orthonormal prototypes do better than the simplex ETF, whose embeddings "
                f"lie on a hyperplane [CLOP §4] (lr {lr:g}; orthonormal → simplex)"
            )
            rows.append(_row(claim, ortho, simplex, "simplex higher", "simplex lower"))
    return rows + _batch_claims(results, everything)


def _batch_rows(
    g: Mapping[Setting, Mapping[str, Any]],
) -> dict[int, dict[float, tuple[str, Mapping[str, Any]]]]:
    """batch -> {λ: (label, group)} of the runs at the paper's rate 0.3·B/256 with
    orthonormal prototypes and λ ∈ {0, 1}: the points of CLOP Fig. 6."""
    out: dict[int, dict[float, tuple[str, Mapping[str, Any]]]] = {}
    for (lr, w, p, b), group in sorted(g.items(), key=lambda kv: (kv[0][3], kv[0][1])):
        if p == "orthonormal" and w in (0.0, 1.0) and math.isclose(lr, paper_learning_rate(b)):
            out.setdefault(b, {})[w] = (label(lr, w, p, b), group)
    return out


def _batch_claims(results: Mapping[str, Any], g: Mapping[Setting, Mapping[str, Any]]) -> list[str]:
    """CLOP Fig. 6: CLOP above the baseline at every batch, and less degradation at the
    smallest batch than the baseline (each setting's change from the size's batch)."""
    by_batch = _batch_rows(g)
    if len(by_batch) < 2:
        return []  # the size's own batch alone is the learning-rate study's row
    rows = [
        _row(
            f"CLOP outperforms the baseline at every batch size [CLOP Fig. 6] (batch {b}, lr "
            f"{paper_learning_rate(b):g}; SupCon → SupCon + CLOP)",
            pair[0.0],
            pair[1.0],
            "CLOP higher",
            "CLOP lower",
        )
        for b, pair in by_batch.items()
        if 0.0 in pair and 1.0 in pair
    ]
    own = _own_batch(results)
    smallest = min(by_batch, default=own)
    if smallest < own:
        for w, who in ((0.0, "SupCon"), (1.0, "SupCon + CLOP")):
            big, small = by_batch.get(own, {}).get(w), by_batch[smallest].get(w)
            if big and small:
                claim = (
                    f"with CLOP a small batch degrades accuracy much less than without "
                    f"[CLOP Fig. 6] ({who}, batch {own} → {smallest})"
                )
                rows.append(
                    _row(claim, big, small, "higher at the small batch", "lower at the small batch")
                )
    return rows


# --------------------------------------------------------------------------- the section
def _intro(results: Mapping[str, Any]) -> list[str]:
    s, runs = results["size_settings"], results["runs"]
    m, v = results["machine"], results["versions"]
    lines = [
        "## CLOP on Fashion-MNIST under LARS: learning rate, λ, prototypes, batch size "
        "(measured here)",
        "",
        f"Generated by `python -m hncl_jax.reproduce {NAME} --write_doc` from "
        f"`{results_path(results['size'])}`, which `{results['command']}` wrote; do not edit "
        f"by hand. Machine: {m['cpu_count']} CPU cores ({m['processor']}, JAX {v['jax']}, "
        f"{m['platform']}). Wall time of training and evaluation, one run after another: "
        + common.study_times(runs, STUDIES)
        + ".",
        "",
        "The paper's fully supervised recipe [CLOP §5, Fig. 7, Table 1] at CPU size: SupCon "
        "on two crop-and-flip views of every labelled image, with and without the CLOP term "
        "(orthonormal prototypes unless marked simplex), LARS (momentum 0.9) with cosine "
        f"decay, the paper's base learning rate 0.3·B/256 = {results['base_learning_rate']:g}"
        " for the λ and prototype studies, and 0.3·B/256 at each batch B of the batch study "
        "(the same number of epochs, so a smaller batch takes more steps, as in the "
        f"paper's Fig. 6). Size `{results['size']}`: "
        f"{s['max_examples'] or 'all'} training images, model `{s['model']}`"
        + fm.model_options(s)
        + f", d = 16, {s['epochs']} epochs, batch {s['batch']}; the paper trains ResNet-50 "
        "on CIFAR-100 and Tiny-ImageNet for 100-200 epochs at batch 1024. Values are mean ± "
        f"std over {s['seeds']} seeds (sample std); accuracies are on the test images, the "
        "geometry is of the training embeddings z (the DC rank and smallest normalized "
        "singular value of the class means' covariance, RankMe of the embeddings). The "
        "project's CLOP term is a mean over the labelled anchors where the paper's eq. 4 "
        "sums, so the same λ weighs less here (docs/math.md §9). LARS scales each layer's "
        f"update to lr · {TRUST_COEFFICIENT:g} · ‖w‖ before momentum, so the learning rate "
        "sets a step relative to the layer's weights (at lr 10, 1 % of ‖w‖), unlike the "
        "plain gradient step on the embeddings of CLOP's Theorem 1.",
        "",
    ]
    return lines + common.missing_note(results)


def render(results: Mapping[str, Any]) -> str:
    """The generated block of REPRODUCTION.md (markers included), from the results alone."""
    everything = groups(results)
    g = _at_own_batch(everything, results)
    batch_rows = [row for pair in _batch_rows(everything).values() for row in pair.values()]
    base = results["base_learning_rate"]
    ordered = sorted(g, key=lambda k: (k[2] != "orthonormal", k[1] not in (0, 1), k[0], k[1]))
    lr_rows = [(label(*k), g[k]) for k in ordered if k[2] == "orthonormal" and k[1] in (0, 1)]
    lam_rows = [
        (label(*k), g[k])
        for k in sorted(g, key=lambda k: k[1])
        if k[0] == base and k[2] == "orthonormal"
    ]
    simplex_lrs = {k[0] for k in g if k[2] == "simplex"}
    proto_rows = [
        (label(*k), g[k])
        for k in sorted(g, key=lambda k: (k[0], k[2]))
        if k[1] == 1.0 and k[0] in simplex_lrs
    ]
    begin, end = common.markers(NAME)
    lines = [
        begin,
        *_intro(results),
        "### CLOP Fig. 7: the learning rate, with and without CLOP",
        "",
        _table(lr_rows),
        "",
        f"![accuracy and RankMe against the learning rate](results/{NAME}_{results['size']}"
        "_lr.png)",
        "",
        f"### CLOP Table 1: λ at the base learning rate {base:g}",
        "",
        _table(lam_rows),
        "",
        "### CLOP §4: orthonormal prototypes against the simplex ETF",
        "",
        _table(proto_rows),
        "",
        "### CLOP Fig. 6: the batch size at the paper's learning rate 0.3·B/256",
        "",
        _table(batch_rows) if len(batch_rows) > 2 else fm.NOT_RUN,
        "",
        f"![accuracy and RankMe against the batch size](results/{NAME}_{results['size']}"
        "_batch.png)",
        "",
        f"### Verdicts (a difference counts when Welch's two-sided t-test over the seeds gives "
        f"p < {common.ALPHA:g}; p is stated)",
        "",
        "| claim | Fashion-MNIST, LARS |",
        "| --- | --- |",
        *claims(results),
        "",
        end,
    ]
    return "\n".join(lines)


def _against_figure(
    results: Mapping[str, Any],
    series: Mapping[float, Sequence[tuple[float, Mapping[str, Any]]]],
    xlabel: str,
) -> Figure:
    """Probe top-1, top-5 and RankMe against `xlabel` (log scale); series: λ -> [(x,
    group)], mean ± std over seeds."""
    panels = [(n, k) for n, k, _ in SCORED]
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, len(panels))
    for ax, (title, key) in zip(axes, panels, strict=True):
        for i, w in enumerate((0.0, 1.0)):
            pts = sorted((x, s) for x, s in series.get(w, []) if key in s)
            if not pts:
                continue
            x = np.array([v for v, _ in pts])
            y = np.array([s[key] for _, s in pts])
            e = np.array([s.get(f"{key}_std", 0.0) for _, s in pts])
            name = "SupCon + CLOP λ = 1" if w else "SupCon"
            ax.errorbar(x, y, yerr=e, capsize=3, marker=fm.MARKERS[i], label=name)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"CLOP on Fashion-MNIST, size {results['size']} (mean ± std over seeds)", fontsize=10
    )
    fig.tight_layout()
    return fig


def lr_figure(results: Mapping[str, Any]) -> Figure:
    """Probe top-1, top-5 and RankMe against the learning rate at the size's batch, with
    and without CLOP (CLOP Fig. 7 style)."""
    g = _at_own_batch(groups(results), results)
    series = {
        w: [(lr, s) for (lr, ww, p), s in g.items() if ww == w and p == "orthonormal"]
        for w in (0.0, 1.0)
    }
    return _against_figure(results, series, "learning rate (LARS)")


def batch_figure(results: Mapping[str, Any]) -> Figure:
    """The same panels against the batch size at lr 0.3·B/256 (CLOP Fig. 6 style)."""
    series: dict[float, list] = {}
    for b, pair in _batch_rows(groups(results)).items():
        for w, (_, s) in pair.items():
            series.setdefault(w, []).append((b, s))
    return _against_figure(results, series, "batch size (lr 0.3·B/256)")


def figures(results: Mapping[str, Any], out_dir: str) -> list[str]:
    """Writes `<out_dir>/fashion_mnist_clop_<size>_{lr,batch}.png`; returns their paths."""
    paths = []
    for kind, make in (("lr", lr_figure), ("batch", batch_figure)):
        path = os.path.join(out_dir, f"{NAME}_{results['size']}_{kind}.png")
        make(results).savefig(path, dpi=90)
        paths.append(path)
    return paths
