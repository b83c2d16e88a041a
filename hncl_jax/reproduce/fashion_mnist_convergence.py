"""REPRODUCTION.md, section `fashion_mnist_convergence`: the hard-negative paper's central
claims on real images, trained until the geometry settles (Neural against Dimensional
Collapse, HN Figs. 3-4 and Tables 1-2).

    python -m hncl_jax.reproduce fashion_mnist_convergence              # train, write results
    python -m hncl_jax.reproduce fashion_mnist_convergence --write_doc  # regenerate the section

The recipe and the studies are in `convergence_grid`: label positives in all four
settings, no augmentation, unit ball, constant Adam, 200 epochs on 2,000 images at size
`cpu`. `--studies` picks some of `supervised`, `warm_start`, `unsupervised`,
`variants`, `batch` and `simclr` (each resumable; rerunning the command writes every
finished run into the results), and the launcher options of the `fashion_mnist` section
apply (`--devices_per_run`, `--launcher=slurm`). The results (final metrics on the
train and the test split, curves against epochs, the DC spectra, each final model's loss
by the deterministic reweighted estimator, the seconds of every run) go to
`results/fashion_mnist_convergence_<size>.json`; `render` and `figures` read that file alone.

Verdict rules, stated in the section:
* a difference between two settings counts when Welch's two-sided t-test over the seeds
  gives p < `common.ALPHA` (`common.difference_verdict`); with two seeds the test has
  about one degree of freedom, so only large, consistent differences count;
* a setting is "near NC" when every seed has zero-sum, unit-norm, equal inner-product
  and within-class variance (of the training embeddings) below `NEAR_NC`: HN Table 2's
  near-NC CIFAR-100 start has zero-sum 0.012, and the same four metrics of the
  Fashion-MNIST grid's 6-epoch runs lie between 0.1 and 7.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hncl_jax.reproduce import common
from hncl_jax.reproduce import convergence_grid as grid
from hncl_jax.reproduce import fashion_mnist as fm

NAME = "fashion_mnist_convergence"
SIZES = grid.SIZES  # "tiny" (tests), "cpu" (the committed results), "full" (a GPU)
DEFAULT_SIZE = grid.DEFAULT_SIZE
UNSUFFIXED_SIZE = None  # results/fashion_mnist_convergence_<size>.json
NEAR_NC = 0.1
NC_KEYS = tuple(f"nc/train/z/{m}" for m in common.NC_COLUMNS) + (
    "nc/train/z/within_class_variance",
)
ACC = fm.ACC + [
    ("own loss − its NC value (reweighted)", "eval/train/z/reweighted_gap", 4),
    ("SCL loss − Thm 2 min. (reweighted)", "eval/train/z/reweighted_scl_gap", 4),
]
NC_TRAIN = fm.NC + [("RankMe", "nc/train/z/rankme", 2)]
NC_TEST = [
    ("zero-sum (test)", "nc/test/z/zero_sum", 3),
    ("within-class var. (test)", "nc/test/z/within_class_variance", 3),
    ("DC rank (test)", "nc/test/z/dc_rank", 1),
]
ACCURACY_CLAIMS = (("linear-probe accuracy (z)", ACC[2][1]), ("NCM accuracy (z)", ACC[0][1]))
HARDNESS = [
    ("class collision", "train/hn_collision", 3),
    ("ESS fraction", "train/hn_ess_fraction", 3),
]


def results_path(size: str = DEFAULT_SIZE, repo: str | None = None) -> str:
    """`results/fashion_mnist_convergence_<size>.json`, under `repo` when given."""
    return common.results_path(NAME, size, UNSUFFIXED_SIZE, repo)


# --------------------------------------------------------------------------- command line
add_arguments = common.add_grid_arguments  # the same options as the fashion_mnist section


def options(args: argparse.Namespace, size: str) -> dict[str, Any]:
    """`compute`'s options from the parsed command line; ValueError for a bad one."""
    studies = common.studies_option(args, grid.STUDIES)
    grid.check_args(size, studies)
    return {"studies": studies, "launch": common.launch_options(args)}


def compute(
    root: str,
    size: str = DEFAULT_SIZE,
    *,
    studies: Sequence[str] = grid.STUDIES,
    launch: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Trains the studies' runs (resumable), then reads every finished run of the
    section into the results (`grid.collect`); None while SLURM still holds runs."""
    if grid.run(root, size=size, studies=studies, launch=launch) is None:
        return None
    results = grid.collect(root, size)
    print(
        f"[reproduce] {len(results['runs'])} runs finished, {len(results['missing'])} missing",
        flush=True,
    )
    return results


# --------------------------------------------------------------------------- rows
LATE = "@late"  # suffix of a metric's median over the second half's evaluations


def _late_medians(curve: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The median of the NC_CLOSER metrics over the evaluations after half the run's
    epochs (keys suffixed LATE): a measure of where training settles that one excursion
    at the last evaluation does not decide."""
    if not curve:
        return {}
    half = max(c.get("epoch", 0) for c in curve) / 2
    out = {}
    for _, key in NC_CLOSER:
        values = [c[key] for c in curve if c.get("epoch", 0) > half and key in c]
        if values:
            out[key + LATE] = float(np.median(values))
    return out


def _final_hardness(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The runs with the sampler's diagnostics of their last evaluated step, and the
    late medians of the NC metrics (`_late_medians`), in `final`."""
    out = []
    for r in runs:
        last = r["curve"][-1] if r["curve"] else {}
        extra = {key: last[key] for _, key, _ in HARDNESS if key in last}
        out.append({**r, "final": {**r["final"], **extra, **_late_medians(r["curve"])}})
    return out


def _study(results: Mapping[str, Any], study: str) -> list[tuple[str, dict[str, Any]]]:
    return fm.settings(fm.groups(_final_hardness(results["runs"]), study))


def _near_nc(results: Mapping[str, Any], study: str) -> dict[str, bool]:
    """Setting label -> whether every seed is near NC (all of NC_KEYS below NEAR_NC)."""
    out: dict[str, bool] = {}
    for r in results["runs"]:
        if r["study"] == study:
            near = all(abs(r["final"].get(k, np.inf)) < NEAR_NC for k in NC_KEYS)
            name = fm.label(r["assignments"])
            out[name] = out.get(name, True) and near
    return out


def _nc_row(results: Mapping[str, Any], study: str, claim: str, settings) -> str:
    near = _near_nc(results, study)
    parts = []
    for name, g in settings:
        values = ", ".join(
            f"{k.rsplit('/', 1)[1].replace('_', ' ')} {fm.ms(g, k)}" for k in NC_KEYS if k in g
        )
        parts.append(f"{name}: {'near NC' if near.get(name) else 'not near NC'} ({values})")
    return f"| {claim} | " + "; ".join(parts) + " |"


def _loss_rows(sup: list) -> list[str]:
    if len(sup) < 2:
        return []
    scl, hscl = sup[0][1], sup[1:]
    return [
        f"| HSCL gets closer to the minimum of its loss than SCL [HN Table 1, §5.2] "
        f"({label}; SCL: {fm.ms(scl, key, 4)}) | "
        + "; ".join(
            f"{n}: {fm.ms(g, key, 4)} ("
            + common.difference_verdict(
                scl, g, key, higher_is="farther", lower_is="closer", names=("SCL", n)
            )
            + ")"
            for n, g in hscl
            if key in g
        )
        + " |"
        for label, key in (
            ("each model's own loss, reweighted, minus Theorem 2's minimum", ACC[-2][1]),
            ("every model's SCL loss, reweighted, minus Theorem 2's minimum", ACC[-1][1]),
        )
    ]


NC_CLOSER = (("zero-sum", "nc/train/z/zero_sum"), ("equal inner-product", NC_KEYS[2]))
LATE_CLOSER = tuple(
    (f"{name}, median of the evaluations after half the epochs", key + LATE)
    for name, key in NC_CLOSER
)


def _closer_rows(
    groups: list, base: int, others: list, claim: str, metrics: Sequence = NC_CLOSER
) -> list[str]:
    """`claim` scored on `metrics` (zero-sum and equal inner-product, at the end unless
    LATE_CLOSER): each of `others` (label, group) against `groups[base]` by the section's
    rule."""
    name, g0 = groups[base]
    return [
        f"| {claim} ({label}; {name}: {fm.ms(g0, key)}) | "
        + "; ".join(
            f"{n}: {fm.ms(g, key)} ("
            + common.difference_verdict(
                g0, g, key, higher_is="farther from NC", lower_is="closer to NC", names=(name, n)
            )
            + ")"
            for n, g in others
            if key in g
        )
        + " |"
        for label, key in metrics
        if key in g0
    ]


def _claims(results: Mapping[str, Any], sup: list, unsup: list) -> list[str]:
    """The rows of HN §5.2-5.3 (Figs. 3-4, Table 1), as the paper states them."""
    rows = []
    if sup:
        rows.append(
            _nc_row(
                results,
                "supervised",
                "with uniformly drawn negatives NC is not exactly attained: SCL's zero-sum and "
                "equal inner-product do not approach 0 [HN §5.2, Fig. 3 rows 2, 4]",
                sup[:1],
            )
        )
        rows += _closer_rows(
            sup,
            0,
            sup[1:],
            "supervised: harder negatives bring the model closer to NC, HSCL closer than SCL "
            "[HN §5.2, Fig. 3]",
        )
        if len(sup) > 1:
            rows.append(_nc_row(results, "supervised", "HSCL approaches NC [HN §5.2]", sup[1:]))
        rows += [
            f"| HSCL has higher {label} than SCL [HN §5.2, Fig. 3 row 1] | "
            f"{fm.against(sup[0][1], 'SCL', sup[1:], key, 'higher', 'lower')} |"
            for label, key in ACCURACY_CLAIMS
        ]
        rows += _loss_rows(sup)
        rows += fm.dc_rows(
            sup,
            "SCL",
            "SCL suffers DC, which hard negatives mitigate: HSCL has less DC than SCL "
            "[HN §5.3, Fig. 4 row 1, left]",
        )
    if unsup:
        rows.append(
            _nc_row(
                results,
                "unsupervised",
                "with uniformly drawn negatives NC is not exactly attained: UCL's zero-sum and "
                "equal inner-product do not approach 0 [HN §5.2, Fig. 3 rows 2, 4]",
                unsup[:1],
            )
        )
        if len(unsup) > 2:
            rows += _closer_rows(
                unsup,
                1,
                unsup[2:],
                f"unsupervised: one best hardness level, β = 5 among those tested: HUCL at "
                f"larger β farther from NC than {unsup[1][0]} [HN §5.2, Fig. 3]",
            )
        rows += [
            f"| hard negatives raise unsupervised {label}: HUCL above UCL [HN §5.2, Fig. 3 "
            f"row 1] | {fm.against(unsup[0][1], 'UCL', unsup[1:], key, 'higher', 'lower')} |"
            for label, key in ACCURACY_CLAIMS
        ]
        rows += fm.dc_rows(
            unsup,
            "UCL",
            "with random initialization HUCL suffers less DC than UCL [HN §5.3, Fig. 4 row 1, "
            "right]",
        )
    return rows


def _variant_claims(results: Mapping[str, Any], sup: list, var: list) -> list[str]:
    """The rows of HN §5.5 (normalization) and §5.7 (polynomial hardening); the unit-ball
    runs of the `supervised` study are their reference."""
    ref = dict(sup)
    kind = {
        suffix: [(n, g) for n, g in var if n.endswith(suffix)]
        for suffix in (", unit sphere", ", no normalization")
    }
    sphere, none = kind[", unit sphere"], kind[", no normalization"]
    poly = [(n, g) for n, g in var if "polynomial" in n]
    rows = []
    if len(sphere) > 1:
        rows += _closer_rows(
            sphere,
            0,
            sphere[1:],
            "unit sphere: with hard negatives SCL's loss achieves NC, HSCL closer to NC than "
            "SCL [HN §5.5, Fig. 4 row 3]",
        )
        rows += fm.dc_rows(
            sphere, sphere[0][0], "unit sphere: HSCL less DC than SCL [HN §5.5, Fig. 4 row 3]"
        )
    for n, g in sphere:
        name = n.removesuffix(", unit sphere")
        if name in ref:
            rows += _closer_rows(
                [(f"{name}, unit ball", ref[name])],
                0,
                [(n, g)],
                "the unit sphere behaves like the unit ball [HN §5.5, Fig. 4 rows 1, 3]",
            )
    if none:
        rows.append(
            _nc_row(
                results,
                "variants",
                "without normalization neither SCL nor HSCL attains NC [HN §5.5, Fig. 4 row 4]",
                none,
            )
        )
    for n, g in none:
        name = n.removesuffix(", no normalization")
        if name in ref:
            claim = (
                "without normalization SCL suffers less DC than on the unit ball [HN §5.5, "
                "Fig. 4 rows 1, 4]"
                if name == "SCL"
                else f"normalization can reduce the DC of hard negatives: {n} more DC than on "
                "the unit ball [HN §5.5, Fig. 4 rows 1, 4]"
            )
            rows += fm.dc_rows(
                [(f"{name}, unit ball", ref[name]), (n, g)], f"{name}, unit ball", claim
            )
    if poly and "SCL" in ref:
        scl = [("SCL", ref["SCL"])]
        rows += _closer_rows(
            scl + poly,
            0,
            poly,
            "polynomial hardening, like the exponential, brings HSCL closer to NC than SCL "
            "[HN §5.7, App. B.4]",
        )
        rows += fm.dc_rows(
            scl + poly, "SCL", "polynomial hardening mitigates DC: less DC than SCL [HN §5.7]"
        )
    return rows


BATCH_REFERENCE = f"HSCL β = {grid.SMALL_BATCH_POINTS[0][1]:g}"  # the setting of each batch


def _batch_reference(sup: list, size_settings: Mapping[str, Any]) -> list:
    """The `supervised` study's BATCH_REFERENCE at the size's batch, named with its batch:
    the reference of the small batches."""
    ref = dict(sup).get(BATCH_REFERENCE)
    return [] if ref is None else [(f"{BATCH_REFERENCE}, batch {size_settings['batch']}", ref)]


def _batch_claims(results: Mapping[str, Any], sup: list, bat: list) -> list[str]:
    """The rows of HN §5.6 (App. B.3, Figs. 8-9): NC at batch 64 for HSCL, at batch 32
    only for the largest β; a smaller batch against the size's batch at the same β."""
    rows = []
    for batch, claim in (
        (64, "at batch 64 HSCL (β = 5, 10, 30) is still nearly at NC [HN §5.6, App. B.3, Fig. 8]"),
        (32, "at batch 32 NC is attained only by HSCL β = 30 [HN §5.6, App. B.3, Fig. 9]"),
    ):
        at = [(n, g) for n, g in bat if n.endswith(f", batch {batch}")]
        if at:
            rows.append(_nc_row(results, "batch", claim, at))
        if len(at) > 1:
            rows += _closer_rows(
                at,
                0,
                at[1:],
                f"at batch {batch} the larger β is closer to NC [HN App. B.3]",
                NC_CLOSER + LATE_CLOSER,
            )
    ref = _batch_reference(sup, results["size_settings"])
    smaller = [(n, g) for n, g in bat if n.startswith(f"{BATCH_REFERENCE}, batch ")]
    if ref and smaller:
        rows += _closer_rows(
            ref + smaller,
            0,
            smaller,
            "a smaller batch moves HSCL away from NC (NC still nearly at 64, lost at 32) [HN §5.6]",
            NC_CLOSER + LATE_CLOSER,
        )
    return rows


def _simclr_claims(results: Mapping[str, Any], unsup: list, sim: list) -> list[str]:
    """The rows of HN App. B.5 (Figs. 12-13): SimCLR sampling attains no NC under either
    loss, the two losses give similar results, the failure is the sampling's."""
    if not sim:
        return []
    rows = [
        _nc_row(
            results,
            "simclr",
            "with SimCLR sampling NC is not attained, under InfoNCE or the SimCLR-form loss "
            "[HN §5.8, App. B.5, Figs. 12-13]",
            sim,
        )
    ]
    rows += [
        "| with SimCLR sampling the representations lie mostly within the unit ball, not "
        "on its surface [HN App. B.5] (unit-norm metric (1/C) Σ_c |‖μ_c‖ − 1|, as in the "
        "paper's plots) | "
        + "; ".join(f"{n}: {fm.ms(g, NC_KEYS[1])}" for n, g in sim if NC_KEYS[1] in g)
        + " |"
    ]
    if len(sim) > 1:
        rows += _closer_rows(
            sim,
            0,
            sim[1:],
            "the SimCLR-form loss (eq. 42) gives results very similar to InfoNCE's "
            "[HN App. B.5, Figs. 12-13]",
        )
    ucl_labels = dict(unsup).get("UCL")
    ucl_views = dict(sim).get("UCL")
    if ucl_labels and ucl_views:
        rows += _closer_rows(
            [("UCL, label positives", ucl_labels), ("UCL, views", ucl_views)],
            0,
            [("UCL, views", ucl_views)],
            "the failure is the sampling's, not the loss's: UCL with views farther from NC "
            "than with label positives [HN App. B.5]",
            NC_CLOSER + (("unit-norm", NC_KEYS[1]), ("within-class variance", NC_KEYS[3])),
        )
    return rows


def _warm_claims(warm: list, start: Mapping[str, Any] | None) -> list[str]:
    if not warm or start is None:
        return []
    rows = []
    for metric, key, digits, up, down in (
        ("zero-sum", "nc/train/z/zero_sum", 3, "leaves NC", "closer to NC"),
        ("equal inner-product", "nc/train/z/equal_inner_product", 3, "leaves NC", "closer to NC"),
        ("DC rank", "nc/train/z/dc_rank", 1, "higher", "lower (more DC)"),
        ("log10 smallest singular value", fm.LOG_SV_MIN, 2, "less DC", "more DC"),
    ):
        if key not in start:
            continue
        parts = [
            f"{n}: {fm.ms(g, key, digits)} ("
            + common.difference_verdict(
                start, g, key, higher_is=up, lower_is=down, names=("the start", n)
            )
            + ")"
            for n, g in warm
            if key in g
        ]
        rows.append(
            f"| from the near-NC start, SCL, HSCL and UCL stay at NC; HUCL at large β leaves "
            f"it and collapses dimensions [HN Table 2, §5.4, Fig. 4 row 2] ({metric}; the "
            f"start: {fm.ms(start, key, digits)}) | " + "; ".join(parts) + " |"
        )
    return rows


# --------------------------------------------------------------------------- the section
def _class_sizes(runs: Sequence[Mapping[str, Any]]) -> str:
    """The range of the training subsets' class sizes, as the runs recorded them."""
    counts = [c for r in runs for c in r.get("train_class_counts", [])]
    if not counts:
        return "about a tenth per class"
    return (
        f"class sizes {min(counts)} to {max(counts)}: not exactly equal, while Theorems 2-3 "
        "and their simplex assume equal classes"
    )


def _views_text(results: Mapping[str, Any]) -> str:
    """The simclr study's views in words, from the results."""
    v = results.get("simclr_views")
    if not v:
        return "the Fashion-MNIST config's views"
    if v["views"] == "translate":
        return (
            f"a random shift of up to {v['max_shift']} pixels and a horizontal flip with "
            f"probability {v['flip_prob']:g}"
        )
    options = ", ".join(f"{k} {val}" for k, val in v.items() if k != "views")
    return f"views {v['views']!r}: {options}"


def _intro(results: Mapping[str, Any]) -> list[str]:
    s = results["size_settings"]
    runs = results["runs"]
    m, v = results["machine"], results["versions"]
    lines = [
        "## Fashion-MNIST trained to convergence (real images, measured here)",
        "",
        f"Generated by `python -m hncl_jax.reproduce {NAME} --write_doc` from "
        f"`{results_path(results['size'])}`, which `{results['command']}` wrote; do not edit "
        f"by hand. Machine: {m['cpu_count']} CPU cores ({m['processor']}, JAX {v['jax']}, "
        f"{m['platform']}). Wall time of training and evaluation, one run after another: "
        + common.study_times(runs, grid.STUDIES)
        + ".",
        "",
        "The recipe of the paper's Figs. 3-4 in all four settings: the positive of an anchor "
        "is another example of its class (also for UCL and HUCL, whose negatives come from "
        "the whole batch), no augmentation, the unit ball, a constant Adam learning rate of "
        f"1e-3. Size `{results['size']}`: {s['max_examples'] or 'all'} training images drawn "
        f"at random per seed ({_class_sizes(runs)}) and as many test images, model "
        f"`{s['model']}`" + fm.model_options(s) + f", d = 9, {s['epochs']} epochs "
        f"(warm starts {s['warm_epochs']} more), batch {s['batch']}, k = {s['k']}, "
        f"evaluation every {s['eval_every']} epochs. Values are mean ± std over "
        f"{s['seeds']} seeds (sample std). NC metrics are of the training embeddings z "
        "unless marked test; accuracies are on the test images. The reweighted gaps score "
        "each final model on its whole training split with the deterministic k → ∞ "
        "estimator (no sampling noise): its own loss minus that loss's value at exact Neural "
        "Collapse with equal classes (for SCL/HSCL Theorem 2's minimum, "
        f"{grid.nc_value('scl', 0.0, 10):.4f} for every β; for UCL the k → ∞ limit of "
        f"Theorem 3's minimum, {grid.nc_value('ucl', 0.0, 10):.4f}; for HUCL its value at NC, "
        "which the paper does not prove minimal), and the SCL loss of every model minus "
        "Theorem 2's minimum. The batch study trains at batch 64 and 32 for the same "
        "number of epochs (so more steps), each anchor's k negatives drawn with replacement "
        "from the smaller batch; the simclr study's positive is a second view of the "
        f"anchor's image ({_views_text(results)}), and its SimCLR-form loss weighs the "
        "negatives' mean by Q = batch − 2 [HN eq. 42]. Under a constant learning rate "
        "the NC metrics make excursions (a zero-sum that jumps by an order of magnitude "
        "at one evaluation and returns at the next), more often at small batches; the rows marked "
        "'median of the evaluations after half the epochs' score where training settles, "
        "which one excursion at the last evaluation does not decide.",
        "",
    ]
    return lines + common.missing_note(results)


def _setting_tables(title: str, groups: list) -> list[str]:
    if not groups:
        return [title, "", fm.NOT_RUN, ""]
    return [
        title,
        "",
        fm.table(groups, ACC),
        "",
        fm.table(groups, NC_TRAIN),
        "",
        fm.table(groups, NC_TEST + HARDNESS),
        "",
    ]


def render(results: Mapping[str, Any]) -> str:
    """The generated block of REPRODUCTION.md (markers included), from the results alone."""
    sup, unsup = _study(results, "supervised"), _study(results, "unsupervised")
    warm, var = _study(results, "warm_start"), _study(results, "variants")
    bat, sim = _study(results, "batch"), _study(results, "simclr")
    start_label = f"HSCL β = {grid.WARM_START_FROM:g}"
    start = next((g for n, g in sup if n == start_label), None)
    figure = f"results/{NAME}_{results['size']}"
    begin, end = common.markers(NAME)
    warm_rows = ([(f"the start ({start_label}, converged)", start)] if start else []) + warm
    lines = [
        begin,
        *_intro(results),
        *_setting_tables("### HN Fig. 3, Fig. 4 (left): SCL and HSCL", sup),
        *_setting_tables("### HN Fig. 3, Fig. 4 (right): UCL and HUCL, label positives", unsup),
        *_setting_tables(
            "### HN §5.5, §5.7: unit sphere, no normalization, polynomial hardening", var
        ),
        *_setting_tables(
            "### HN §5.6, App. B.3: batch 64 and 32 (the size's batch for reference)",
            _batch_reference(sup, results["size_settings"]) + bat if bat else [],
        ),
        *_setting_tables(
            "### HN App. B.5: SimCLR sampling (two augmented views, no label), InfoNCE "
            "(UCL) and the SimCLR-form loss (eq. 42)",
            sim,
        ),
        f"![accuracy and NC against epochs]({figure}_curves.png)",
        "",
        f"![DC spectra]({figure}_dc.png)",
        "",
        f"### HN Table 2: warm start from the converged {start_label} model",
        "",
        fm.table(warm_rows, NC_TRAIN[:4] + NC_TRAIN[4:5] + ACC[:1]) if warm else fm.NOT_RUN,
        "",
        f"### Verdicts (a difference counts when Welch's two-sided t-test over the seeds gives "
        f"p < {common.ALPHA:g}; p is stated; with no spread in either group there is no test "
        f"and the values are stated as seen. Near NC: every seed below {NEAR_NC:g} in "
        "zero-sum, unit-norm, equal inner-product and within-class variance)",
        "",
        "| claim | Fashion-MNIST, trained to convergence |",
        "| --- | --- |",
        *_claims(results, sup, unsup),
        *_variant_claims(results, sup, var),
        *_batch_claims(results, sup, bat),
        *_simclr_claims(results, unsup, sim),
        *_warm_claims(warm, start),
        "",
        end,
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures
CURVE_PANELS = [
    ("eval/test/z/ncm_acc", "test NCM accuracy (z)", False),
    ("nc/train/z/zero_sum", "zero-sum", True),
    ("nc/train/z/equal_inner_product", "equal inner-product", True),
    ("nc/train/z/within_class_variance", "within-class variance", True),
    ("nc/train/z/dc_rank", "DC rank", False),
]


def _by_setting(results: Mapping[str, Any], study: str, field: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in results["runs"]:
        if r["study"] == study and r[field]:
            out.setdefault(fm.label(r["assignments"]), []).append(r[field])
    return out


def curves_figure(results: Mapping[str, Any]) -> Figure:
    """Accuracy, NC and DC rank against epochs, one row per study but the warm start
    (HN Fig. 3 style), mean ± std over seeds."""
    studies = [s for s in grid.STUDIES if s != "warm_start"]
    fig = Figure(figsize=(16, 3.2 * len(studies)))
    axes = fig.subplots(len(studies), len(CURVE_PANELS))
    for row, study in enumerate(studies):
        by_setting = _by_setting(results, study, "curve")
        for ax, (key, title, log) in zip(axes[row], CURVE_PANELS, strict=True):
            fm.epoch_panel(ax, by_setting, key)
            ax.set_title(f"{study}: {title}", fontsize=9)
            ax.set_xlabel("epoch")
            if log:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        if by_setting:
            axes[row][0].legend(fontsize=7)
    fig.suptitle(
        f"Fashion-MNIST trained to convergence, size {results['size']} (mean ± std over seeds)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def spectrum_figure(results: Mapping[str, Any]) -> Figure:
    """The final DC spectra (the class means' covariance of z) of each study (HN Fig. 4
    style), mean ± std over seeds."""
    fig = Figure(figsize=(3.6 * len(grid.STUDIES), 3.8))
    axes = fig.subplots(1, len(grid.STUDIES))
    for ax, study in zip(axes, grid.STUDIES, strict=True):
        by_setting = _by_setting(results, study, "dc_spectrum")
        for i, (label, spectra) in enumerate(by_setting.items()):
            arr = np.asarray(spectra, np.float64)
            ax.errorbar(
                np.arange(1, arr.shape[1] + 1),
                arr.mean(0),
                yerr=arr.std(0),
                capsize=3,
                marker=fm.MARKERS[i % 5],
                label=label,
                alpha=0.85,
            )
        ax.set_yscale("log")
        ax.set_xlabel("index of the singular value")
        ax.set_title(f"DC spectrum, {study.replace('_', ' ')}", fontsize=9)
        if by_setting:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("normalized singular value")
    fig.tight_layout()
    return fig


def figures(results: Mapping[str, Any], out_dir: str) -> list[str]:
    """Writes `<out_dir>/fashion_mnist_convergence_<size>_{curves,dc}.png`; returns the paths."""
    stem = os.path.join(out_dir, f"{NAME}_{results['size']}")
    paths = []
    for suffix, draw in (("_curves.png", curves_figure), ("_dc.png", spectrum_figure)):
        paths.append(stem + suffix)
        draw(results).savefig(paths[-1], dpi=90)
    return paths
