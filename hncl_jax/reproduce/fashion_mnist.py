"""REPRODUCTION.md, section `fashion_mnist`: the real-image claims of both papers on
Fashion-MNIST.

    python -m hncl_jax.reproduce fashion_mnist                  # train (resumable), write results
    python -m hncl_jax.reproduce fashion_mnist --write_doc      # regenerate REPRODUCTION.md

The grid (every run from the shipped configs `configs/fashion_mnist.py` and
`configs/clop_fashion_mnist.py`, at the size `--size` names, each row over `seeds`):

* `hn_supervised` [HN Fig. 3 / Table 1]: SCL and HSCL β ∈ {2, 5, 10, 30}, label
  positives: test NCM / kNN / linear-probe accuracy, the NC metrics against epochs, the
  final loss against the Theorem 2 minimum for C = 10.
* `hn_unsupervised` [HN App. B.5, Fig. 13]: UCL and HUCL β ∈ {2, 5, 10, 30}, view
  positives (two crop-and-flip views: the paper's SimCLR sampling, not the label positives
  of its Figs. 3-4): the same metrics and the DC spectrum.
* `hn_warm_start` [HN Table 2]: from each seed's HSCL β = 10 model of `hn_supervised`
  (near NC), the same number of epochs again under SCL, HSCL β = 10 and HUCL β = 30.
* `clop` [CLOP Fig. 6 / Table 1]: NT-Xent with and without the CLOP term at 10 %, 50 %
  and 100 % labels at batch 256 and at batches 32, 64, 128 and 512 with 10 % labels,
  and SupCon with and without it: kNN-5 and linear-probe top-1, both fitted on the
  labelled examples.

The grid's sizes, runs and runner are in `fashion_mnist_grid`: runs go to
`<root>/<study>/<run>` through `sweep.run_grid`, so rerunning the command skips finished
runs and resumes the others; `--studies` picks some of the studies, `--devices_per_run=1`
trains one run per GPU at once, and `--launcher=slurm --slurm=partition=...,gpus_per_run=1`
submits them to SLURM (the warm starts as job dependencies). The results (final
metrics, curves against epochs, seconds per run, machine and versions) are written to
`results/fashion_mnist_<size>.json`; this module renders the section of REPRODUCTION.md
(`render`) and its figures (`figures`) from that file alone (`--write_doc`), and a test
checks that the committed section equals what the committed results give.

References: Xiao, Rasul and Vollgraf, "Fashion-MNIST", arXiv:1708.07747; [HN] and
[CLOP] as in `hncl_jax.reproduce`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hncl_jax import sweep
from hncl_jax.reproduce import common
from hncl_jax.reproduce import fashion_mnist_grid as grid

NAME = "fashion_mnist"
SIZES = grid.SIZES  # "tiny" (tests), "cpu" (the committed results), "full" (a GPU)
DEFAULT_SIZE = grid.DEFAULT_SIZE
UNSUFFIXED_SIZE = None  # every size's files name it: results/fashion_mnist_<size>.json
# Verdict rule: a difference between two settings counts when Welch's two-sided t-test
# over seeds gives p < common.ALPHA (`common.difference_verdict`). HN Table 2's near-NC
# CIFAR-100 model starts at zero-sum 0.012, so a model above NEAR_NC_ZERO_SUM is not
# near NC: a start there does not test Table 2, a final model there does not test Fig. 3.
NEAR_NC_ZERO_SUM = 0.1
# The smallest normalized singular value of the class means' covariance, as log10 (it
# spans orders of magnitude; `groups` adds it to every run that has the smallest value).
LOG_SV_MIN = "nc/train/z/log10_dc_sv_min"

# The tables' columns: (heading, metric, digits).
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


def results_path(size: str = DEFAULT_SIZE, repo: str | None = None) -> str:
    """`results/fashion_mnist_<size>.json`, under `repo` when given."""
    return common.results_path(NAME, size, UNSUFFIXED_SIZE, repo)


_verdict = common.difference_verdict  # the section's rule for two groups of seeds


# --------------------------------------------------------------------------- command line
add_arguments = common.add_grid_arguments  # --studies and the launcher's options


def options(args: argparse.Namespace, size: str) -> dict[str, Any]:
    """`compute`'s options from the parsed command line; ValueError for a bad one."""
    studies = common.studies_option(args, grid.STUDIES)
    grid.check_args(NAME, size, studies)
    return {"studies": studies, "launch": common.launch_options(args)}


def compute(
    root: str,
    size: str = DEFAULT_SIZE,
    *,
    studies: Sequence[str] = grid.STUDIES,
    launch: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Trains the studies' runs (resumable; `launch`: `sweep.launchers.launch`'s options),
    then reads every finished run of the grid into the results (`collect`); None while
    SLURM still holds runs."""
    if grid.run(NAME, root, size=size, studies=studies, launch=launch) is None:
        return None
    results = grid.collect(NAME, root, size)
    print(
        f"[reproduce] {len(results['runs'])} runs finished, {len(results['missing'])} missing",
        flush=True,
    )
    return results


# --------------------------------------------------------------------------- tables
def label(a: Mapping[str, Any]) -> str:
    name = a["loss.name"]
    beta = a.get("loss.beta")
    text = {
        "scl": "SCL",
        "ucl": "UCL",
        "nt_xent": "NT-Xent",
        "supcon": "SupCon",
        "simclr_form": "SimCLR-form (eq. 42)",
    }.get(name)
    if text is None and a.get("loss.hardening") == "polynomial":
        text = f"{name.upper()} polynomial ε = {a['loss.epsilon']:g}"
    if text is None:
        text = f"{name.upper()} β = {beta:g}"
    norm = a.get("normalization")
    if norm is not None:
        text += f", {NORMALIZATION_NAMES.get(norm, norm)}"
    return text if "batch_size" not in a else f"{text}, batch {a['batch_size']}"


NORMALIZATION_NAMES = {
    "unit_ball": "unit ball",
    "unit_sphere": "unit sphere",
    "none": "no normalization",
}


def _clop_label(a: Mapping[str, Any]) -> str:
    return f"{_loss_label(a)}, {a['label_fraction']:.0%} labels, batch {a['batch_size']}"


def _loss_label(a: Mapping[str, Any]) -> str:
    """`label` without the batch, which the CLOP rows state on their own."""
    return label({k: v for k, v in a.items() if k != "batch_size"})


def groups(runs: Sequence[Mapping[str, Any]], study: str) -> list[dict[str, Any]]:
    """Mean ± std over seeds of each setting of a study, in the order of the plan."""
    rows = []
    for r in runs:
        if r["study"] != study:
            continue
        a = {k: v for k, v in r["assignments"].items() if k != "seed"}
        if study == "clop":
            a.setdefault("batch_size", r["batch_size"])
        final = dict(r["final"])
        if final.get("nc/train/z/dc_sv_min", 0) > 0:
            final[LOG_SV_MIN] = math.log10(final["nc/train/z/dc_sv_min"])
        rows.append({"key": json.dumps(a, sort_keys=True), "seed": r["seed"], **final})
    return sweep.aggregate(rows, keys=["key"])


def settings(groups: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(label(json.loads(g["key"])), g) for g in groups]


def ms(g: Mapping[str, Any], key: str, digits: int = 3) -> str:
    if key not in g:
        return "—"
    return sweep.format_mean_std(g[key], g.get(f"{key}_std"), digits)


NOT_RUN = "Not run: no finished run of this study is in the results file."


def table(
    groups: Sequence[tuple[str, Mapping[str, Any]]], columns: Sequence[tuple[str, str, int]]
) -> str:
    if not groups:
        return NOT_RUN
    head = "| setting | seeds | " + " | ".join(c[0] for c in columns) + " |"
    lines = [head, "|" + " --- |" * (len(columns) + 2)]
    for label, g in groups:
        cells = [ms(g, key, d) for _, key, d in columns]
        lines.append(f"| {label} | {g['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _clop_table(groups: Sequence[Mapping[str, Any]]) -> str:
    if not groups:
        return NOT_RUN
    lines = [
        "| loss | labels | batch | CLOP λ | seeds | kNN-5 (z) | probe top-1 (z) "
        "| probe top-1 (h) | probe top-5 (z) | probe top-5 (h) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for g in groups:
        a = json.loads(g["key"])
        lines.append(
            f"| {_loss_label(a)} | {a['label_fraction']:.0%} | {a['batch_size']} | "
            f"{a['clop.weight']:g} | {g['n']} | {ms(g, 'eval/test/z/knn5_acc')} | "
            f"{ms(g, 'eval/test/z/probe_top1')} | {ms(g, 'eval/test/h/probe_top1')} | "
            f"{ms(g, 'eval/test/z/probe_top5')} | {ms(g, 'eval/test/h/probe_top5')} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- verdicts
def against(
    base: Mapping[str, Any], base_name: str, groups, key: str, higher_is: str, lower_is: str
) -> str:
    """`name: verdict` of each group against `base` on `key`, where both have it."""
    return "; ".join(
        f"{name}: "
        + _verdict(base, g, key, higher_is=higher_is, lower_is=lower_is, names=(base_name, name))
        for name, g in groups
        if key in g and key in base
    )


def far_from_nc(groups: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """The caveat of an NC claim when no group's zero-sum is below NEAR_NC_ZERO_SUM."""
    key = "nc/train/z/zero_sum"
    values = [g[key] for _, g in groups if key in g]
    if not values or min(values) <= NEAR_NC_ZERO_SUM:
        return ""
    return (
        f" Not a test of the claim at this size: no setting is near NC (smallest mean "
        f"zero-sum {min(values):.3g}, above {NEAR_NC_ZERO_SUM:g}; the paper's runs approach "
        "0 over 400 epochs)."
    )


def dc_rows(groups: list, base_label: str, claim: str) -> list[str]:
    """Rows scoring DC against the first group (`base_label`): the DC rank and the log10
    smallest normalized singular value of the class means' covariance, each setting by
    the section's rule (higher = less DC)."""
    if len(groups) < 2:
        return []
    base, others = groups[0][1], groups[1:]
    out = []
    for label, key, digits in (
        ("DC rank", "nc/train/z/dc_rank", 1),
        ("log10 smallest normalized singular value", LOG_SV_MIN, 2),
    ):
        if key not in base:
            continue
        parts = [
            f"{n}: {ms(g, key, digits)} ("
            + _verdict(base, g, key, higher_is="less DC", lower_is="more DC", names=(base_label, n))
            + ")"
            for n, g in others
            if key in g
        ]
        out.append(
            f"| {claim} ({label}; {base_label}: {ms(base, key, digits)}) | "
            + "; ".join(parts)
            + " |"
        )
    return out


def _hn_claims(sup: list, unsup: list, bound: float) -> list[str]:
    if not sup:
        return ["| hardening raises accuracy, brings NC (Fig. 3) | not run |"]
    scl, hscl = sup[0][1], sup[1:]
    out = [
        f"| HSCL has higher {label} than SCL [HN Fig. 3, Table 1] | "
        f"{against(scl, 'SCL', hscl, key, 'higher', 'lower')} |"
        for label, key in (
            ("linear-probe accuracy (z)", "eval/test/z/probe_top1"),
            ("NCM accuracy (z)", "eval/test/z/ncm_acc"),
        )
    ]
    caveat = far_from_nc(sup)
    out += [
        f"| HSCL is closer to NC than SCL ({label}) [HN Fig. 3] | "
        f"{against(scl, 'SCL', hscl, key, 'farther from NC', 'closer to NC')}.{caveat} |"
        for label, key in (
            ("zero-sum", "nc/train/z/zero_sum"),
            ("equal inner-product", "nc/train/z/equal_inner_product"),
        )
    ]
    gaps = [(name, g) for name, g in sup if "train/loss_gap" in g]
    if gaps:
        text = ", ".join(f"{n}: {ms(g, 'train/loss_gap', 3)}" for n, g in gaps)
        out.append(
            f"| HSCL's loss gets closer to the Thm 2 minimum ({bound:.4f} here) than SCL's, "
            "which stays above it (the minimum is the same for every β) [HN Table 1, §5.2] | "
            "not scored here: the claim needs each model's loss from the deterministic "
            "reweighted estimator, so that sampling noise does not decide, and the results "
            "file holds no checkpoints to evaluate it on, only the mean sampled loss of the "
            "last training epoch (that final loss always lies above the minimum, so its "
            "staying above decides nothing). Last-epoch loss − minimum, for reference: "
            f"{text} |"
        )
    out += dc_rows(
        sup,
        "SCL",
        "hard negatives mitigate the DC of SCL: HSCL has less DC than SCL [HN §5.3, "
        "Fig. 4 row 1, left]",
    )
    if unsup:
        out += _unsup_claims(sup, unsup)
    return out


def _unsup_claims(sup: list, unsup: list) -> list[str]:
    """The UCL/HUCL rows: the views study is the paper's SimCLR sampling [HN App. B.5]."""
    ucl = unsup[0][1]
    simclr = "; here SimCLR sampling (App. B.5), the paper's rows use label positives"
    out = [
        "| SimCLR sampling does not attain NC, its representations lie mostly within the "
        "unit ball [HN App. B.5, Fig. 13] | consistent: UCL/HUCL zero-sum "
        f"{common.value_range(unsup, 'nc/train/z/zero_sum')}, unit-norm metric "
        f"{common.value_range(unsup, 'nc/train/z/unit_norm')} (SCL/HSCL with label positives: "
        f'{common.value_range(sup, "nc/train/z/unit_norm")}). Not a test of "not attained" at this '
        "size: the label-positive runs do not reach NC either. |"
    ]
    out += [
        f"| hard negatives raise unsupervised {label}: HUCL above UCL [HN Fig. 3, right"
        f"{simclr}] | {against(ucl, 'UCL', unsup[1:], key, 'higher', 'lower')} |"
        for label, key in (
            ("linear-probe accuracy (z)", "eval/test/z/probe_top1"),
            ("NCM accuracy (z)", "eval/test/z/ncm_acc"),
        )
    ]
    out += dc_rows(
        unsup,
        "UCL",
        "with random initialization HUCL suffers less DC than UCL [HN §5.3, Fig. 4 row 1, "
        f"right{simclr}]",
    )
    return out


def _warm_claims(warm: list, start: Mapping[str, Any] | None) -> list[str]:
    if not warm or start is None:
        return ["| Table 2 claims | not run |"]
    key = "nc/train/z/zero_sum"
    parts = [
        f"{n}: {ms(g, key)} ("
        + _verdict(
            start,
            g,
            key,
            higher_is="leaves NC",
            lower_is="closer to NC",
            names=("the start", n),
        )  # fmt: skip
        + ")"
        for n, g in warm
    ]
    caveat = ""
    if start[key] > NEAR_NC_ZERO_SUM:
        caveat = (
            " Not a test of the claim at this size: the starting model is far from NC "
            "(the paper's starts at zero-sum 0.012)."
        )
    rows = [
        f"| supervised settings stay at NC, HUCL at large β leaves it [HN Table 2]; zero-sum "
        f"of the starting model {ms(start, key)} | " + "; ".join(parts) + "." + caveat + " |"
    ]
    dc = "nc/train/z/dc_rank"
    if dc in start and any(dc in g for _, g in warm):
        parts = [
            f"{n}: {ms(g, dc, 1)} ("
            + _verdict(
                start,
                g,
                dc,
                higher_is="higher",
                lower_is="lower (more DC)",
                names=("the start", n),
            )  # fmt: skip
            + ")"
            for n, g in warm
            if dc in g
        ]
        rows.append(
            "| from the near-NC start, HUCL at large β collapses dimensions; SCL, HSCL and "
            f"UCL show no or negligible DC [HN §5.4, Fig. 4 row 2]; DC rank of the start "
            f"{ms(start, dc, 1)} | " + "; ".join(parts) + "." + caveat + " |"
        )
    return rows


def _baseline_encoders(runs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each without-CLOP setting's encoder (setting without its weight -> final training
    loss per seed, or the setting where a run lacks it): equal ones trained one encoder
    (NT-Xent ignores labels; its label fractions differ only in the kNN/probe fit)."""
    sig: dict[str, dict[int, Any]] = {}
    for r in runs:
        a = {k: v for k, v in r["assignments"].items() if k != "seed"}
        if r["study"] != "clop" or a.pop("clop.weight", None) != 0.0:
            continue
        a.setdefault("batch_size", r["batch_size"])
        sig.setdefault(json.dumps(a, sort_keys=True), {})[r["seed"]] = r["final"].get(
            "train/epoch_loss"
        )
    return {
        k: json.dumps(sorted(v.items())) if None not in v.values() else k for k, v in sig.items()
    }


def _clop_claims(clop_groups: list[dict[str, Any]], runs, settings) -> list[str]:
    by_key = {}
    for g in clop_groups:
        a = json.loads(g["key"])
        w = a.pop("clop.weight")
        by_key.setdefault(json.dumps(a, sort_keys=True), {})[w] = g
    encoders = _baseline_encoders(runs)
    lines = []
    for key in ("eval/test/z/knn5_acc", "eval/test/z/probe_top1"):
        parts, wins, total, pairs = [], 0, 0, []
        for a_text, pair in by_key.items():
            if 0.0 in pair and 1.0 in pair and key in pair[0.0] and key in pair[1.0]:
                w = common.welch(
                    pair[0.0][key], pair[0.0].get(f"{key}_std", 0.0), pair[0.0]["n"],
                    pair[1.0][key], pair[1.0].get(f"{key}_std", 0.0), pair[1.0]["n"],
                )  # fmt: skip
                total += 1
                pairs.append(a_text)
                wins += w["p"] is not None and w["p"] < common.ALPHA and w["diff"] > 0
                p = "no test" if w["p"] is None else f"p = {w['p']:.2g}"
                parts.append(f"{_clop_label(json.loads(a_text))}: {w['diff']:+.3f} ({p})")
        metric = key.rsplit("/", 1)[1]
        if not total:
            lines.append(f"| the CLOP term raises {metric} | not run |")
            continue
        signatures = [encoders.get(k, k) for k in pairs]
        in_shared = [s for s in signatures if signatures.count(s) > 1]
        note = ""
        if in_shared:
            distinct = len(set(signatures))
            note = (
                f" The pairs are not all independent: {len(in_shared)} of them share their "
                "without-CLOP encoder (one per seed) with another pair (NT-Xent does not use the "
                "labels; those runs "
                "differ only in the labelled subset the kNN and probe are fitted on, and "
                f"their final training losses are equal), so the {total} pairs hold "
                f"{distinct} independent baselines."
            )
        lines.append(
            f"| the CLOP term raises {metric} [CLOP Fig. 6, Table 1] | higher (Welch p < "
            f"{common.ALPHA:g}) in {wins} of {total} pairs; with − without: "
            + "; ".join(parts)
            + "."
            + note
            + " |"
        )
    batches = settings.get("clop_batches") or []
    if batches and clop_groups:
        lines.append(
            "| CLOP degrades least at small batches [CLOP Fig. 6] | not tested: the runs "
            "use Adam with the config's learning-rate schedule and the same number of "
            f"epochs at every batch ({settings['epochs']}), not the paper's LARS at "
            "lr = 0.3·B/256, so a smaller batch also takes more steps (batch "
            f"{min(batches)}: {max(batches) // min(batches)} times the steps of batch "
            f"{max(batches)}); the rows above compare with and without CLOP at each batch, "
            "not the batches with each other |"
        )
    return lines


# --------------------------------------------------------------------------- render
def model_options(size: Mapping[str, Any]) -> str:
    """The size's model options as the table's heading states them, e.g. " (width 32, depth 1)"."""
    options = ", ".join(f"{name} {size[name]}" for name in ("width", "depth") if size.get(name))
    return f" ({options})" if options else ""


def _intro(results: Mapping[str, Any]) -> list[str]:
    s = results["size_settings"]
    runs = results["runs"]
    minutes = sum(r["seconds"] for r in runs) / 60
    m, v = results["machine"], results["versions"]
    lines = [
        "## Fashion-MNIST (real images, measured here)",
        "",
        f"Generated by `python -m hncl_jax.reproduce {results['dataset']} --write_doc` from "
        f"`{results_path(results['size'])}`, which `{results['command']}` wrote; do not edit "
        f"by hand. Machine: "
        f"{m['cpu_count']} CPU cores ({m['processor']}, JAX {v['jax']}, {m['platform']}). "
        f"Whole grid: {len(runs)} runs, {minutes:.0f} min of training and evaluation.",
        "",
        f"Size `{results['size']}` (chosen so that the grid fits a 2-core CPU; the papers "
        "train ResNets for hundreds of epochs on CIFAR): "
        f"{s['max_examples'] or 'all'} training images (a seeded subset per seed) and as "
        f"many test images, model `{s['model']}`" + model_options(s) + f", {s['epochs']} "
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
    return lines


def render(results: Mapping[str, Any]) -> str:
    """The generated Fashion-MNIST block of REPRODUCTION.md (markers included)."""
    runs = results["runs"]
    sup = settings(groups(runs, "hn_supervised"))
    unsup = settings(groups(runs, "hn_unsupervised"))
    warm = settings(groups(runs, "hn_warm_start"))
    clop = groups(runs, "clop")
    start = next((g for n, g in sup if n == f"HSCL β = {grid.WARM_START_FROM:g}"), None)
    figure = f"results/{results['dataset']}_{results['size']}"
    begin, end = common.markers(NAME)
    lines = [
        begin,
        *_intro(results),
        "### HN Fig. 3 / Table 1: SCL and HSCL (label positives)",
        "",
        table(
            sup,
            ACC + [("final loss", "train/epoch_loss", 4), ("gap to Thm 2", "train/loss_gap", 4)],
        ),
        "",
        table(sup, NC),
        "",
        f"![accuracy and NC against epochs]({figure}_hn.png)",
        "",
        "### HN App. B.5 / Fig. 13: UCL and HUCL with SimCLR sampling (view positives)",
        "",
        "The positive of each anchor is a second augmented view of the same image: the "
        "SimCLR sampling of the paper's App. B.5 (Fig. 13 with the InfoNCE loss), where the "
        "paper says NC is not attained. The paper's Figs. 3-4 UCL/HUCL draw the positive "
        "from the anchor's class without augmentation; this grid has no such runs (the "
        'section "Fashion-MNIST trained to convergence" has them).',
        "",
        table(unsup, ACC),
        "",
        table(unsup, NC),
        "",
        f"![DC spectrum]({figure}_dc.png)",
        "",
        f"### HN Table 2: warm start from the near-NC HSCL β = {grid.WARM_START_FROM:g} model",
        "",
        table(warm, NC[:3] + ACC[:1]),
        "",
        "### CLOP Fig. 6 / Table 1: with and without the CLOP term",
        "",
        _clop_table(clop),
        "",
        "### Verdicts (computed from the rows above: a difference between two settings "
        f"counts when Welch's two-sided t-test over the seeds gives p < {common.ALPHA:g}; "
        "p is stated; with no spread in either group there is no test, and the values are "
        "stated as seen)",
        "",
        "| claim | Fashion-MNIST |",
        "| --- | --- |",
        *_hn_claims(sup, unsup, results["theorem2_bound"]),
        *_warm_claims(warm, start),
        *_clop_claims(clop, runs, results["size_settings"]),
        "",
        end,
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures
MARKERS = "osD^v"


def _curves(results: Mapping[str, Any], study: str, field: str) -> dict[str, list]:
    """A study's per-run `field` (curve or spectrum) by setting label, in run order."""
    by_setting: dict[str, list] = {}
    for r in results["runs"]:
        if r["study"] == study and (field == "curve" or r[field]):
            by_setting.setdefault(label(r["assignments"]), []).append(r[field])
    return by_setting


def epoch_panel(ax, by_setting: Mapping[str, list], key: str) -> None:
    """Mean ± std over seeds of `key` against the epoch, one line per setting."""
    for i, (label, curves) in enumerate(by_setting.items()):
        epochs = sorted({p["epoch"] for c in curves for p in c if key in p})
        vals = [[p[key] for c in curves for p in c if p["epoch"] == e and key in p] for e in epochs]
        mean = [float(np.mean(v)) for v in vals]
        std = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in vals]
        ax.errorbar(
            epochs,
            mean,
            yerr=std,
            marker=MARKERS[i % 5],
            capsize=3,
            alpha=0.85,
            label=label,
            linestyle=("-", "--", ":", "-.")[i % 4],
        )


def curves_figure(results: Mapping[str, Any]) -> Figure:
    """Accuracy and NC against epochs (HN Fig. 3 style), supervised above, unsupervised
    (the views study: SimCLR sampling, HN App. B.5) below, mean ± std over seeds."""
    panels = [
        ("eval/test/z/ncm_acc", "test NCM accuracy (z)"),
        ("nc/train/z/zero_sum", "zero-sum"),
        ("nc/train/z/equal_inner_product", "equal inner-product"),
    ]
    fig = Figure(figsize=(12, 6.5))
    axes = fig.subplots(2, 3)
    for row, study in enumerate(("hn_supervised", "hn_unsupervised")):
        by_setting = _curves(results, study, "curve")
        for ax, (key, title) in zip(axes[row], panels, strict=True):
            epoch_panel(ax, by_setting, key)
            setting = "supervised" if row == 0 else "unsupervised, SimCLR sampling"
            ax.set_title(f"{setting}: {title}", fontsize=9)
            ax.set_xlabel("epoch")
            if key.startswith("nc/"):
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        if by_setting:
            axes[row][0].legend(fontsize=7)
    fig.suptitle(f"Fashion-MNIST, size {results['size']} (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def spectrum_figure(results: Mapping[str, Any]) -> Figure:
    """The DC spectra (`geometry.dc_spectrum`: the class means' covariance) of the
    unsupervised runs (SimCLR sampling, HN Fig. 13 top row style), mean ± std over seeds."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    by_setting = _curves(results, "hn_unsupervised", "dc_spectrum")
    for i, (label, spectra) in enumerate(by_setting.items()):
        arr = np.asarray(spectra, np.float64)
        ax.errorbar(
            np.arange(1, arr.shape[1] + 1),
            arr.mean(0),
            yerr=arr.std(0),
            capsize=3,
            marker=MARKERS[i % 5],
            label=label,
            alpha=0.85,
        )
    ax.set_yscale("log")
    ax.set_xlabel("index of the singular value")
    ax.set_ylabel("normalized singular value")
    ax.set_title(
        "DC spectrum: covariance of the class means of z (unsupervised, SimCLR sampling)",
        fontsize=8,
    )
    if by_setting:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def figures(results: Mapping[str, Any], out_dir: str) -> list[str]:
    """Writes the section's figures (`curves_figure`, `spectrum_figure`) as
    `<out_dir>/<dataset>_<size>_{hn,dc}.png`; returns their paths."""
    stem = os.path.join(out_dir, f"{results['dataset']}_{results['size']}")
    paths = []
    for suffix, draw in (("_hn.png", curves_figure), ("_dc.png", spectrum_figure)):
        paths.append(stem + suffix)
        draw(results).savefig(paths[-1], dpi=90)
    return paths
