"""REPRODUCTION.md, section `hn_synthetic` [HN §5.1, Fig. 2]: the synthetic grid
(`synthetic_grid.train_grid`, an MLP, cached in its workdir), its HSCL β = 10 run
through the trainer as a cross-check, and a quick ResNet-18 on the vectors reshaped to
32×32×3 (`colabs/synthetic_collapse.ipynb`).

    python -m hncl_jax.reproduce hn_synthetic [--size=tiny] [--write_doc]

The runs go to `runs/reproduce/hn_synthetic` (resumable), the results to
`results/hn_synthetic.json`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import ml_collections

from hncl_jax import sweep
from hncl_jax.configs import synthetic
from hncl_jax.reproduce import common, synthetic_grid
from hncl_jax.reproduce.common import NC_COLUMNS
from hncl_jax.reproduce.common import number as _g

NAME = "hn_synthetic"
# [HN §5.1, Fig. 2]: the minima the losses reach on the synthetic set (C = 3, k = 256).
PAPER = {"scl": "0.2014", "ucl": "0.3935"}
# NC-rule thresholds: a run "reaches the minimum" when its final loss is within
# REACH_TOLERANCE of it, and "is at NC" when zero-sum, unit-norm and equal inner-product
# are all at most NC_TOLERANCE.
REACH_TOLERANCE = 1e-3
NC_TOLERANCE = 0.01
SIZES: dict[str, dict[str, Any]] = {
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
DEFAULT_SIZE = UNSUFFIXED_SIZE = "full"
GRID_FILE = "grid_result.json"


def results_path(size: str = DEFAULT_SIZE, repo: str | None = None) -> str:
    return common.results_path(NAME, size, UNSUFFIXED_SIZE, repo)


def _at_nc(r: Mapping[str, Any]) -> bool:
    return all(r.get(m) is not None and r[m] <= NC_TOLERANCE for m in NC_COLUMNS)


def _paper_sized(g: Mapping[str, Any]) -> bool:
    """Whether the grid ran at the paper's sizes [HN §5.1] (docs/math.md §13)."""
    return (g["dim"], g["per_class"], g["k"], g["epochs"]) == (3072, 100, 256, 400)


# --------------------------------------------------------------------------- configs
def _sized(c: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
    s = SIZES[size]
    c.num_epochs, c.loss.k = s["epochs"], s["k"]
    c.dataset_kwargs.dim, c.dataset_kwargs.per_class = s["dim"], s["per_class"]
    if s["hidden_sizes"]:
        c.model_kwargs.hidden_sizes = s["hidden_sizes"]
    return c


def grid_config(size: str) -> ml_collections.ConfigDict:
    """The Fig. 2 grid: `synthetic_grid.get_config()` at the size's data and loss sizes."""
    s = SIZES[size]
    cfg = _sized(synthetic_grid.get_config(), size)
    cfg.grid.betas, cfg.grid.positives = tuple(s["betas"]), ("labels", "noise_views")
    cfg.grid.settings = ("scl", "hscl", "ucl", "hucl")
    cfg.eval_every_epochs = s["eval_every"]
    return cfg


def _check_config(size: str) -> ml_collections.ConfigDict:
    """The grid's HSCL β = 10 run (label positives) as the command-line trainer's config."""
    single = _sized(synthetic.get_config("hscl"), size)
    single.loss.beta = 10.0
    single.eval_every_epochs = single.checkpoint_every_epochs = single.num_epochs
    single.plots, single.linear_probe = False, "off"
    return single


def _resnet_config(size: str) -> ml_collections.ConfigDict:
    """The ResNet on the vectors reshaped to images, label positives."""
    rs = SIZES[size]["resnet"]
    resnet = _sized(synthetic.get_config(), size)
    resnet.model = rs["model"]
    resnet.model_kwargs = ml_collections.ConfigDict({"num_filters": rs["num_filters"]})
    resnet.dataset_kwargs.image_shape = tuple(rs["image_shape"])
    resnet.num_epochs = rs["epochs"]
    resnet.eval_every_epochs = resnet.checkpoint_every_epochs = rs["epochs"]
    resnet.plots, resnet.linear_probe = False, "off"
    return resnet


# --------------------------------------------------------------------------- compute
def _train_grid_cached(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """`synthetic_grid.train_grid(cfg)`'s rows, cached in `<workdir>/grid_result.json`
    (reused when the config is the same, so a rerun trains nothing)."""
    cfg_json = json.loads(cfg.to_json_best_effort())
    path = os.path.join(workdir, GRID_FILE)
    if os.path.exists(path):
        try:
            record = common.read_results(path)
        except ValueError:  # a damaged cache: trained again
            record = {}
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
    common.write_results(record, path)
    return record


def _trainer_row(row: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("train/epoch_loss", "train/theorem_bound", "train/loss_gap", "eval/test/z/ncm_acc")
    out = {k: row.get(k) for k in keep}
    out.update({m: row.get(f"nc/train/z/{m}") for m in (*NC_COLUMNS, "within_class_variance")})
    out.update(
        assignments=row["assignments"], seconds=row["seconds"], cpu_seconds=row["cpu_seconds"]
    )
    return out


def _grid_record(cfg: ml_collections.ConfigDict, grid: Mapping[str, Any]) -> dict[str, Any]:
    return {
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
    }


def compute(root: str, size: str = DEFAULT_SIZE) -> dict[str, Any]:
    """[HN Fig. 2]: the 16-run grid (`synthetic_grid.train_grid`, an MLP), its HSCL
    β = 10 run through the trainer as a cross-check, and a quick ResNet-18 on the vectors
    reshaped to images (`configs/synthetic.py`, `dataset_kwargs.image_shape`)."""
    common.enable_compilation_cache(root)
    s = SIZES[size]
    cfg = grid_config(size)
    grid = _train_grid_cached(cfg, os.path.join(root, "grid"))
    check = common.grid(_check_config(size), os.path.join(root, "trainer_check"), [{}])[0]
    i = next(
        j
        for j, r in enumerate(grid["rows"])
        if (r["setting"], r["beta"], r["positives"]) == ("hscl", 10.0, "labels")
    )
    rs = s["resnet"]
    points = [{"loss.name": n, "loss.beta": b} for n, b in rs["points"]]
    resnet_rows = common.grid(_resnet_config(size), os.path.join(root, "resnet"), points)
    return {
        "section": NAME,
        "size": size,
        "size_settings": json.loads(json.dumps(s)),
        "trains": True,
        "command": common.command(NAME, size),
        **common.environment(),
        **common.cost([grid, check, *resnet_rows]),
        "grid": _grid_record(cfg, grid),
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


# --------------------------------------------------------------------------- render
def _hn_label(setting: str, beta: float) -> str:
    return setting.upper() + (f" β = {beta:g}" if setting in ("hscl", "hucl") else "")


def _grid_intro(results: Mapping[str, Any]) -> list[str]:
    g = results["grid"]
    hidden = " × ".join(str(h) for h in g["hidden_sizes"])
    tc = results["trainer_check"]
    same = abs(tc["trainer_last_epoch_loss"] - tc["grid_last_epoch_loss"]) <= 1e-4 * abs(
        tc["grid_last_epoch_loss"]
    )
    return [
        f"**Model: an MLP (hidden {hidden}), not the paper's.** The paper trains a ResNet-50 "
        "on the vectors reshaped to 32×32×3; a quick ResNet-18 run is the second table "
        "below. Data and loss "
        + ("at the paper's sizes" if _paper_sized(g) else "at a test size (not the paper's)")
        + f": 3 classes × {g['per_class']} points in "
        f"R^{g['dim']}, d = 2, unit ball, InfoNCE with k = {g['k']}; {g['optimizer']} "
        f"{g['learning_rate']:g}, the whole set as one batch, {g['epochs']} epochs. All "
        f"{len(g['rows'])} runs are trained in one compiled program by "
        f"`hncl_jax.reproduce.synthetic_grid.train_grid` ({common.duration(g['seconds'])} wall, "
        "compilation "
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


def _grid_table(rows: list[Mapping[str, Any]]) -> list[str]:
    lines = []
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
    return lines


def _supervised_claim(sup: list[Mapping[str, Any]]) -> str:
    sup_reach = all(r["gap"] <= REACH_TOLERANCE for r in sup)
    sup_nc = all(_at_nc(r) for r in sup)
    max_gap = max(r["gap"] for r in sup)
    max_nc = max(r[m] for r in sup for m in NC_COLUMNS)
    paper_scl = PAPER["scl"]
    return (
        f"| SCL and HSCL (every β) reach the Thm 2 minimum and NC, with label or noise-view "
        f"positives | {paper_scl} for all β | final "
        + ", ".join(sorted({_g(r["final_loss"]) for r in sup}))
        + f" (largest gap {max_gap:.1e}), NC metrics ≤ {max_nc:.1e} | "
        + (
            f"match; against the paper's printed {paper_scl}: "
            + (
                "match for every run"
                if all(common.value_verdict(r["final_loss"], paper_scl) == "match" for r in sup)
                else "differs for some runs"
            )
            if sup_reach and sup_nc
            else "differs"
        )
        + " |"
    )


def _ucl_claim(u: Mapping[str, Any]) -> str:
    ok = u["gap"] <= REACH_TOLERANCE and _at_nc(u)
    return (
        f"| UCL with label positives reaches the Thm 3 minimum and NC | "
        f"{PAPER['ucl']} | {_g(u['final_loss'])} (exact minimum "
        f"{u['bound']:.5f}, gap {u['gap']:.1e}); NC metrics ≤ "
        f"{max(u[m] for m in NC_COLUMNS):.1e} | "
        + ("match" if ok else "differs")
        + " (against the exact minimum); against the paper's printed "
        + f"{PAPER['ucl']}: "
        + common.value_verdict(u["final_loss"], PAPER["ucl"])
        + " (see the Thm 3 row of the theory table) |"
    )


def _hucl_claim(hucl_lab: list[Mapping[str, Any]]) -> str:
    not_nc = all(not _at_nc(r) for r in hucl_lab)
    return (
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


def _views_claim(unsup_views: list[Mapping[str, Any]]) -> str:
    not_nc = all(not _at_nc(r) for r in unsup_views)
    return (
        "| UCL / HUCL with noise views do not reach NC | figure only | unit-norm "
        f"{min(r['unit_norm'] for r in unsup_views):.3f} – "
        f"{max(r['unit_norm'] for r in unsup_views):.3f}, zero-sum "
        f"{min(r['zero_sum'] for r in unsup_views):.3f} – "
        f"{max(r['zero_sum'] for r in unsup_views):.3f} | "
        + ("holds (qualitative)" if not_nc else "differs: some run is at NC")
        + ". The bound printed for them treats the reference examples as the latent "
        "classes (docs/math.md §0), which views make the only ones the loss sees. |"
    )


def _grid_claims(rows: list[Mapping[str, Any]]) -> list[str]:
    def pick(settings, positives):
        return [r for r in rows if r["setting"] in settings and r["positives"] in positives]

    ucl_lab = pick(("ucl",), ("labels",))
    hucl_lab = pick(("hucl",), ("labels",))
    unsup_views = pick(("ucl", "hucl"), ("noise_views",))
    lines = [
        "",
        f"Verdict rule: a run reaches its minimum when its final loss is within "
        f"{REACH_TOLERANCE:g} of it, and is at NC when zero-sum, unit-norm and equal "
        f"inner-product are all ≤ {NC_TOLERANCE:g}; the paper's printed minima are compared "
        "at their printed digits. The verdicts are about this MLP, not the paper's ResNet-50.",
        "",
        "| claim [HN §5.1, Fig. 2] | paper | measured here (MLP) | verdict |",
        "| --- | --- | --- | --- |",
        _supervised_claim([r for r in rows if r["setting"] in ("scl", "hscl")]),
    ]
    if ucl_lab:
        lines.append(_ucl_claim(ucl_lab[0]))
    if hucl_lab:
        lines.append(_hucl_claim(hucl_lab))
    if unsup_views:
        lines.append(_views_claim(unsup_views))
    return lines


def _resnet_block(rn: Mapping[str, Any]) -> list[str]:
    shape = "×".join(str(v) for v in rn["image_shape"])
    lines = [
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
            f"{common.duration(r['seconds'])} |"
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
    return lines


def render(results: Mapping[str, Any]) -> str:
    """The generated `hn_synthetic` block of REPRODUCTION.md (markers included)."""
    rows = results["grid"]["rows"]
    lines = [
        "### Synthetic data, Fig. 2 (`colabs/synthetic_collapse.ipynb`)",
        "",
        common.header(results, NAME, results_path(results["size"])),
        "",
        *_grid_intro(results),
        *_grid_table(rows),
        *_grid_claims(rows),
        *_resnet_block(results["resnet"]),
    ]
    return common.block(NAME, "\n".join(lines))
