"""The benchmark runs every mode on a tiny model and reports sane figures."""

import json

import pytest

from hncl_jax import benchmark


def test_step_mode_reports_throughput(capsys):
    (rec,) = benchmark.run(
        "--mode=step --model=tiny_cnn --batch=32 --num_classes=10 --k=16 --dtype=float32 "
        "--image_size=8 --steps=2 --warmup=1".split()
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == rec
    assert rec["images_per_sec"] > 0 and rec["step_ms"] > 0 and rec["tflops"] > 0
    assert rec["device"].startswith("cpu") and rec["peak_memory_gib"] > 0


@pytest.mark.parametrize("dispatch", [1, 2])
def test_epoch_mode_compiles_once(dispatch):
    (rec,) = benchmark.run(
        "--mode=epoch --model=tiny_cnn --batch=16 --num_classes=10 --k=8 --dtype=float32 "
        f"--image_size=8 --dataset_size=64 --positives=views --epochs=1 "
        f"--steps_per_dispatch={dispatch}".split()
    )
    assert rec["recompiles"] == 0
    assert rec["images_per_sec"] > 0 and rec["steps_per_dispatch"] == dispatch


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


def test_trivial_loss_and_profile_trace(tmp_path):
    (rec,) = benchmark.run(
        "--mode=step --model=tiny_mlp --batch=16 --num_classes=4 --dtype=float32 "
        f"--image_size=4 --steps=2 --warmup=1 --trivial_loss --profile_dir={tmp_path}".split()
    )
    assert rec["trivial_loss"] and rec["images_per_sec"] > 0
    traces = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert traces, "jax.profiler wrote no trace"
