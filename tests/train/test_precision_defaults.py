"""The compute dtype of every shipped config, and the recorded measurement it rests on.

docs/architecture.md ("Numerical precision") chooses float32 for the synthetic, theory
and CPU configs and keeps bfloat16 for the ResNet real-data configs, citing the table
"bfloat16 against float32" of BENCHMARKS.md (benchmarks/results/precision.jsonl). The
first test pins those defaults; the second checks that the recorded runs still say what
the page says, so that new runs which contradict it fail here until the page and the
defaults are revisited.
"""

import importlib.util
import pathlib

import pytest

from configs import (
    cifar10,
    cifar100,
    clop_cifar100,
    clop_fashion_mnist,
    clop_synthetic,
    default,
    digits,
    fashion_mnist,
    synthetic,
    tinyimagenet,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]

FLOAT32 = {
    "default": default.get_config,
    "synthetic": synthetic.get_config,
    "synthetic:hucl,views": lambda: synthetic.get_config("hucl,views"),
    "clop_synthetic": clop_synthetic.get_config,
    "digits": digits.get_config,
    "fashion_mnist": fashion_mnist.get_config,
    "clop_fashion_mnist": clop_fashion_mnist.get_config,
}
BFLOAT16 = {
    "cifar10": cifar10.get_config,
    "cifar100": cifar100.get_config,
    "tinyimagenet": tinyimagenet.get_config,
    "cifar100:smoke": lambda: cifar100.get_config("smoke"),
    "clop_cifar100": clop_cifar100.get_config,
}


@pytest.mark.parametrize("name", sorted(FLOAT32))
def test_synthetic_theory_and_cpu_configs_compute_in_float32(name):
    assert FLOAT32[name]().dtype == "float32"


@pytest.mark.parametrize("name", sorted(BFLOAT16))
def test_resnet_real_data_configs_compute_in_bfloat16(name):
    assert BFLOAT16[name]().dtype == "bfloat16"


def _pairs():
    spec = importlib.util.spec_from_file_location("make_doc", ROOT / "benchmarks" / "make_doc.py")
    make_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_doc)
    pairs: dict[tuple, dict] = {}
    for r in make_doc.read_results():
        if r.get("kind") == "precision":
            pairs.setdefault((r["config"], tuple(r["overrides"])), {})[r["dtype"]] = r
    return pairs


# The accuracy columns of the BENCHMARKS.md table.
TABLE_ACCURACIES = (
    "eval/test/z/ncm_acc",
    "eval/test/z/knn5_acc",
    "eval/test/z/probe_top1",
    "eval/test/h/probe_top1",
)


def test_the_recorded_runs_say_what_the_precision_section_says():
    pairs = _pairs()
    wcv, unit = "nc/train/z/within_class_variance", "nc/train/z/unit_norm"
    by_config: dict[str, list] = {}
    for (config, _), pair in pairs.items():
        assert set(pair) == {"float32", "bfloat16"}
        by_config.setdefault(config, []).append(
            (pair["float32"]["metrics"], pair["bfloat16"]["metrics"])
        )
        # "bfloat16 takes about as much CPU time as float32 or more".
        assert pair["bfloat16"]["cpu_s"] >= 0.9 * pair["float32"]["cpu_s"]

    # Synthetic: the second half's gaps agree (within the sampled estimator's noise);
    # the bfloat16 run ends with the larger within-class variance and unit-norm.
    ((f32, bf16),) = by_config["configs/synthetic.py"]
    (syn,) = [p for (c, _), p in pairs.items() if c == "configs/synthetic.py"]
    late = [syn[d]["late_gap"]["median_abs_gap"] for d in ("float32", "bfloat16")]
    assert max(late) < 1.5 * min(late)
    assert bf16[wcv] > f32[wcv] and bf16[unit] > f32[unit]

    # Real data: within-class variance higher in bfloat16 in every pair.
    real = by_config["configs/digits.py"] + by_config["configs/fashion_mnist.py"]
    assert all(b[wcv] > f[wcv] for f, b in real)
    # Digits (360 test images): at most one image per accuracy; the loss gap higher in
    # bfloat16; two seeds, whose float32 runs differ by more than one image (NCM of z).
    digits_pairs = by_config["configs/digits.py"]
    assert len(digits_pairs) >= 2
    for f, b in digits_pairs:
        assert all(abs(b[k] - f[k]) <= 1 / 360 + 1e-6 for k in TABLE_ACCURACIES)
        assert b["train/loss_gap"] > f["train/loss_gap"]
    ncm = [f["eval/test/z/ncm_acc"] for f, _ in digits_pairs]
    assert max(ncm) - min(ncm) > 1 / 360 + 1e-6
    # Fashion-MNIST: no accuracy of the table lower in bfloat16.
    for f, b in by_config["configs/fashion_mnist.py"]:
        assert all(b[k] >= f[k] for k in TABLE_ACCURACIES)
