"""The statistical rule of the trained sections' verdicts (Welch's t-test over seeds,
`common.welch` / `common.difference_verdict`) and the Fashion-MNIST rows it decides."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import stats

from hncl_jax.reproduce import common, fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _group(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"m": float(v.mean()), "m_std": float(v.std(ddof=1)), "n": len(v)}


@pytest.mark.parametrize(
    "a, b",
    [([1.0, 2.0, 3.5], [2.0, 4.5, 6.0, 7.0]), ([0.71, 0.72, 0.70], [0.78, 0.77, 0.785])],
)
def test_welch_matches_scipy(a, b):
    ga, gb = _group(a), _group(b)
    w = common.welch(ga["m"], ga["m_std"], ga["n"], gb["m"], gb["m_std"], gb["n"])
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert w["t"] == pytest.approx(ref.statistic, rel=1e-10)
    assert w["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert w["df"] == pytest.approx(ref.df, rel=1e-10)
    assert w["diff"] == pytest.approx(np.mean(b) - np.mean(a))


def test_welch_known_value():
    # a = (1, 2, 3), b = (4, 5, 6): diff 3, se = sqrt(2/3), t = 3.674, df = 4, p = 0.02131.
    w = common.welch(2.0, 1.0, 3, 5.0, 1.0, 3)
    assert w["t"] == pytest.approx(3 / np.sqrt(2 / 3))
    assert w["df"] == pytest.approx(4.0)
    assert w["p"] == pytest.approx(0.021312, abs=1e-6)


def test_two_standard_errors_is_not_significant_with_three_seeds():
    """t = 2.5 with 3 + 3 seeds (df = 4): beyond 2 s.e., but p ≈ 0.067 > 0.05."""
    se = np.sqrt(2 / 3)
    a = {"x": 0.0, "x_std": 1.0, "n": 3}
    b = {"x": 2.5 * se, "x_std": 1.0, "n": 3}
    verdict = common.difference_verdict(a, b, "x", higher_is="higher", lower_is="lower")
    assert verdict.startswith("no significant difference") and "Welch p = 0.067" in verdict
    b["x"] = 4 * se  # p ≈ 0.016
    verdict = common.difference_verdict(a, b, "x", higher_is="higher", lower_is="lower")
    assert verdict.startswith("higher (difference") and "Welch p = 0.016" in verdict


def test_zero_variance_groups_are_guarded():
    rank5 = {"r": 5.0, "r_std": 0.0, "n": 3}
    rank8 = {"r": 8.0, "r_std": 0.0, "n": 3}
    kw = {"higher_is": "less DC", "lower_is": "more DC", "names": ("SCL", "HSCL")}
    assert common.difference_verdict(rank5, dict(rank5), "r", **kw) == (
        "no difference (every seed of both gives 5)"
    )
    both = common.difference_verdict(rank5, rank8, "r", **kw)
    assert both == "less DC in every seed (8 against 5; no spread in either group, so no t-test)"
    assert common.welch(5.0, 0.0, 3, 8.0, 0.0, 3)["p"] is None
    one = common.difference_verdict(rank5, {"r": 8.0, "r_std": 1.0, "n": 3}, "r", **kw)
    assert one.startswith("less DC (difference +3, Welch p = 0.035")
    assert one.endswith("; no spread in SCL: every seed gives 5)")
    # With one group constant the test is the other's mean against it: df = n - 1.
    assert common.welch(5.0, 0.0, 3, 7.0, 1.0, 3)["df"] == pytest.approx(2.0)
    single = common.difference_verdict(rank5, {"r": 7.0, "n": 1}, "r", **kw)
    assert single == "one seed only, no test (difference +2)"


def test_committed_fashion_mnist_rows_say_what_the_papers_say():
    results = common.read_results(fashion_mnist.results_path("cpu", ROOT))
    block = fashion_mnist.render(results)
    # The views study is the SimCLR sampling of App. B.5, not Figs. 3-4's UCL/HUCL.
    assert "### HN App. B.5 / Fig. 13: UCL and HUCL with SimCLR sampling" in block
    assert "HN Fig. 4 / §5.3: UCL and HUCL" not in block
    # §5.3 (random initialization): HUCL suffers less DC than UCL; the collapse at large
    # β is the near-NC warm start's (§5.4).
    assert "HUCL at large β collapses dimensions (DC) [HN Fig. 4, §5.3]" not in block
    assert "with random initialization HUCL suffers less DC than UCL [HN §5.3" in block
    assert "HUCL at large β collapses dimensions; SCL, HSCL and UCL show no" in block
    assert "[HN §5.4, Fig. 4 row 2]" in block
    # SCL's DC against HSCL, by rank and by the smallest singular value.
    assert "HSCL has less DC than SCL [HN §5.3, Fig. 4 row 1, left] (DC rank; SCL" in block
    assert "(log10 smallest normalized singular value; SCL" in block
    assert "HSCL β = 5: 8.0 ± 0.0 (less DC in every seed (8 against 5; no spread" in block
    # HUCL's accuracy over UCL.
    assert "HUCL above UCL" in block
    # Table 1: the claim stated as the paper makes it, not scored on the tautology.
    assert "closer to the Thm 2 minimum" in block and "not scored here" in block
    assert "| holds: gap" not in block
    # Fig. 3's NC rows are not a test at this size.
    nc_rows = [ln for ln in block.splitlines() if "HSCL is closer to NC than SCL" in ln]
    assert len(nc_rows) == 2
    assert all("Not a test of the claim at this size" in ln for ln in nc_rows)
    # CLOP: the three NT-Xent baselines at 10/50/100 % labels are one encoder per seed;
    # the batch-size claim is not tested under Adam with a fixed epoch count.
    assert "so the 8 pairs hold 6 independent baselines" in block
    assert "CLOP degrades least at small batches [CLOP Fig. 6] | not tested" in block
    assert "2 s.e." not in block and "standard errors" not in block
