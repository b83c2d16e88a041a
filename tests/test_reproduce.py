"""The sweep's seed axis (mean ± std, error bars, validation before training) and the
Fashion-MNIST reproduction: its plan, its verdicts, and REPRODUCTION.md against the
committed results file."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hncl_jax import reproduce, sweep
from hncl_jax.configs import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    for study in reproduce.STUDIES:
        counts[study] = sum(
            len(sweep.plan_grid(b, {}, r, points=p, seeds=s))
            for b, p, r, s in reproduce.study_plan(study, "cpu", root)
        )
    assert counts == {"hn_supervised": 15, "hn_unsupervised": 15, "hn_warm_start": 9, "clop": 18}
    warm = reproduce.study_plan("hn_warm_start", "cpu", root)
    for seed, (base, points, _, _) in enumerate(warm):
        assert base.seed == seed
        assert base.init_from.endswith(f"hn_supervised/loss.name=hscl,loss.beta=10,seed={seed}")
        assert [p["loss.name"] for p in points] == ["scl", "hscl", "hucl"]
    sup_base, _, _, _ = reproduce.study_plan("hn_supervised", "cpu", root)[0]
    assert sup_base.dataset == "fashion_mnist" and sup_base.model == "small_cnn"
    unsup = reproduce.study_plan("hn_unsupervised", "cpu", root)[0][1]
    assert all(p["positives"] == "views" for p in unsup)


def test_warm_start_without_its_source_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="hn_supervised study first"):
        reproduce._wait_for_source(str(tmp_path / "nope"), sharded=False)
    with pytest.raises(ValueError, match="--shard"):
        reproduce._check_args("fashion_mnist", "cpu", ["clop"], (2, 2))
    with pytest.raises(ValueError, match="unknown --studies"):
        reproduce._check_args("fashion_mnist", "cpu", ["fig9"], (0, 1))


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
        "size_settings": reproduce.SIZES["cpu"],
        "machine": {"cpu_count": 2, "processor": "x86_64", "device": "cpu", "platform": "cpu"},
        "versions": {"jax": "0.0", "python": "3.11"},
        "theorem2_bound": 0.2846,
        "command": "python -m hncl_jax.reproduce fashion_mnist --size=cpu",
        "written": "2026-01-01",
        "runs": runs,
        "missing": [{"study": "hn_unsupervised", "assignments": {}}],
    }


def test_verdicts_follow_the_numbers():
    up = reproduce.render(_fake_results(0.05))
    assert "HSCL β = 10: higher (difference +0.05" in up
    same = reproduce.render(_fake_results(0.0))
    assert "HSCL β = 10: within noise (difference +0" in same
    down = reproduce.render(_fake_results(-0.05))
    assert "HSCL β = 10: lower (difference -0.05" in down
    assert "higher beyond 2 s.e. in 1 of 1 pairs" in up
    assert "**1 runs of the grid are missing**" in up
    assert "Not run: no finished run" in up  # the unsupervised tables
    assert "0.801 ± 0.001" in up  # SCL's probe accuracy over the three seeds


def test_write_doc_replaces_only_its_section(tmp_path):
    doc = tmp_path / "DOC.md"
    doc.write_text("# Title\n\nhand-written text\n")
    results = _fake_results(0.05)
    reproduce.write_doc(results, str(doc))
    reproduce.write_doc(results, str(doc))  # idempotent
    text = doc.read_text()
    assert text.startswith("# Title\n\nhand-written text\n") and text.count(reproduce.BEGIN) == 1
    assert reproduce.generated_section(str(doc)) == reproduce.render(results)


def test_reproduction_md_agrees_with_the_committed_results():
    """REPRODUCTION.md's Fashion-MNIST section is what the committed results file gives:
    regenerate it with `python -m hncl_jax.reproduce fashion_mnist --write_doc`."""
    path = os.path.join(ROOT, reproduce.results_path("fashion_mnist", "cpu"))
    with open(path) as fh:
        results = json.load(fh)
    doc = os.path.join(ROOT, reproduce.DOC)
    assert reproduce.generated_section(doc) == reproduce.render(results)
    for name in ("hn", "dc"):
        assert os.path.exists(os.path.join(ROOT, "results", f"fashion_mnist_cpu_{name}.png"))
    assert len(results["runs"]) >= 3 * 5  # at least the supervised study over 3 seeds


@pytest.mark.slow
def test_tiny_reproduction_end_to_end(tmp_path, monkeypatch, fashion_mnist_files):
    """The tiny grid's supervised study on the real files, then collect and render."""
    monkeypatch.setattr(reproduce, "BETAS", (10.0,))
    root = str(tmp_path / "runs")
    rows = reproduce.run("fashion_mnist", root, size="tiny", studies=["hn_supervised"])
    assert len(rows["hn_supervised"]) == 4  # SCL and HSCL β = 10, two seeds each
    results = reproduce.collect("fashion_mnist", root, "tiny")
    assert len(results["runs"]) == 4 and results["missing"]
    text = reproduce.render(results)
    assert "| SCL | 2 |" in text and "| HSCL β = 10 | 2 |" in text
    paths = reproduce.plot(results, str(tmp_path))
    assert all(os.path.getsize(p) > 1000 for p in paths)
