"""REPRODUCTION.md, section `near_nc` [HN Table 2]: the near-NC warm start on the HN
synthetic set: HSCL β = 10, then each of the ten settings from its checkpoint
(`colabs/near_nc_warm_start.ipynb` with HNCL_DATASET=hn_synthetic).

    python -m hncl_jax.reproduce near_nc [--size=tiny] [--write_doc]

The runs go to `runs/reproduce/near_nc` (resumable), the results to
`results/near_nc.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hncl_jax import configs, sweep, train
from hncl_jax.reproduce import common
from hncl_jax.reproduce.common import NC_COLUMNS
from hncl_jax.reproduce.common import number as _g

NAME = "near_nc"
# [HN Table 2] (CIFAR-100, ResNet-50): zero-sum, unit-norm, equal inner-product after the
# second stage; "near-NC model" is the stage-1 HSCL β = 10 model.
PAPER = {
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
BETAS = (0.0, 2.0, 5.0, 10.0, 30.0)
# Verdict rules: a value matches the paper's when it lies within a factor MATCH_FACTOR of
# it (one seed, so no standard error); a run stays at NC when its zero-sum and equal
# inner-product are both at most STAY_TOLERANCE, which sorts the paper's own rows as the
# paper does (those that stay are ≤ 0.012; HUCL β = 10 and 30 have zero-sum 0.093, 0.761).
MATCH_FACTOR = 3.0
STAY_TOLERANCE = 0.05
SIZES = {
    "full": dict(stage1=None, stage2=None),  # the config's 400 epochs, twice
    "tiny": dict(stage1=4, stage2=2, dim=48, per_class=10, hidden_sizes=(16,), k=16),
}
DEFAULT_SIZE = UNSUFFIXED_SIZE = "full"


def results_path(size: str = DEFAULT_SIZE, repo: str | None = None) -> str:
    return common.results_path(NAME, size, UNSUFFIXED_SIZE, repo)


def _ratio_text(measured: float, paper: float) -> str:
    r = measured / paper
    return f"×{r:.1f}" if r >= 1 else f"×{r:.2f}"


def row_verdict(r: Mapping[str, Any]) -> str:
    """ "match" when zero-sum and equal inner-product are both within MATCH_FACTOR of the
    paper's; otherwise the ratios measured / paper."""
    zs, _, eip = PAPER[r["setting"]]
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


def stays(r: Mapping[str, Any]) -> bool:
    """Whether a run stays at NC (zero-sum and equal inner-product ≤ STAY_TOLERANCE)."""
    return r["zero_sum"] <= STAY_TOLERANCE and r["equal_inner_product"] <= STAY_TOLERANCE


# --------------------------------------------------------------------------- compute
def stage_configs(size: str, root: str):
    """(stage-1 config, stage-2 base config, stage-2 grid) as the notebook builds them
    for `HNCL_DATASET=hn_synthetic`."""
    s = SIZES[size]
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
    grid = {"loss.name": ["hscl", "hucl"], "loss.beta": list(BETAS)}
    return base, warm, grid


def _metrics(r: Mapping[str, Any]) -> dict[str, float]:
    return {m: r[f"nc/train/z/{m}"] for m in NC_COLUMNS}


def _setting_name(a: Mapping[str, Any]) -> str:
    fam = {"hscl": "SCL", "hucl": "UCL"}[a["loss.name"]]
    return fam if a["loss.beta"] == 0 else f"H{fam} β = {a['loss.beta']:g}"


def compute(root: str, size: str = DEFAULT_SIZE) -> dict[str, Any]:
    """[HN Table 2] on the HN synthetic set: HSCL β = 10, then each of the ten settings
    from its checkpoint (`colabs/near_nc_warm_start.ipynb` with HNCL_DATASET=hn_synthetic)."""
    common.enable_compilation_cache(root)
    base, warm, grid = stage_configs(size, root)
    near = common.grid(base, os.path.join(root, "stage1"), [{}])
    stage2 = common.grid(warm, os.path.join(root, "stage2"), sweep.expand_grid(grid))
    train_ds, _ = train.load_data(base)
    rows = [{"setting": "near-NC model", **_metrics(near[0])}]
    rows += [{"setting": _setting_name(r["assignments"]), **_metrics(r)} for r in stage2]
    return {
        "section": NAME,
        "size": size,
        "size_settings": json.loads(json.dumps(SIZES[size])),
        "trains": True,
        "command": common.command(NAME, size),
        **common.environment(),
        **common.cost(near + stage2),
        "stage1_epochs": int(base.num_epochs),
        "stage2_epochs": int(warm.num_epochs),
        "dim": int(np.prod(train_ds.images.shape[1:])),
        "per_class": int(np.bincount(train_ds.labels).max()),
        "rows": rows,
    }


# --------------------------------------------------------------------------- render
def _table(results: Mapping[str, Any]) -> list[str]:
    lines = [
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
    for r in results["rows"]:
        zs, un, eip = PAPER[r["setting"]]
        lines.append(
            f"| {r['setting']} | {_g(r['zero_sum'])} ({zs:g}) | {r['unit_norm']:.1e} ({un:.1e}) "
            f"| {_g(r['equal_inner_product'])} ({eip:g}) | {row_verdict(r)} |"
        )
    return lines


def _summary(rs: Sequence[Mapping[str, Any]]) -> tuple[str, bool, bool]:
    """(text, do all stay at NC?, do all match the paper?) for a group of rows."""
    matched = [r for r in rs if row_verdict(r) == "match"]
    stay = [r for r in rs if stays(r)]
    text = (
        f"{len(stay)} of {len(rs)} stay at NC, {len(matched)} of {len(rs)} match the paper's values"
    )
    off = [r["setting"] for r in rs if r not in matched]
    return (
        text + (f" (not: {', '.join(off)})" if off else ""),
        len(stay) == len(rs),
        len(matched) == len(rs),
    )


def _stay_claims(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    sup = [r for r in rows if r["setting"].startswith(("SCL", "HSCL"))]
    small = [r for r in rows if r["setting"] in ("UCL", "HUCL β = 2", "HUCL β = 5")]
    sup_text, sup_stay, sup_match = _summary(sup)
    small_text, small_stay, small_match = _summary(small)
    return [
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


def _leave_claims(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    by = {r["setting"]: r for r in rows}
    lines = []
    if "HUCL β = 10" in by:
        r = by["HUCL β = 10"]
        lines.append(
            f"| HUCL β = 10 leaves NC | zero-sum {_g(r['zero_sum'])} (paper "
            f"{PAPER['HUCL β = 10'][0]:g}) | "
            + ("holds" if not stays(r) else "differs: it stays at NC here")
            + (f"; {row_verdict(r)}" if not stays(r) else "")
            + " |"
        )
    if "HUCL β = 30" in by:
        r = by["HUCL β = 30"]
        furthest = max(
            (x for x in rows if x["setting"] != "near-NC model"), key=lambda x: x["zero_sum"]
        )
        lines.append(
            f"| HUCL β = 30 leaves NC furthest | zero-sum {_g(r['zero_sum'])} (paper "
            f"{PAPER['HUCL β = 30'][0]:g}); furthest here: {furthest['setting']} | "
            + (
                "holds"
                if furthest is r
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
    return lines


def render(results: Mapping[str, Any]) -> str:
    """The generated `near_nc` block of REPRODUCTION.md (markers included)."""
    lines = [
        "### Near-NC warm start, Table 2 (`colabs/near_nc_warm_start.ipynb`)",
        "",
        common.header(results, NAME, results_path(results["size"])),
        "",
        *_table(results),
        *_stay_claims(results["rows"]),
        *_leave_claims(results["rows"]),
    ]
    return common.block(NAME, "\n".join(lines))
