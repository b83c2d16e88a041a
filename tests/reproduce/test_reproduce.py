"""The sweep's seed axis (mean ± std, error bars, validation before training), the
Fashion-MNIST reproduction (its plan and verdicts), the other generated sections (their
verdict rules), and every generated block of REPRODUCTION.md against its committed
results file (rendered from the file; nothing is trained)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hncl_jax import geometry, reproduce, sweep
from hncl_jax.configs import synthetic
from hncl_jax.reproduce import (
    clop_synthetic,
    clop_theory,
    common,
    fashion_mnist,
    fashion_mnist_grid,
    near_nc,
)
from hncl_jax.reproduce.__main__ import main as reproduce_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --------------------------------------------------------------------------- seed axis
def test_with_seeds_crosses_every_point():
    pts = sweep.with_seeds([{"loss.beta": 0.0}, {"loss.beta": 10.0}], 3, base_seed=5)
    assert pts == [{"loss.beta": b, "seed": s} for b in (0.0, 10.0) for s in (5, 6, 7)]
    assert sweep.with_seeds([{"a": 1}], None) == [{"a": 1}]
    assert sweep.with_seeds([{"a": 1}], [3, 9]) == [{"a": 1, "seed": 3}, {"a": 1, "seed": 9}]
    with pytest.raises(ValueError, match="already sets 'seed'"):
        sweep.with_seeds([{"seed": 1}], 2)
    with pytest.raises(ValueError, match="distinct"):
        sweep.with_seeds([{}], [1, 1])


def test_plan_grid_with_points_and_seeds_names_each_run(tmp_path):
    c = synthetic.get_config()
    plan = sweep.plan_grid(
        c, {}, str(tmp_path), points=[{"loss.name": "scl"}, {"loss.name": "hscl"}], seeds=2
    )
    names = [os.path.basename(w) for _, _, w in plan]
    assert names == [
        "loss.name=scl,seed=0",
        "loss.name=scl,seed=1",
        "loss.name=hscl,seed=0",
        "loss.name=hscl,seed=1",
    ]
    assert [cfg.seed for _, cfg, _ in plan] == [0, 1, 0, 1]


def test_aggregate_gives_mean_and_sample_std():
    rows = [
        {"run": "a", "loss.beta": 0.0, "seed": 0, "eval/acc": 0.5, "note": "x"},
        {"run": "b", "loss.beta": 0.0, "seed": 1, "eval/acc": 0.7, "note": "x"},
        {"run": "c", "loss.beta": 10.0, "seed": 0, "eval/acc": 0.9, "note": "y"},
    ]
    out = sweep.aggregate(rows)
    assert [r["loss.beta"] for r in out] == [0.0, 10.0] and [r["n"] for r in out] == [2, 1]
    assert out[0]["eval/acc"] == pytest.approx(0.6)
    assert out[0]["eval/acc_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert out[1]["eval/acc_std"] == 0.0
    table = sweep.markdown_table(out, ["loss.beta", "n", "eval/acc"], digits=3)
    assert "0.600 ± 0.141" in table and "0.900 ± 0.000" in table


def test_plot_sweep_draws_error_bars(tmp_path):
    rows = sweep.aggregate(
        [
            {"loss.beta": b, "seed": s, "eval/acc": 0.5 + 0.01 * b + 0.01 * s}
            for b in (0.0, 5.0)
            for s in (0, 1)
        ]
    )
    path = sweep.plot_sweep(rows, "loss.beta", "eval/acc", str(tmp_path / "p.png"))
    assert os.path.getsize(path) > 1000
    with pytest.raises(ValueError, match="no row has both"):
        sweep.plot_sweep(rows, "loss.beta", "eval/missing", str(tmp_path / "q.png"))


def test_bad_grid_value_fails_before_any_run_trains(tmp_path):
    trained = []
    with pytest.raises(ValueError, match=r"grid point loss.k=0 .*--grid") as e:
        sweep.run_grid(
            synthetic.get_config(),
            {"loss.k": [16, 0]},
            str(tmp_path),
            train_fn=lambda c, w: trained.append(w),
        )
    assert trained == [] and "loss.k" in str(e.value)


def _sweep_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "hncl_jax.sweep", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        timeout=600,
    )


def test_sweep_cli_help_and_missing_root():
    proc = _sweep_cli("--help")
    assert proc.returncode == 0 and "--seeds" in proc.stdout and "--root" in proc.stdout
    proc = _sweep_cli("--config=configs/synthetic.py:smoke")
    assert proc.returncode == 2
    assert "--root=<folder> is required" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_sweep_cli_seed_axis_writes_mean_std_and_plots(tmp_path):
    root = tmp_path / "sw"
    proc = _sweep_cli(
        "--config=configs/synthetic.py:smoke",
        f"--root={root}",
        "--grid=loss.beta=0,10",
        "--seeds=2",
        "--plot=loss.beta",
        "--columns=eval/test/z/ncm_acc",
        "--config.plots=False",
        "--config.linear_probe=off",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run 4/4" in proc.stdout and " ± " in proc.stdout
    import csv

    rows = list(csv.DictReader(open(root / sweep.MEAN_STD_FILE)))
    assert [r["n"] for r in rows] == ["2", "2"] and "eval/test/z/ncm_acc_std" in rows[0]
    assert (root / "plot_eval_test_z_ncm_acc_vs_loss.beta.png").exists()
    # Rerunning skips the four finished runs.
    again = _sweep_cli(
        "--config=configs/synthetic.py:smoke",
        f"--root={root}",
        "--grid=loss.beta=0,10",
        "--seeds=2",
        "--config.plots=False",
        "--config.linear_probe=off",
    )
    assert again.returncode == 0 and again.stdout.count("finished already") == 4


# --------------------------------------------------------------------------- the plan
def test_the_cpu_grid_plan(tmp_path):
    root = str(tmp_path)
    counts = {}
    for study in fashion_mnist_grid.STUDIES:
        counts[study] = sum(
            len(sweep.plan_grid(b, {}, r, points=p, seeds=s))
            for b, p, r, s in fashion_mnist_grid.study_plan(study, "cpu", root)
        )
    assert counts == {"hn_supervised": 15, "hn_unsupervised": 15, "hn_warm_start": 9, "clop": 48}
    clop_base, clop_points, _, _ = fashion_mnist_grid.study_plan("clop", "cpu", root)[0]
    nt_xent = [p for p in clop_points if p["loss.name"] == "nt_xent"]
    assert {p["label_fraction"] for p in nt_xent} == {0.1, 0.5, 1.0}
    batches = {p.get("batch_size", clop_base.batch_size) for p in nt_xent}
    assert batches == {32, 64, 128, 256, 512}
    assert all(sum(p.get("clop.weight") == w for p in clop_points) == 8 for w in (0.0, 1.0))
    warm = fashion_mnist_grid.study_plan("hn_warm_start", "cpu", root)
    for seed, (base, points, _, _) in enumerate(warm):
        assert base.seed == seed
        assert base.init_from.endswith(f"hn_supervised/loss.name=hscl,loss.beta=10,seed={seed}")
        assert [p["loss.name"] for p in points] == ["scl", "hscl", "hucl"]
    sup_base, _, _, _ = fashion_mnist_grid.study_plan("hn_supervised", "cpu", root)[0]
    assert sup_base.dataset == "fashion_mnist" and sup_base.model == "small_cnn"
    unsup = fashion_mnist_grid.study_plan("hn_unsupervised", "cpu", root)[0][1]
    assert all(p["positives"] == "views" for p in unsup)


def test_warm_start_without_its_source_says_what_to_run(tmp_path):
    # With its source in the plan, a warm start is checked without it (trained first, or
    # on SLURM a job dependency); alone, the missing source is refused before any run.
    runs = fashion_mnist_grid.plan(str(tmp_path), size="tiny")
    sweep.check_plan(runs, num_devices=1)
    with pytest.raises(ValueError, match="init_from=.*does not exist"):
        fashion_mnist_grid.run(
            "fashion_mnist", str(tmp_path), size="tiny", studies=["hn_warm_start"]
        )
    assert not any(os.scandir(tmp_path))
    with pytest.raises(ValueError, match="unknown --studies"):
        fashion_mnist_grid.check_args("fashion_mnist", "cpu", ["fig9"])


# --------------------------------------------------------------------------- the report
def _fake_results(probe_gain: float) -> dict:
    """Results of a fabricated grid: HSCL's probe accuracy exceeds SCL's by probe_gain."""
    runs = []
    for seed in range(3):
        noise = 0.001 * seed
        for name, beta in (("scl", 0.0), ("hscl", 10.0)):
            acc = 0.8 + noise + (probe_gain if name == "hscl" else 0.0)
            final = {
                "eval/test/z/probe_top1": acc,
                "eval/test/z/ncm_acc": 0.8 + noise,
                "nc/train/z/zero_sum": 0.5 - noise,
                "nc/train/z/equal_inner_product": 0.1,
                "train/epoch_loss": 0.4,
                "train/loss_gap": 0.1 + noise,
            }
            runs.append(
                {
                    "study": "hn_supervised",
                    "assignments": {"loss.name": name, "loss.beta": beta, "seed": seed},
                    "seed": seed,
                    "batch_size": 256,
                    "seconds": 10.0,
                    "final": final,
                    "curve": [{"epoch": 2, **final}],
                    "dc_spectrum": [],
                }
            )
        for w in (0.0, 1.0):
            runs.append(
                {
                    "study": "clop",
                    "assignments": {
                        "loss.name": "nt_xent",
                        "label_fraction": 0.1,
                        "clop.weight": w,
                        "seed": seed,
                    },
                    "seed": seed,
                    "batch_size": 256,
                    "seconds": 10.0,
                    "final": {"eval/test/z/knn5_acc": 0.6 + 0.2 * w + noise},
                    "curve": [],
                    "dc_spectrum": [],
                }
            )
    return {
        "dataset": "fashion_mnist",
        "size": "cpu",
        "size_settings": fashion_mnist.SIZES["cpu"],
        "machine": {"cpu_count": 2, "processor": "x86_64", "device": "cpu", "platform": "cpu"},
        "versions": {"jax": "0.0", "python": "3.11"},
        "theorem2_bound": 0.2846,
        "command": "python -m hncl_jax.reproduce fashion_mnist --size=cpu",
        "written": "2026-01-01",
        "runs": runs,
        "missing": [{"study": "hn_unsupervised", "assignments": {}}],
    }


def test_verdicts_follow_the_numbers():
    up = fashion_mnist.render(_fake_results(0.05))
    assert "HSCL β = 10: higher (difference +0.05" in up
    same = fashion_mnist.render(_fake_results(0.0))
    assert "HSCL β = 10: no significant difference (difference +0, Welch p = 1)" in same
    down = fashion_mnist.render(_fake_results(-0.05))
    assert "HSCL β = 10: lower (difference -0.05" in down
    assert "higher (Welch p < 0.05) in 1 of 1 pairs" in up
    assert "independent baselines" not in up  # one pair: no baseline is shared
    assert "**1 runs of the grid are missing**" in up
    assert "Not run: no finished run" in up  # the unsupervised tables
    assert "0.801 ± 0.001" in up  # SCL's probe accuracy over the three seeds


def test_write_doc_replaces_only_its_section(tmp_path):
    doc = tmp_path / "DOC.md"
    doc.write_text("# Title\n\nhand-written text\n")
    results = _fake_results(0.05)
    common.write_section(fashion_mnist, results, str(doc))
    common.write_section(fashion_mnist, results, str(doc))  # idempotent
    text = doc.read_text()
    begin, _ = common.markers("fashion_mnist")
    assert text.startswith("# Title\n\nhand-written text\n") and text.count(begin) == 1
    assert common.section_block("fashion_mnist", str(doc)) == fashion_mnist.render(results)


def test_reproduction_md_agrees_with_the_committed_results():
    """REPRODUCTION.md's Fashion-MNIST section is what the committed results file gives:
    regenerate it with `python -m hncl_jax.reproduce fashion_mnist --write_doc`."""
    path = fashion_mnist.results_path("cpu", ROOT)
    with open(path) as fh:
        results = json.load(fh)
    doc = os.path.join(ROOT, common.DOC)
    assert common.section_block("fashion_mnist", doc) == fashion_mnist.render(results)
    for name in ("hn", "dc"):
        assert os.path.exists(os.path.join(ROOT, "results", f"fashion_mnist_cpu_{name}.png"))
    assert len(results["runs"]) >= 3 * 5  # at least the supervised study over 3 seeds
    # CLOP reports top-1 and top-5 of the linear probe for every experiment (§5).
    assert "| probe top-5 (z) | probe top-5 (h) |" in fashion_mnist.render(results)


@pytest.mark.slow
def test_tiny_reproduction_end_to_end(tmp_path, monkeypatch, fashion_mnist_files):
    """The tiny grid's supervised study on the real files, then collect and render."""
    monkeypatch.setattr(fashion_mnist_grid, "BETAS", (10.0,))
    root = str(tmp_path / "runs")
    rows = fashion_mnist_grid.run("fashion_mnist", root, size="tiny", studies=["hn_supervised"])
    assert len(rows["hn_supervised"]) == 4  # SCL and HSCL β = 10, two seeds each
    results = fashion_mnist_grid.collect("fashion_mnist", root, "tiny")
    assert len(results["runs"]) == 4 and results["missing"]
    text = fashion_mnist.render(results)
    assert "| SCL | 2 |" in text and "| HSCL β = 10 | 2 |" in text
    paths = fashion_mnist.figures(results, str(tmp_path))
    assert all(os.path.getsize(p) > 1000 for p in paths)


# --------------------------------------------------------------------------- the other sections
def _committed(section: str) -> dict:
    module = reproduce.section(section)
    with open(module.results_path(module.DEFAULT_SIZE, ROOT)) as fh:
        return json.load(fh)


@pytest.mark.parametrize("section", reproduce.SECTIONS)
def test_every_generated_section_agrees_with_its_results_file(section):
    """Each generated block of REPRODUCTION.md is what its committed results file gives
    (regenerate with `python -m hncl_jax.reproduce <section> --write_doc`)."""
    results = _committed(section)
    doc = os.path.join(ROOT, common.DOC)
    assert common.section_block(section, doc) == reproduce.section(section).render(results)


@pytest.mark.parametrize(
    "section", [s for s in reproduce.SECTIONS if not s.startswith("fashion_mnist")]
)
def test_results_files_record_how_they_were_made(section):
    results = _committed(section)
    assert results["command"] == f"python -m hncl_jax.reproduce {section}"
    assert results["section"] == section and results["size"] == "full"
    assert {"jax", "python"} <= set(results["versions"])
    assert {"cpu_count", "platform"} <= set(results["machine"])
    assert results["seconds"] > 0 and results["cpu_seconds"] > 0
    # The measured wall time reaches the document from the file: another value, another block.
    render = reproduce.section(section).render
    block = render(results)
    assert common.duration(results["seconds"]) in block
    changed = {**results, "seconds": results["seconds"] * 7 + 1000}
    assert render(changed) != block


def test_write_section_replaces_only_its_block(tmp_path):
    doc = tmp_path / "DOC.md"
    begin, end = common.markers("clop_theory")
    doc.write_text(f"# Title\n\n{begin}\nSTALE-BLOCK\n{end}\n\ntail\n")
    results = _committed("clop_theory")
    common.write_section(clop_theory, results, str(doc))
    common.write_section(clop_theory, results, str(doc))  # idempotent
    text = doc.read_text()
    assert text.startswith("# Title\n\n") and text.endswith("\n\ntail\n") and "STALE" not in text
    assert common.section_block("clop_theory", str(doc)) == clop_theory.render(results)
    with pytest.raises(ValueError, match="no generated theory section"):
        common.section_block("theory", str(doc))


def test_every_section_module_has_the_section_names():
    """Each registered section is a module with the names the command line uses, its
    NAME its registry name; an unknown name is refused."""
    for name in reproduce.SECTIONS:
        m = reproduce.section(name)
        assert m.NAME == name and m.DEFAULT_SIZE in m.SIZES
        assert callable(m.compute) and callable(m.render)
        assert m.results_path(m.DEFAULT_SIZE).startswith(os.path.join("results", name))
    with pytest.raises(ValueError, match="unknown section 'fig9'"):
        reproduce.section("fig9")


def test_command_line_checks_size_and_section_options_before_computing(tmp_path, capsys):
    doc, root = tmp_path / "DOC.md", tmp_path / "runs"
    for args, message in (
        (["theory", "--size=cpu"], "--size='cpu': theory has sizes ('full', 'tiny')."),
        (["fashion_mnist", "--size=huge"], "fashion_mnist has sizes ('tiny', 'cpu', 'full')."),
        (["fashion_mnist", "--launcher=cloud"], "--launcher='cloud' is not a launcher"),
        (
            ["fashion_mnist", "--launcher=slurm", "--slurm=time_min=x"],
            "time_min='x' must be an int",
        ),
        (["fashion_mnist", "--wait"], "--slurm and --wait are for --launcher=slurm"),
        (["fashion_mnist", "--studies=fig9"], "unknown --studies ['fig9']"),
    ):
        with pytest.raises(SystemExit) as e:
            reproduce_main([*args, f"--root={root}", f"--doc={doc}"])
        assert e.value.code == 2 and message in capsys.readouterr().err, args
    assert not doc.exists() and not root.exists()


def test_value_verdicts_follow_the_printed_digits():
    assert common.value_verdict(0.201413, "0.2014") == "match"
    assert common.value_verdict(0.310555, "0.3105").startswith("match if truncated")
    assert "0.3106" in common.value_verdict(0.310555, "0.3105")
    assert common.value_verdict(0.393332, "0.3935").startswith("differs")
    assert common.value_verdict(0.3931, "0.3935", se=0.0003) == "match"


def test_the_clop_bound_holds_but_is_not_tight():
    bis = [
        {"k": 3, "largest_safe_lr": 4.002, "printed_bound": 2.2},
        {"k": 30, "largest_safe_lr": 2.0718, "printed_bound": 2.0333},
    ]
    assert clop_theory.bound_verdict(bis) == (
        "the bound holds but is not tight: 4.00 against the bound 2.20 at k = 3"
    )
    assert clop_theory.bound_verdict(bis[1:]) == "the bound holds and is tight"
    low = [{"k": 3, "largest_safe_lr": 2.0, "printed_bound": 2.2}]
    assert clop_theory.bound_verdict(low).startswith("violated")
    # The corrected bound 2(k-1)/(k-2) is tight where the printed one is not.
    corrected = clop_theory.with_corrected(bis)
    assert [b["corrected_bound"] for b in corrected] == pytest.approx([4.0, 58 / 28])
    assert clop_theory.bound_verdict(corrected, "corrected_bound") == (
        "the bound holds and is tight"
    )


def test_clop_theory_rows_compare_both_bounds():
    """The committed block judges the measured threshold against the printed and the
    corrected bound, and names the real cause of the printed bound's looseness."""
    results = _committed("clop_theory")
    for b in results["values"]["bisection"]:  # the stored threshold is the corrected bound
        assert b["threshold"] == pytest.approx(geometry.clop_lr_bound_corrected(b["k"]))
    block = clop_theory.render(results)
    assert "printed bound: the bound holds but is not tight" in block
    assert "corrected bound: the bound holds and is tight" in block
    assert "1 + η²/(k−1)" in block and "eq. 3 prints the objective with a minus sign" in block
    assert "not because the proof looks at one step of random vectors" in block


def test_near_nc_rows_several_times_the_paper_are_not_a_match():
    hucl5 = {"setting": "HUCL β = 5", "zero_sum": 0.0307, "equal_inner_product": 0.0195}
    verdict = near_nc.row_verdict(hucl5)
    assert verdict.startswith("differs (farther from NC)") and "×7.7" in verdict
    assert "×9.8" in verdict
    ucl = {"setting": "UCL", "zero_sum": 0.0053, "equal_inner_product": 0.0033}
    assert near_nc.row_verdict(ucl) == "match"
    # The stay-at-NC rule sorts the paper's own rows as the paper does.
    for name, (zs, _, eip) in near_nc.PAPER.items():
        row = {"setting": name, "zero_sum": zs, "equal_inner_product": eip}
        assert near_nc.stays(row) == (name not in ("HUCL β = 10", "HUCL β = 30")), name


def test_near_nc_claims_never_say_match_for_rows_off_the_paper():
    results = _committed("near_nc")
    rows = [dict(r) for r in results["rows"]]
    for r in rows:  # every row at the paper's values but HUCL β = 5, several times off
        zs, un, eip = near_nc.PAPER[r["setting"]]
        r.update(zero_sum=zs, unit_norm=un, equal_inner_product=eip)
        if r["setting"] == "HUCL β = 5":
            r.update(zero_sum=8 * zs, equal_inner_product=10 * eip)
    text = near_nc.render({**results, "rows": rows})
    small = next(ln for ln in text.splitlines() if ln.startswith("| UCL and HUCL at small β"))
    assert "| partly" in small and "not: HUCL β = 5" in small


def _clop_runs(
    without: float, with_: float, setting: dict, loss: str = "nt_xent", cap: float = 1.0
) -> list:
    return [
        {
            "loss": loss,
            "clop_weight": w,
            "seed": seed,
            "setting": setting,
            "knn_test": (with_ if w else without) / 100 + 0.001 * seed,
            "cap_test": cap,
        }
        for w in (0.0, 1.0)
        for seed in (0, 1)
    ]


def test_clop_setting_choice_and_gap_verdicts():
    near = {"directions": "axes", "radius": 30.0, "noise_variance": None, "noise_std": 0.05}
    far = {"directions": "random", "radius": 3.0, "noise_variance": 0.05, "noise_std": None}
    runs = _clop_runs(70.0, 99.0, {**near, "label_fraction": 0.1})
    runs += _clop_runs(88.0, 88.5, {**far, "label_fraction": 0.1})
    runs += _clop_runs(68.9, 99.9, {**far, "label_fraction": 0.5})  # not the paper's labels
    capped = {**near, "directions": "planar"}  # closest, but its data cannot hold 99.89
    runs += _clop_runs(68.9, 99.6, {**capped, "label_fraction": 0.1}, cap=0.997)
    groups = clop_synthetic.setting_groups(runs)
    assert len(groups) == 4
    assert clop_synthetic.choose_setting(groups) == {**near, "label_fraction": 0.1}
    assert clop_synthetic.choose_setting(groups[3:]) == {**capped, "label_fraction": 0.1}
    by = {json.dumps(g["setting"], sort_keys=True): g for g in groups}
    g_near = by[json.dumps({**near, "label_fraction": 0.1}, sort_keys=True)]
    g_far = by[json.dumps({**far, "label_fraction": 0.1}, sort_keys=True)]
    assert g_near["gain"] == pytest.approx(29.0)
    assert clop_synthetic.gap_verdict(g_near, "nt_xent").startswith("gap reproduced")
    assert clop_synthetic.gap_verdict(g_far, "nt_xent").startswith("smaller gap")
    assert clop_synthetic.paper_distance(g_far) == pytest.approx(19.09 + 11.39, abs=0.2)


def test_clop_synthetic_config_default_is_the_chosen_setting():
    from hncl_jax.configs import clop_synthetic as config

    chosen = _committed("clop_synthetic")["chosen"]
    c = config.get_config()
    assert {f: c.dataset_kwargs.get(f) for f in clop_synthetic.GENERATOR_FIELDS} == {
        f: chosen.get(f) for f in clop_synthetic.GENERATOR_FIELDS
    }
    assert c.label_fraction == chosen["label_fraction"]


@pytest.mark.slow
def test_tiny_sections_end_to_end(tmp_path):
    """Two sections at size tiny through the command line (one computes, one trains):
    the results file, then the block, which --write_doc renders again from the file."""
    doc = tmp_path / "DOC.md"
    for section in ("theory", "clop_synthetic"):
        out = tmp_path / f"{section}.json"
        args = [section, "--size=tiny", f"--root={tmp_path / section}", f"--results={out}"]
        assert reproduce_main([*args, f"--doc={doc}"]) == 0
        results = json.loads(out.read_text())
        assert results["size"] == "tiny" and results["seconds"] > 0
        block = common.section_block(section, str(doc))
        assert block == reproduce.section(section).render(results)
        assert reproduce_main([*args, f"--doc={doc}", "--write_doc"]) == 0
        assert common.section_block(section, str(doc)) == block
