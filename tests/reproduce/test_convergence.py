"""The `fashion_mnist_convergence` section: its recipe, the reweighted score of a final
model, the verdict rules and the section through the command line at size tiny."""

from __future__ import annotations

import copy
import json
import math
import os

import numpy as np
import pytest

from hncl_jax import geometry, sweep
from hncl_jax.reproduce import common
from hncl_jax.reproduce import convergence_grid as grid
from hncl_jax.reproduce import fashion_mnist_convergence as section
from hncl_jax.reproduce.__main__ import main as reproduce_main


def test_the_cpu_plan_is_the_papers_recipe(tmp_path):
    """Label positives in all four settings, no augmentation, a constant Adam 1e-3, the
    unit ball; the warm starts start from their own seed's HSCL β = 10 run, after it."""
    runs = grid.plan(str(tmp_path), size="cpu")
    assert len(runs) == 6 + 10 + 6 + 10 + 6 + 4
    runs, batches, simclr = runs[:32], runs[32:38], runs[38:]
    variants, runs = runs[22:], runs[:22]
    for _, c, workdir in runs + variants:
        assert c.positives == "labels" and c.augment is False, workdir
        assert c.optimizer.name == "adam" and c.optimizer.schedule == "constant"
        assert c.optimizer.learning_rate == 1e-3
        assert c.normalization == "unit_ball" or c in [v[1] for v in variants]
        assert c.dataset_kwargs.max_examples == 2000 and c.batch_size == 256 and c.loss.k == 256
        assert (c.model, dict(c.model_kwargs)) == ("small_cnn", {"width": 32, "depth": 1})
    names = [(a["loss.name"], a["loss.beta"]) for a, _, _ in runs]
    assert names[:6:2] == [("scl", 0.0), ("hscl", 5.0), ("hscl", 10.0)]
    assert names[-6::2] == [("ucl", 0.0), ("hucl", 5.0), ("hucl", 30.0)]
    workdirs = [w for _, _, w in runs]
    for _, c, w in runs[6:16]:
        seed = int(c.seed)
        assert c.num_epochs == 30 and f"seed={seed}" in w
        source = os.path.join(
            str(tmp_path), "supervised", f"loss.name=hscl,loss.beta=10,seed={seed}"
        )
        assert c.init_from == source and workdirs.index(source) < workdirs.index(w)
    assert all(c.num_epochs == 200 for _, c, _ in runs[:6] + runs[16:] + variants)
    # HN §5.5: SCL and HSCL β = 10 on the unit sphere and unnormalized; §5.7: polynomial.
    got = [
        (c.normalization, c.loss.name, c.loss.hardening, float(c.loss.beta), float(c.loss.epsilon))
        for _, c, _ in variants[::2]
    ]
    assert got == [
        ("unit_sphere", "scl", "exponential", 0.0, 3.0),
        ("unit_sphere", "hscl", "exponential", 10.0, 3.0),
        ("none", "scl", "exponential", 0.0, 3.0),
        ("none", "hscl", "exponential", 10.0, 3.0),
        ("unit_ball", "hscl", "polynomial", 0.0, 10.0),
    ]
    # HN §5.6: HSCL at batch 64 and 32, the same epochs and k; HN App. B.5: views.
    got = [(c.batch_size, c.loss.name, float(c.loss.beta)) for _, c, _ in batches[::2]]
    assert got == [(64, "hscl", 10.0), (32, "hscl", 10.0), (32, "hscl", 30.0)]
    got = [(c.positives, c.views, c.loss.name) for _, c, _ in simclr[::2]]
    assert got == [("views", "translate", "ucl"), ("views", "translate", "simclr_form")]
    for _, c, _ in batches + simclr:
        assert c.num_epochs == 200 and c.loss.k == 256 and c.normalization == "unit_ball"
        assert c.optimizer.name == "adam" and c.optimizer.schedule == "constant"
        assert c.augment is False and c.dataset_kwargs.max_examples == 2000
    assert {c.batch_size for _, c, _ in simclr} == {256}


def test_bad_studies_and_a_warm_start_without_its_source_fail_first(tmp_path):
    with pytest.raises(ValueError, match=r"unknown --studies \['fig3'\]"):
        grid.run(str(tmp_path), size="tiny", studies=["fig3"])
    with pytest.raises(ValueError, match="add the study 'supervised'"):
        grid.run(str(tmp_path), size="tiny", studies=["warm_start"])
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("num_classes", [3, 10])
def test_nc_value_of_ucl_is_theorem_3s_limit(num_classes):
    assert grid.nc_value("ucl", 0.0, num_classes) == pytest.approx(
        geometry.ucl_reweighted_limit(num_classes), abs=1e-14
    )
    assert grid.nc_value("hucl", 0.0, num_classes) == grid.nc_value("ucl", 5.0, num_classes)
    assert grid.nc_value("hscl", 30.0, num_classes) == pytest.approx(
        geometry.scl_lower_bound(num_classes, 256), abs=1e-14
    )
    # Hardening tilts a UCL anchor towards its own class (t = 0): a larger value at NC.
    assert grid.nc_value("hucl", 30.0, num_classes) > grid.nc_value("hucl", 5.0, num_classes)


@pytest.mark.parametrize(
    "setting,beta", [("scl", 0.0), ("hscl", 10.0), ("ucl", 0.0), ("hucl", 30.0)]
)
def test_reweighted_gaps_vanish_at_neural_collapse(monkeypatch, setting, beta):
    """A model whose training embeddings are a simplex ETF (equal classes) scores a gap
    of 0 on its own loss and on SCL's; a model off NC scores more."""
    c, per_class = 10, 7
    etf = np.asarray(geometry.simplex_etf(c, c - 1), np.float64)
    labels = np.repeat(np.arange(c), per_class)
    z = etf[labels]
    monkeypatch.setattr(sweep, "restore_representations", lambda config, w, s: (z, z, labels))
    config = copy.deepcopy(grid.base_config("tiny"))
    config.loss.name, config.loss.beta = setting, beta
    gaps = grid.reweighted_losses(config, "unused")
    assert gaps["eval/train/z/reweighted_gap"] == pytest.approx(0.0, abs=1e-6)
    assert gaps["eval/train/z/reweighted_scl_gap"] == pytest.approx(0.0, abs=1e-6)
    off = z + 0.3 * np.random.default_rng(0).normal(size=z.shape)
    off = off / np.linalg.norm(off, axis=1, keepdims=True)
    monkeypatch.setattr(sweep, "restore_representations", lambda config, w, s: (off, off, labels))
    worse = grid.reweighted_losses(config, "unused")
    assert worse["eval/train/z/reweighted_scl_gap"] > 0.01
    # With views as positives (or the SimCLR-form loss) the run's own loss has no value
    # at NC here: it gets the SCL yardstick alone, the same as with label positives.
    for positives, name in (("views", config.loss.name), ("labels", "simclr_form")):
        other = copy.deepcopy(config)
        other.positives, other.loss.name = positives, name
        got = grid.reweighted_losses(other, "unused")
        assert set(got) == {"train_class_counts", "eval/train/z/reweighted_scl_gap"}
        assert got["eval/train/z/reweighted_scl_gap"] == worse["eval/train/z/reweighted_scl_gap"]
    # Unnormalized, the losses have no minimum: the run gets its class counts only.
    config.normalization = "none"
    assert grid.reweighted_losses(config, "unused") == {"train_class_counts": [per_class] * c}


def _run(study, a, seed, **final):
    return {"study": study, "assignments": {**a, "seed": seed}, "seed": seed,
            "batch_size": 256, "seconds": 60.0 + seed, "final": final, "curve": [],
            "dc_spectrum": []}  # fmt: skip


def test_near_nc_needs_every_seed_and_every_metric_below_the_threshold():
    keys = section.NC_KEYS
    near = {k: 0.01 for k in keys}
    scl, hscl = {"loss.name": "scl", "loss.beta": 0.0}, {"loss.name": "hscl", "loss.beta": 10.0}
    results = {"runs": [
        _run("supervised", scl, 0, **near), _run("supervised", scl, 1, **near),
        _run("supervised", hscl, 0, **near),
        _run("supervised", hscl, 1, **{**near, keys[-1]: section.NEAR_NC * 1.5}),
    ]}  # fmt: skip
    assert section._near_nc(results, "supervised") == {"SCL": True, "HSCL β = 10": False}


def test_the_variants_verdicts_compare_each_variant_with_its_reference():
    """HN §5.5 and §5.7: the sphere against its SCL and against the unit ball, the
    unnormalized runs' NC and DC against the unit ball, polynomial hardening against SCL."""
    nc = {k: 0.01 for k in section.NC_KEYS}
    dc = {"nc/train/z/dc_rank": 9.0, "nc/train/z/dc_sv_min": 0.5}
    far = {**{k: 2.0 for k in section.NC_KEYS}, "nc/train/z/dc_rank": 5.0,
           "nc/train/z/dc_sv_min": 1e-4}  # fmt: skip
    scl, hscl = {"loss.name": "scl", "loss.beta": 0.0}, {"loss.name": "hscl", "loss.beta": 10.0}
    runs = []
    for seed in (0, 1):
        good = {k: v * (1 + 0.01 * seed) for k, v in {**nc, **dc}.items()}
        bad = {k: v * (1 + 0.01 * seed) for k, v in far.items()}
        runs += [_run("supervised", scl, seed, **bad), _run("supervised", hscl, seed, **good)]
        for p in grid.variant_points():
            value = bad if p["loss.name"] == "scl" or p.get("normalization") == "none" else good
            runs.append(_run("variants", p, seed, **value))
    results = {"runs": runs}
    sup, var = section._study(results, "supervised"), section._study(results, "variants")
    assert [n for n, _ in var] == [
        "SCL, unit sphere", "HSCL β = 10, unit sphere", "SCL, no normalization",
        "HSCL β = 10, no normalization", "HSCL polynomial ε = 10",
    ]  # fmt: skip
    rows = section._variant_claims(results, sup, var)
    text = "\n".join(rows)
    sphere = [r for r in rows if "HSCL closer to NC than SCL [HN §5.5" in r]
    assert len(sphere) == 2 and all("(closer to NC (difference" in r for r in sphere)
    like = [r for r in rows if "behaves like the unit ball" in r]
    assert len(like) == 4 and all("no significant difference" in r for r in like)
    assert "HSCL β = 10, no normalization: not near NC" in text
    assert "SCL, no normalization: not near NC" in text
    poly = [r for r in rows if "polynomial hardening mitigates DC" in r]
    assert len(poly) == 2 and all("HSCL polynomial ε = 10: " in r and "(less DC" in r for r in poly)
    # The unnormalized HSCL has more DC than its unit-ball twin.
    hscl_none = [r for r in rows if "normalization can reduce the DC" in r]
    assert hscl_none and all("(more DC" in r for r in hscl_none)
    assert section._variant_claims(results, sup, []) == []


def test_the_batch_and_simclr_verdicts_score_what_the_paper_says():
    """HN §5.6: each small batch's NC, the larger β against the smaller at batch 32, the
    small batches against the size's batch; HN App. B.5: no NC with views, the two losses
    alike, UCL with views against UCL with label positives."""
    nc = {**{k: 0.01 for k in section.NC_KEYS}, "nc/train/z/dc_rank": 9.0}
    far = {**{k: 2.0 for k in section.NC_KEYS}, "nc/train/z/dc_rank": 5.0}
    hscl, ucl = {"loss.name": "hscl", "loss.beta": 10.0}, {"loss.name": "ucl", "loss.beta": 0.0}
    runs = []
    for seed in (0, 1):
        good = {k: v * (1 + 0.01 * seed) for k, v in nc.items()}
        bad = {k: v * (1 + 0.01 * seed) for k, v in far.items()}
        runs += [_run("supervised", hscl, seed, **good), _run("unsupervised", ucl, seed, **good)]
        for p in grid.batch_points():  # NC at 64 and at 32 for β = 30 only, as the paper
            near = p["batch_size"] == 64 or p["loss.beta"] == 30.0
            runs.append(_run("batch", p, seed, **(good if near else bad)))
        for p in grid.simclr_points():
            runs.append(_run("simclr", p, seed, **bad))
    results = {"runs": runs, "size_settings": grid.SIZES["cpu"]}
    sup, bat = section._study(results, "supervised"), section._study(results, "batch")
    assert [n for n, _ in bat] == [
        "HSCL β = 10, batch 64", "HSCL β = 10, batch 32", "HSCL β = 30, batch 32",
    ]  # fmt: skip
    rows = section._batch_claims(results, sup, bat)
    text = "\n".join(rows)
    assert "HSCL β = 10, batch 64: near NC" in text
    assert "HSCL β = 10, batch 32: not near NC" in text
    assert "HSCL β = 30, batch 32: near NC" in text
    larger = [r for r in rows if "at batch 32 the larger β is closer" in r]
    assert len(larger) == 2 and all("HSCL β = 30, batch 32: " in r for r in larger)
    assert all("(closer to NC (difference" in r for r in larger)
    smaller = [r for r in rows if "a smaller batch moves HSCL away" in r]
    assert len(smaller) == 2 and all("HSCL β = 10, batch 256: " in r for r in smaller)
    assert all(
        "HSCL β = 10, batch 32: " in r and "farther from NC (difference" in r for r in smaller
    )
    unsup, sim = section._study(results, "unsupervised"), section._study(results, "simclr")
    assert [n for n, _ in sim] == ["UCL", "SimCLR-form (eq. 42)"]
    rows = section._simclr_claims(results, unsup, sim)
    text = "\n".join(rows)
    assert "UCL: not near NC" in text and "SimCLR-form (eq. 42): not near NC" in text
    alike = [r for r in rows if "very similar to InfoNCE" in r]
    assert len(alike) == 2 and all("no significant difference" in r for r in alike)
    sampling = [r for r in rows if "the failure is the sampling's" in r]
    assert len(sampling) == 4 and all("farther from NC (difference" in r for r in sampling)
    assert "(within-class variance; UCL, label positives: " in text
    assert section._simclr_claims(results, unsup, []) == []
    assert section._batch_claims(results, sup, []) == []


def test_the_late_median_ignores_one_excursion_and_the_first_half():
    key = "nc/train/z/zero_sum"
    curve = [{"epoch": e, key: v} for e, v in ((50, 9.0), (100, 8.0), (150, 0.3), (200, 0.2),
                                                 (250, 0.4), (300, 5.0))]  # fmt: skip
    late = section._late_medians(curve)
    assert late == {key + section.LATE: 0.4}  # epochs 200, 250, 300: after half of 300
    run = _run("batch", {"loss.name": "hscl", "loss.beta": 10.0}, 0, **{key: 5.0})
    (scored,) = section._final_hardness([{**run, "curve": curve}])
    assert scored["final"][key] == 5.0 and scored["final"][key + section.LATE] == 0.4
    assert section._late_medians([]) == {}


def test_the_committed_section_records_its_wall_time():
    """The section's wall time per study comes from the runs' seconds in the results."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(section.results_path(section.DEFAULT_SIZE, root)) as fh:
        results = json.load(fh)
    block = section.render(results)
    for study in grid.STUDIES:
        secs = [r["seconds"] for r in results["runs"] if r["study"] == study]
        if secs:
            assert f"`{study}` {len(secs)} runs in {common.duration(sum(secs))}" in block
    slower = copy.deepcopy(results)
    slower["runs"][0]["seconds"] += 3600
    assert section.render(slower) != block
    assert math.isfinite(results["theorem2_bound"])


@pytest.mark.slow
def test_tiny_section_through_the_command_line(tmp_path, fashion_mnist_files):
    """The supervised, warm-start and variants studies at size tiny on the real files: the
    results file, then the block, which --write_doc renders again from the file alone."""
    doc, out = tmp_path / "DOC.md", tmp_path / "results" / "conv.json"
    args = [section.NAME, "--size=tiny", f"--root={tmp_path / 'runs'}", f"--results={out}"]
    studies = "--studies=supervised,warm_start,variants,batch,simclr"
    assert reproduce_main([*args, studies, f"--doc={doc}"]) == 0
    results = json.loads(out.read_text())
    assert len(results["runs"]) == 36 and len(results["missing"]) == 6
    for r in results["runs"]:
        unnormalized = r["assignments"].get("normalization") == "none"
        assert unnormalized != ("eval/train/z/reweighted_scl_gap" in r["final"]), r["assignments"]
        own = not unnormalized and r["study"] != "simclr"
        assert own == ("eval/train/z/reweighted_gap" in r["final"]), r["assignments"]
        assert "nc/test/z/zero_sum" in r["final"] and r["curve"]
        assert "train/hn_ess_fraction" in r["curve"][-1]
    block = common.section_block(section.NAME, str(doc))
    assert block == section.render(results) and "| HSCL β = 10 | 2 |" in block
    assert "| HSCL polynomial ε = 10 | 2 |" in block and "| SCL, no normalization | 2 |" in block
    assert "| HSCL β = 30, batch 32 | 2 |" in block and "| SimCLR-form (eq. 42) | 2 |" in block
    assert "6 runs are missing" in block
    assert reproduce_main([*args, f"--doc={doc}", "--write_doc"]) == 0
    assert common.section_block(section.NAME, str(doc)) == block
    for name in ("curves", "dc"):
        assert os.path.getsize(out.parent / f"{section.NAME}_tiny_{name}.png") > 1000
