"""README's metric tables cover every key a run writes to metrics.jsonl and summary.txt.

A tiny hscl run with a β schedule and the linear probe writes the trainer's keys (the
hard-negative diagnostics, NC1-NC4, RankMe, the DC spectrum, per-class values, the
Theorem 2/3 gap); every one must match a key pattern of README's "Metrics" tables, so a
new key without a line there fails here.
"""

import os
import re

import pytest

from hncl_jax import train
from hncl_jax.train import reporting
from tests.conftest import tiny_synthetic

# Trains a run through the command line: the slow tier.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _readme_metric_patterns() -> list[re.Pattern]:
    """The first-column keys of the tables in README's "### Metrics" section, as regexes.

    `{split}` is train or test, `{h,z}` either representation, `{k}`, `{c}`, `{i}` a
    number; a key written without a slash (`probe_top5`) shares the folder of the key
    before it in the same cell.
    """
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    patterns = []
    for row in re.findall(r"^\| (.+?) \|", section, flags=re.M):
        folder = ""
        for key in re.findall(r"`([^`]+)`", row):
            if "/" not in key and folder:
                key = folder + key
            folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
            regex = re.escape(key)
            regex = regex.replace(re.escape("{split}"), "(train|test)")
            regex = re.sub(r"\\\{(\w+),(\w+)\\\}", r"(\1|\2)", regex)
            regex = re.sub(r"\\\{\w\\\}", r"\\d+", regex)
            patterns.append(re.compile(regex + "$"))
    return patterns


def test_readme_patterns_read_the_tables():
    patterns = _readme_metric_patterns()
    for key in ("nc/test/z/class7/mean_norm", "eval/test/h/knn200_acc", "eval/test/z/probe_top5"):
        assert any(p.match(key) for p in patterns), key
    assert not any(p.match("nc/valid/z/nc1") for p in patterns)


@pytest.fixture(scope="module")
def run_keys(tmp_path_factory):
    c = tiny_synthetic(
        **{
            "loss.name": "hscl",
            "loss.beta": 2.0,
            "loss.beta_schedule": "linear",
            "loss.beta_schedule_steps": 4,
            "linear_probe": "end",
            "probe_epochs": 2,
            "num_epochs": 2,
            "eval_every_epochs": 1,
            "embed_dim": 3,
        }
    )
    workdir = str(tmp_path_factory.mktemp("run"))
    train.train_and_evaluate(c, workdir, verbose=False)
    keys = set()
    for row in reporting.read_metrics(workdir):
        keys |= set(row)
    summary = open(os.path.join(workdir, "summary.txt")).read()
    return keys, summary


def test_every_metric_a_run_writes_is_in_the_readme(run_keys):
    keys, summary = run_keys
    assert {"train/hn_ess", "nc/train/z/nc1", "train/beta", "train/loss_gap"} <= keys
    patterns = _readme_metric_patterns()
    missing = sorted(k for k in keys - {"step"} if not any(p.match(k) for p in patterns))
    assert not missing, f"README.md's Metrics tables do not explain {missing}"
    # summary.txt lists the final evaluation under the same keys.
    listed = re.findall(r"^    (\S+/\S+)\s", summary, flags=re.M)
    assert listed and set(listed) <= keys
