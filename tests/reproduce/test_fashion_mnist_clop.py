"""The `fashion_mnist_clop` section: its recipe (LARS, SupCon, every label), its verdict
rows, and the section through the command line at size tiny."""

from __future__ import annotations

import copy
import inspect
import json
import os

import optax
import pytest

from hncl_jax.reproduce import common
from hncl_jax.reproduce import fashion_mnist_clop as section
from hncl_jax.reproduce.__main__ import main as reproduce_main


def test_the_cpu_plan_is_the_papers_recipe(tmp_path):
    """SupCon on every label under LARS; the learning-rate sweep with and without CLOP, the
    λ ablation and the simplex prototypes at the base rate 0.3·B/256; the batch sizes at
    their own 0.3·B/256 and the same number of epochs."""
    runs = section.plan(str(tmp_path), size="cpu")
    assert len(runs) == 2 * (3 * 2 + 3 + 2 + 2)
    runs, batches = runs[:22], runs[22:]
    for _, c, workdir in runs + batches:
        assert c.loss.name == "supcon" and c.label_fraction == 1.0, workdir
        assert c.optimizer.name == "lars" and c.optimizer.momentum == 0.9
        assert c.positives == "views" and c.normalization == "unit_sphere"
        assert c.embed_dim == 16 and c.num_epochs == 6
        assert c.dataset_kwargs.max_examples == 8000
    assert {c.batch_size for _, c, _ in runs} == {256}
    got = [(c.batch_size, float(c.optimizer.learning_rate), float(c.clop.weight))
           for _, c, _ in batches[::2]]  # fmt: skip
    assert got == [
        (32, 0.0375, 0.0), (32, 0.0375, 1.0),
    ]  # fmt: skip
    assert section.base_learning_rate("cpu") == pytest.approx(0.3)
    # The section's note on LARS states the trust coefficient the trainer's "lars" uses.
    default = inspect.signature(optax.lars).parameters["trust_coefficient"].default
    assert section.TRUST_COEFFICIENT == default
    settings = [
        (float(c.optimizer.learning_rate), float(c.clop.weight), c.clop.prototypes)
        for _, c, _ in runs[::2]
    ]
    assert settings == [
        (0.3, 0.0, "orthonormal"), (0.3, 1.0, "orthonormal"), (3.0, 0.0, "orthonormal"),
        (3.0, 1.0, "orthonormal"), (10.0, 0.0, "orthonormal"), (10.0, 1.0, "orthonormal"),
        (0.3, 0.1, "orthonormal"), (0.3, 0.5, "orthonormal"), (0.3, 1.5, "orthonormal"),
        (0.3, 1.0, "simplex"), (10.0, 1.0, "simplex"),
    ]  # fmt: skip


def test_bad_studies_and_sizes_fail_before_training(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown --studies \['fig7'\]"):
        section.compute(str(tmp_path), "tiny", studies=["fig7"])
    bad = copy.deepcopy(section.SIZES)
    bad["tiny"]["learning_rates"] = (1.0, 10.0)
    monkeypatch.setattr(section, "SIZES", bad)
    with pytest.raises(ValueError, match="must include the base rate"):
        section.compute(str(tmp_path), "tiny")
    bad["tiny"]["learning_rates"] = (0.075, 10.0)
    bad["tiny"]["batches"] = (32, 64)  # 64 is the size's batch: the lr study's point
    with pytest.raises(ValueError, match=r"repeat its batch 64"):
        section.compute(str(tmp_path), "tiny", studies=["batch"])
    assert not os.listdir(tmp_path)


def _run(study, lr, w, seed, proto=None, batch=None, **final):
    a = {"optimizer.learning_rate": lr, "clop.weight": w, "seed": seed}
    if proto:
        a["clop.prototypes"] = proto
    if batch:
        a["batch_size"] = batch
    return {"study": study, "assignments": a, "seed": seed, "batch_size": 256,
            "seconds": 30.0, "final": final, "curve": [], "dc_spectrum": []}  # fmt: skip


def _metrics(top1, rankme, seed):
    j = 0.004 * seed
    return {"eval/test/z/probe_top1": top1 + j, "eval/test/z/probe_top5": top1 + 0.1 + j,
            "nc/train/z/rankme": rankme + 10 * j, "nc/train/z/dc_rank": 9,
            "nc/train/z/dc_sv_min": 0.1}  # fmt: skip


def test_the_verdicts_score_collapse_clop_lambda_and_prototypes():
    """A baseline that collapses at lr 10 while CLOP holds; λ makes no difference; the
    simplex does worse: each claim's row says so, from the results alone."""
    runs = []
    for seed in (0, 1):
        runs += [
            _run("learning_rate", 0.3, 0.0, seed, **_metrics(0.80, 12.0, seed)),
            _run("learning_rate", 0.3, 1.0, seed, **_metrics(0.85, 9.0, seed)),
            _run("learning_rate", 10.0, 0.0, seed, **_metrics(0.20, 1.0, seed)),
            _run("learning_rate", 10.0, 1.0, seed, **_metrics(0.84, 9.0, seed)),
            _run("lambda", 0.3, 0.5, seed, **_metrics(0.85, 9.0, seed)),
            _run("prototypes", 0.3, 1.0, seed, "simplex", **_metrics(0.75, 8.0, seed)),
        ]
    results = {"runs": runs, "base_learning_rate": 0.3, "size_settings": section.SIZES["cpu"]}
    rows = section.claims(results)
    assert not [r for r in rows if "batch" in r]  # the size's own batch alone: no Fig. 6 row
    collapse = [r for r in rows if "collapses SupCon [" in r]
    assert len(collapse) == 1 and collapse[0].count("(lower at the large rate") == 3
    holds = [r for r in rows if "collapses SupCon + CLOP" in r]
    assert len(holds) == 1 and "probe top-1 (z): 0.852 ± 0.003 → 0.842 ± 0.003" in holds[0]
    better = [r for r in rows if "CLOP outperforms the baseline" in r]
    assert len(better) == 2 and "(CLOP higher (difference" in better[1]
    (lam,) = [r for r in rows if "stable for λ" in r]
    assert "λ = 1 → λ = 0.5" in lam and lam.count("no difference (every seed") == 0
    assert lam.count("no significant difference") == 3
    (proto,) = [r for r in rows if "simplex ETF" in r]
    assert proto.count("(simplex lower (difference") == 3
    block = section.render(
        {**results, "size": "cpu", "size_settings": section.SIZES["cpu"], "missing": [],
         "machine": {"cpu_count": 2, "processor": "x86_64", "platform": "cpu"},
         "versions": {"jax": "0"}, "command": "python -m hncl_jax.reproduce fashion_mnist_clop"}
    )  # fmt: skip
    assert all(r in block for r in rows)
    assert "| SupCon + CLOP λ = 1 (simplex), lr 0.3 | 2 |" in block
    assert "`learning_rate` 8 runs in 4.0 min" in block


def test_the_batch_verdicts_compare_clop_at_each_batch_and_the_degradation():
    """CLOP Fig. 6: at each batch at lr 0.3·B/256, CLOP against SupCon; the smallest batch
    against the size's own (the learning-rate study's runs at the base rate)."""
    runs = []
    for seed in (0, 1):
        runs += [
            _run("learning_rate", 0.3, 0.0, seed, **_metrics(0.80, 12.0, seed)),
            _run("learning_rate", 0.3, 1.0, seed, **_metrics(0.82, 12.0, seed)),
            _run("learning_rate", 3.0, 0.0, seed, **_metrics(0.80, 12.0, seed)),
            _run("batch", 0.0375, 0.0, seed, batch=32, **_metrics(0.60, 8.0, seed)),
            _run("batch", 0.0375, 1.0, seed, batch=32, **_metrics(0.81, 12.0, seed)),
        ]
    results = {"runs": runs, "base_learning_rate": 0.3, "size_settings": section.SIZES["cpu"]}
    rows = section.claims(results)
    every = [r for r in rows if "at every batch size" in r]
    assert [r.split("(batch ")[1].split(",")[0] for r in every] == ["32", "256"]
    assert every[0].count("(CLOP higher (difference") == 3
    (sup,) = [r for r in rows if "degrades accuracy much less" in r and "(SupCon, batch" in r]
    assert "batch 256 → 32" in sup and sup.count("(lower at the small batch") == 3
    (clop,) = [r for r in rows if "degrades accuracy much less" in r and "CLOP, batch" in r]
    assert "probe top-1 (z): 0.822 ± 0.003 → 0.812 ± 0.003" in clop
    block = section.render(
        {**results, "size": "cpu", "missing": [],
         "machine": {"cpu_count": 2, "processor": "x86_64", "platform": "cpu"},
         "versions": {"jax": "0"}, "command": "python -m hncl_jax.reproduce fashion_mnist_clop"}
    )  # fmt: skip
    assert "| SupCon + CLOP λ = 1 (orthonormal), lr 0.0375, batch 32 | 2 |" in block
    assert "| SupCon, lr 0.3, batch 256 | 2 |" in block and all(r in block for r in rows)
    assert "Size `cpu`: 8000 training images" in block and "{" not in block
    assert "| SupCon, lr 3, batch 256 |" not in block  # not at the paper's rate


@pytest.mark.slow
def test_tiny_section_through_the_command_line(tmp_path, fashion_mnist_files):
    """Every study at size tiny on the real files, LARS at lr 10 included: the results
    file, the block, and --write_doc renders the same block from the file alone."""
    doc, out = tmp_path / "DOC.md", tmp_path / "results" / "clop.json"
    args = [section.NAME, "--size=tiny", f"--root={tmp_path / 'runs'}", f"--results={out}"]
    assert reproduce_main([*args, f"--doc={doc}"]) == 0
    results = json.loads(out.read_text())
    assert len(results["runs"]) == 2 * (2 * 2 + 1 + 2 + 2) and not results["missing"]
    for r in results["runs"]:
        assert "eval/test/z/probe_top5" in r["final"] and "nc/train/z/rankme" in r["final"]
    block = common.section_block(section.NAME, str(doc))
    assert block == section.render(results)
    assert "| SupCon + CLOP λ = 0.5 (orthonormal), lr 0.075 | 2 |" in block
    assert "CLOP outperforms the baseline at every learning rate" in block
    assert "| SupCon, lr 0.0375, batch 32 | 2 |" in block and "batch 64 → 32" in block
    assert reproduce_main([*args, f"--doc={doc}", "--write_doc"]) == 0
    assert common.section_block(section.NAME, str(doc)) == block
    for kind in ("lr", "batch"):
        assert os.path.getsize(out.parent / f"{section.NAME}_tiny_{kind}.png") > 1000
