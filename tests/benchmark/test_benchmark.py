"""The benchmark runs every mode on a tiny model and reports sane figures; its options
are checked before compiling; the PyTorch twins compute what the JAX side does (skipped
without torch); BENCHMARKS.md agrees with benchmarks/results/.

The runs of whole benchmark modes and the model-twin check are in the slow tier; the fast
tier keeps one loss-mode and one step-mode run (test_loss_cases_select_the_estimators, the
BENCHMARKS.md renderer).
"""

import importlib.util
import json
import pathlib

import pytest
from absl import flags

from hncl_jax import benchmark

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_step_mode_reports_throughput(capsys):
    (rec,) = benchmark.run(
        "--mode=step --model=tiny_cnn --batch=32 --num_classes=10 --k=16 --dtype=float32 "
        "--image_size=8 --steps=2 --warmup=1".split()
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == rec
    assert rec["images_per_sec"] > 0 and rec["step_ms"] > 0 and rec["tflops"] > 0
    assert rec["device"].startswith("cpu") and rec["peak_memory_gib"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("dispatch", [1, 2])
def test_epoch_mode_compiles_once(dispatch):
    (rec,) = benchmark.run(
        "--mode=epoch --model=tiny_cnn --batch=16 --num_classes=10 --k=8 --dtype=float32 "
        f"--image_size=8 --dataset_size=64 --positives=views --epochs=1 "
        f"--steps_per_dispatch={dispatch}".split()
    )
    assert rec["recompiles"] == 0
    assert rec["images_per_sec"] > 0 and rec["steps_per_dispatch"] == dispatch


@pytest.mark.slow
def test_loss_mode_covers_the_estimators_and_the_naive_loop():
    recs = benchmark.run("--mode=loss --loss_n=16 --loss_k=4 --loss_dim=8 --steps=2".split())
    kinds = {(r["estimator"], r["draw"]) for r in recs}
    assert kinds == {
        ("sampled", "anchor"),
        ("sampled", "pair"),
        ("reweighted", "-"),
        ("naive_loop", "anchor"),
    }
    assert all(r["ms"] > 0 for r in recs)


@pytest.mark.slow
def test_trivial_loss_and_profile_trace(tmp_path):
    (rec,) = benchmark.run(
        "--mode=step --model=tiny_mlp --batch=16 --num_classes=4 --dtype=float32 "
        f"--image_size=4 --steps=2 --warmup=1 --trivial_loss --profile_dir={tmp_path}".split()
    )
    assert rec["trivial_loss"] and rec["images_per_sec"] > 0
    traces = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert traces, "jax.profiler wrote no trace"


# ----------------------------------------------------------------- options and validation
def test_an_unknown_loss_is_rejected_listing_the_names():
    with pytest.raises(flags.IllegalFlagValueError, match=r"hscl"):
        benchmark.run(["--loss=hsc"])


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--mode=epoch", "--batch=16", "--dataset_size=8"], "dataset_size"),
        (["--mode=loss", "--loss_n=12,x"], "integers"),
        (["--mode=loss", "--loss=nt_xent"], "settings"),
        (["--mode=step", "--loss=vicreg"], "positives=views"),
        (["--mode=step", "--model=tiny_cnn", "--depth=2"], "option of small_cnn"),
    ],
)
def test_bad_combinations_fail_before_compiling(argv, match):
    with pytest.raises(benchmark.BenchmarkError, match=match):
        benchmark.run(argv)


@pytest.mark.slow
def test_epoch_mode_one_channel_float32_by_default_and_results_file(tmp_path):
    out = tmp_path / "results" / "cpu.jsonl"
    argv = (
        "--mode=epoch --model=tiny_cnn --batch=16 --num_classes=10 --k=8 --image_size=8 "
        f"--channels=1 --dataset_size=48 --epochs=1 --out={out}"
    ).split()
    (rec,) = benchmark.run(argv)
    assert rec["dtype"] == "float32"  # the CPU default
    assert rec["image_shape"] == [8, 8, 1] and rec["recompiles"] == 0
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["kind"] == "benchmark" and line["epoch_s"] == rec["epoch_s"]
    assert line["command"].startswith("python -m hncl_jax.benchmark --mode=epoch")
    assert "--out" not in line["command"]
    assert line["machine"]["cores"] >= 1 and "glibc_tunables" in line["machine"]


def test_loss_cases_select_the_estimators():
    recs = benchmark.run(
        "--mode=loss --loss_n=16 --loss_k=4 --loss_dim=8 --steps=1 --naive_max_n=0 "
        "--loss_cases=reweighted".split()
    )
    assert [(r["estimator"], r["draw"]) for r in recs] == [("reweighted", "-")]


# ----------------------------------------------------------------- PyTorch peer
def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--model=resnet50"], "twins"),
        (["--model=tiny_cnn", "--estimator=sampled"], "reweighted"),
        (["--model=tiny_cnn", "--positives=views"], "augmentation"),
        (["--model=tiny_cnn", "--dtype=bfloat16"], "float32"),
        (["--model=tiny_cnn", "--loss=ucl"], "losses"),
    ],
)
def test_peer_rejects_what_it_cannot_compare(argv, match):
    _torch()
    with pytest.raises(benchmark.BenchmarkError, match=match):
        benchmark.run(["--peer=torch", *argv])


@pytest.mark.slow
def test_torch_twins_compute_the_flax_models():
    torch = _torch()
    import jax
    import numpy as np

    from hncl_jax import models
    from hncl_jax.benchmark import torch_peer

    cases = {
        "tiny_cnn": [((4, 9, 9, 3), {})],
        "resnet18": [((2, 8, 8, 3), {"num_filters": 4, "head_hidden": 8})],
        "small_cnn": [
            ((2, 12, 12, 1), {"width": 4, "head_hidden": 8}),
            ((2, 12, 12, 1), {"width": 4, "depth": 2, "head_hidden": 8}),
        ],
    }
    for name, (shape, kw) in ((n, case) for n in torch_peer.MODELS for case in cases[n]):
        x = np.random.default_rng(0).random(shape, np.float32)
        m = models.create_model(name, embed_dim=3, **kw)
        v = m.init(jax.random.key(0), x, train=False)
        (_, f), _ = m.apply(v, x, train=True, mutable=["batch_stats"])
        twin = torch_peer.create_model(name, embed_dim=3, in_channels=shape[-1], **kw)
        torch_peer.load_flax(twin, v["params"], v["batch_stats"])
        assert torch_peer.num_params(twin) == models.num_params(v), name
        twin.train()
        ft = twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
        np.testing.assert_allclose(ft, np.asarray(f), rtol=1e-4, atol=1e-5, err_msg=name)
    wrong = torch_peer.create_model("tiny_cnn", embed_dim=3, in_channels=1)
    v = models.create_model("tiny_cnn", embed_dim=3).init(
        jax.random.key(0), np.zeros((2, 9, 9, 3), np.float32), train=False
    )
    with pytest.raises(ValueError, match="not the same architecture"):
        torch_peer.load_flax(wrong, v["params"])


def test_torch_loss_matches_the_jax_loss_for_both_estimators():
    torch = _torch()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from hncl_jax import geometry, hardening, losses
    from hncl_jax.benchmark import torch_peer

    rng = np.random.default_rng(1)
    z = geometry.normalize(jnp.asarray(rng.normal(size=(24, 6)).astype(np.float32)))
    y = jnp.asarray(rng.integers(0, 4, 24).astype(np.int32))
    zt, yt = torch.from_numpy(np.array(z)), torch.from_numpy(np.array(y)).long()
    key = jax.random.key(3)
    for setting in ("hscl", "scl"):
        want = losses.contrastive_loss(z, y, setting=setting, beta=5.0, estimator="reweighted")
        got = torch_peer.contrastive_loss(zt, yt, setting=setting, beta=5.0, estimator="reweighted")
        np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    want = losses.contrastive_loss(z, y, key, setting="hscl", beta=5.0, k=7)
    idx, _ = hardening.sample_negatives(key, z @ z.T, y[:, None] != y[None, :], 7, beta=5.0)
    got = torch_peer.contrastive_loss(
        zt,
        yt,
        setting="hscl",
        beta=5.0,
        estimator="sampled",
        k=7,
        idx=torch.from_numpy(np.asarray(idx)).long(),
    )
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)


@pytest.mark.slow
def test_depth_reaches_the_model_its_flops_and_the_torch_twin():
    _torch()
    import jax
    import jax.numpy as jnp

    from hncl_jax import models

    argv = (
        "--mode=step --model=small_cnn --depth=2 --batch=4 --num_classes=3 --image_size=8 "
        "--channels=1 --steps=1 --warmup=0 --repeats=1 --peer=torch --torch_compile=false"
    ).split()
    (rec,) = benchmark.run(argv)
    assert rec["depth"] == 2 and rec["params_jax"] == rec["params_torch"]
    one = models.create_model("small_cnn", embed_dim=2)
    two = models.create_model("small_cnn", embed_dim=2, depth=2)
    x = jnp.zeros((1, 8, 8, 1))
    count = lambda m: models.num_params(
        jax.eval_shape(lambda: m.init(jax.random.key(0), x, train=False))
    )
    assert rec["params_jax"] == count(two) > count(one)
    flops = 3 * models.model_flops("small_cnn", (8, 8, 1), 2, depth=2)
    assert rec["tflops"] == pytest.approx(rec["images_per_sec"] * flops / 1e12)


def test_peer_step_checks_the_loss_and_reports_ratios(capsys):
    _torch()
    (rec,) = benchmark.run(
        "--mode=step --model=tiny_cnn --batch=16 --num_classes=4 --image_size=6 --steps=2 "
        "--warmup=1 --repeats=2 --peer=torch --torch_compile=false".split()
    )
    assert rec["params_jax"] == rec["params_torch"] > 0
    assert abs(rec["loss_jax"] - rec["loss_torch"]) < 1e-4
    assert rec["torch_eager_ms"] > 0 and rec["ratio_eager"] > 0 and rec["repeats"] == 2
    assert "JAX/PyTorch" in capsys.readouterr().err


@pytest.mark.slow
def test_peer_epoch_and_loss_modes():
    _torch()
    (rec,) = benchmark.run(
        "--mode=epoch --model=tiny_cnn --batch=8 --num_classes=4 --image_size=6 --channels=1 "
        "--dataset_size=24 --epochs=2 --peer=torch --torch_compile=false".split()
    )
    assert rec["torch_eager_epoch_s"] > 0 and rec["ratio_eager"] > 0
    recs = benchmark.run(
        "--mode=loss --loss_n=16 --loss_k=4 --loss_dim=8 --steps=1 --repeats=1 --naive_max_n=0 "
        "--loss_cases=anchor --loss_cases=reweighted --peer=torch --torch_compile=false".split()
    )
    assert {r["estimator"] for r in recs} == {"sampled", "reweighted"}
    for r in recs:
        assert abs(r["loss_jax"] - r["loss_torch"]) < 1e-4 and r["ratio_eager"] > 0


@pytest.mark.slow
def test_peer_step_with_torch_compile():
    _torch()
    (rec,) = benchmark.run(
        "--mode=step --model=tiny_cnn --batch=8 --num_classes=4 --image_size=4 --steps=1 "
        "--warmup=0 --repeats=1 --peer=torch".split()
    )
    assert rec["torch_compile_ms"] > 0 and rec["ratio_compile"] > 0


# ----------------------------------------------------------------- BENCHMARKS.md
def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _make_doc():
    return _script("make_doc")


@pytest.mark.parametrize("name", ["fashion_mnist", "clop_fashion_mnist", "digits"])
def test_config_docstrings_quote_their_latest_time_to_accuracy(name):
    """The CPU configs' docstrings state their measured time and accuracy, as written by
    benchmarks/time_to_accuracy.py from the last recorded run of the shipped config."""
    tta = _script("time_to_accuracy")
    lines = (ROOT / "benchmarks" / "results" / "time_to_accuracy.jsonl").read_text()
    record = tta.latest([json.loads(x) for x in lines.splitlines()], f"configs/{name}.py")
    assert record is not None, f"no time-to-accuracy run of configs/{name}.py is recorded"
    doc = importlib.import_module(f"hncl_jax.configs.{name}").__doc__
    assert tta.summary_line(record) in " ".join(doc.split())


def test_benchmarks_md_agrees_with_the_results_files():
    make_doc = _make_doc()
    doc = (ROOT / "BENCHMARKS.md").read_text()
    assert make_doc.generated_part(doc) == make_doc.render(), (
        "BENCHMARKS.md disagrees with benchmarks/results/: run python benchmarks/make_doc.py"
    )


def test_make_doc_renders_results_and_time_to_accuracy(tmp_path):
    make_doc = _make_doc()
    (rec,) = benchmark.run(
        "--mode=step --model=tiny_mlp --batch=8 --num_classes=4 --image_size=4 --steps=1 "
        f"--warmup=0 --out={tmp_path / 'a.jsonl'}".split()
    )
    tta = {
        "kind": "time_to_accuracy",
        "config": "configs/fashion_mnist.py",
        "command": "python -m hncl_jax.main --config=fashion_mnist",
        "wall_s": 321.5,
        "metrics": {"eval/knn_acc": 0.875},
        "machine": {"cpu": "test cpu"},
        "jax": "0.0.1",
    }
    (tmp_path / "time_to_accuracy.jsonl").write_text(json.dumps(tta) + "\n")
    text = make_doc.render(tmp_path)
    assert "### Time to accuracy" in text and "322 s" in text and "0.875" in text
    assert "a.jsonl" in text and "test cpu" in text
    doc = tmp_path / "DOC.md"
    doc.write_text(f"# B\n\n{make_doc.BEGIN}\nstale\n{make_doc.END}\n\ntail\n")
    assert make_doc.main(["--check", f"--results={tmp_path}", f"--doc={doc}"]) == 1
    assert make_doc.main([f"--results={tmp_path}", f"--doc={doc}"]) == 0
    assert make_doc.main(["--check", f"--results={tmp_path}", f"--doc={doc}"]) == 0
    assert doc.read_text().endswith("\n\ntail\n")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        make_doc.render(tmp_path)


def _precision_record(dtype, gap, unit_norm, **extra):
    metrics = {
        "epoch": 400,
        "step": 400,
        "train/epoch_loss": 0.2014 + gap,
        "train/theorem_bound": 0.2014,
        "train/loss_gap": gap,
        "nc/train/z/zero_sum": 1e-3,
        "nc/train/z/unit_norm": unit_norm,
        "nc/train/z/equal_inner_product": 2e-3,
        "nc/train/z/within_class_variance": 3e-9,
        "eval/test/z/ncm_acc": 1.0,
    }
    return {
        "kind": "precision",
        "config": "configs/synthetic.py",
        "dtype": dtype,
        "overrides": [],
        "command": f"python -m hncl_jax.main --config=configs/synthetic.py --config.dtype={dtype}",
        "wall_s": 61.0,
        "cpu_s": 45.5,
        "late_gap": {
            "evaluations": 10,
            "first_epoch": 220,
            "median_abs_gap": 2 * abs(gap),
            "max_abs_gap": 5 * abs(gap),
        },
        "metrics": metrics,
        "machine": {"cpu_count": 2, "device": "cpu", "processor": "x86_64"},
        "versions": {"jax": "0.0.1"},
        "date": "2026-12-02T03:00Z",
        "loadavg_1min": {"before": 1.0, "after": 2.0},
        **extra,
    }


def test_make_doc_renders_the_precision_table(tmp_path):
    make_doc = _make_doc()
    digits = _precision_record(
        "float32", 0.0, 0.0, config="configs/digits.py", overrides=["--config.num_epochs=2"]
    )
    digits["metrics"] = {"epoch": 2, "eval/test/z/ncm_acc": 0.95}  # no bound: "—"
    del digits["cpu_s"]
    digits["late_gap"] = None
    # Run order: a pair's runs need not be adjacent; the table puts them together.
    recs = [
        _precision_record("float32", 1.5e-8, 2.5e-8),
        digits,
        _precision_record("bfloat16", 4.2e-5, 3.1e-3),
    ]
    (tmp_path / "precision.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = make_doc.render(tmp_path)
    assert "### bfloat16 against float32" in text
    table = [line for line in text.splitlines() if line.startswith("| `configs/")]
    assert len(table) == 3
    header = next(line for line in text.splitlines() if line.startswith("| config | compute"))
    assert "loss − bound" in header and "unit-norm" in header and "within-class" in header
    f32, bf16, digits = (line.split(" | ") for line in table)
    assert f32[1] == "float32" and bf16[1] == "bfloat16"
    assert "1.5e-08" in f32 and "2.5e-08" in f32 and "4.2e-05" in bf16 and "0.0031" in bf16
    assert "`--config.num_epochs=2`" in digits[0] and "—" in digits and "0.95" in digits
    assert "3e-08 (7.5e-08), 10 evals" in f32 and digits[4] == "—"
    assert "61.0 s" in f32 and "45.5 s" in f32 and "—" in digits[-2]  # no cpu_s recorded
    assert "jax 0.0.1" in text and "say nothing about bfloat16 on an accelerator" in text
    assert "two seeds" not in text  # said only when a pair differs by --config.seed
    seeded = dict(recs[0], overrides=["--config.seed=1"])
    (tmp_path / "precision.jsonl").write_text(json.dumps(seeded) + "\n")
    assert "two seeds" in make_doc.render(tmp_path)


def test_benchmarks_md_holds_every_precision_run_in_pairs():
    """The recorded study: both dtypes for each config and overrides, each one row."""
    make_doc = _make_doc()
    recs = [r for r in make_doc.read_results() if r.get("kind") == "precision"]
    assert recs, "benchmarks/results/precision.jsonl holds no run"
    pairs: dict[tuple, set] = {}
    for r in recs:
        pairs.setdefault((r["config"], tuple(r["overrides"])), set()).add(r["dtype"])
    assert all(d == {"float32", "bfloat16"} for d in pairs.values()), pairs
    configs = {c for c, _ in pairs}
    assert {"configs/synthetic.py", "configs/digits.py", "configs/fashion_mnist.py"} <= configs
    part = make_doc.generated_part((ROOT / "BENCHMARKS.md").read_text())
    assert "### bfloat16 against float32" in part
    rows = part.split("### bfloat16 against float32")[1].splitlines()
    assert sum(line.startswith("| `configs/") for line in rows) == len(recs)


def _precision_module():
    spec = importlib.util.spec_from_file_location("precision", ROOT / "benchmarks" / "precision.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_precision_reads_the_final_evaluation_and_the_late_gap(tmp_path):
    precision = _precision_module()
    rows = [{"step": 1, "train/loss": 0.9}]  # a logged step, not an evaluation
    for epoch, gap in [(10, 0.5), (20, -2e-6), (30, 1e-6), (40, 4e-6)]:
        rows.append(
            {
                "step": epoch,
                "epoch": epoch,
                "train/epoch_loss": 0.2 + gap,
                "train/theorem_bound": 0.2,
                "train/loss_gap": gap,
                "nc/train/z/unit_norm": 1e-6,
                "nc/train/z/nc1": 3.0,  # not kept
                "eval/test/z/ncm_acc": 1.0,
                "eval/train/z/ncm_acc": 1.0,  # not kept
            }
        )
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    final = precision.final_metrics(str(tmp_path))
    assert final == {
        "epoch": 40,
        "step": 40,
        "train/epoch_loss": 0.2 + 4e-6,
        "train/theorem_bound": 0.2,
        "train/loss_gap": 4e-6,
        "nc/train/z/unit_norm": 1e-6,
        "eval/test/z/ncm_acc": 1.0,
    }
    late = precision.late_gap(str(tmp_path))  # epochs 30 and 40 are past half of 40
    assert late == pytest.approx(
        {"evaluations": 2, "first_epoch": 30, "median_abs_gap": 2.5e-6, "max_abs_gap": 4e-6}
    )
    assert precision.shown_command("configs/digits.py", "bfloat16", ["--config.x=(1, 2)"]) == (
        "python -m hncl_jax.main --config=configs/digits.py --config.dtype=bfloat16 "
        "'--config.x=(1, 2)'"
    )
    with pytest.raises(SystemExit, match="dtypes"):
        precision.main(["--config=configs/digits.py", "--dtypes=float16"])
    with pytest.raises(SystemExit, match="set by --dtypes"):
        precision.main(["--config=configs/digits.py", "--", "--config.dtype=float32"])


@pytest.mark.slow
def test_precision_runs_a_config_in_both_dtypes(tmp_path):
    precision = _precision_module()
    out = tmp_path / "precision.jsonl"
    tiny = [
        "--config.model=tiny_mlp",
        "--config.batch_size=60",
        "--config.num_epochs=2",
        "--config.linear_probe=off",
        "--config.plots=False",
    ]
    argv = ["--config=configs/synthetic.py:smoke", f"--workdir={tmp_path / 'runs'}"]
    assert precision.main([*argv, f"--out={out}", "--", *tiny]) == 0
    f32, bf16 = (json.loads(line) for line in out.read_text().splitlines())
    assert (f32["dtype"], bf16["dtype"]) == ("float32", "bfloat16")
    for rec in (f32, bf16):
        assert rec["kind"] == "precision" and rec["overrides"] == tiny
        assert rec["wall_s"] > 0 and rec["cpu_s"] > 0 and rec["metrics"]["epoch"] == 2
        assert "nc/train/z/unit_norm" in rec["metrics"] and "train/loss_gap" in rec["metrics"]
        assert rec["late_gap"]["evaluations"] >= 1
        saved = json.loads((tmp_path / "runs" / rec["dtype"] / "config.json").read_text())
        assert saved["dtype"] == rec["dtype"]
    # Everything but the dtype is equal, and the dtype changes the numbers.
    assert f32["metrics"]["train/theorem_bound"] == bf16["metrics"]["train/theorem_bound"]
    assert f32["metrics"]["train/epoch_loss"] != bf16["metrics"]["train/epoch_loss"]


def test_make_doc_pairs_the_xla_flag_runs_of_one_command(tmp_path):
    make_doc = _make_doc()
    flag = f"--{make_doc.XLA_DEFAULT_FLAG}=-individual_convolution"

    def rec(step_ms, ratio, flags, command="--mode=step --model=small_cnn --peer=torch"):
        return {
            "kind": "benchmark",
            "mode": "step",
            "peer": "torch",
            "model": "small_cnn",
            "batch": 256,
            "image_shape": [28, 28, 1],
            "params_jax": 10,
            "params_torch": 10,
            "step_ms": step_ms,
            "torch_eager_ms": step_ms / ratio,
            "ratio_eager": ratio,
            "command": f"python -m hncl_jax.benchmark {command}",
            "machine": {"xla_flags": flags, "cores": 2},
            "date": "2026-12-06T17:00Z",
        }

    lines = [rec(180.0, 2.0, ""), rec(100.0, 1.1, flag), rec(170.0, 1.9, ""), rec(90.0, 1.0, flag)]
    lines.append(rec(50.0, 0.9, flag, command="--mode=step --model=tiny_cnn --peer=torch"))
    (tmp_path / "2026-12-06-cpu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    text = make_doc.render(tmp_path)
    section = text.split("### XLA:CPU convolutions")[1].split("###")[0]
    # One row (the tiny_cnn command has no run without the flag): runs in pairs, in order.
    (row,) = [ln for ln in section.splitlines() if ln.startswith("| 2026-12-06-cpu")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:7] == ["180 / 170", "100 / 90.0", "0.54×", "2.00× / 1.90×", "1.10× / 1.00×"]
    table_a = text.split("### (a) Train step against PyTorch")[1]
    assert table_a.count("library's") == 3 and table_a.count("XLA's") == 2
