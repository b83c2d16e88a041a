"""Tests for hncl_jax.train.reporting: metric writer, resume truncation, config, plots, summary."""

from __future__ import annotations

import glob
import io
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

from hncl_jax import geometry
from hncl_jax.train import reporting
from hncl_jax.train import workdir as workdir_lib

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tb_scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
    """Scalars of every event file under workdir/tensorboard, read with tensorboardX's protos."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        offset = 0
        while offset < len(data):
            (length,) = np.frombuffer(data[offset : offset + 8], "<u8")
            record = data[offset + 12 : offset + 12 + int(length)]
            offset += 12 + int(length) + 4
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_write_scalars_appends_jsonl_and_tensorboard(tmp_path):
    workdir = str(tmp_path / "run")
    with reporting.MetricWriter(workdir) as writer:
        writer.write_scalars(1, {"train/loss": jnp.float32(0.5), "epoch": np.int64(0)})
        # Flushed on every write: readable before close.
        assert reporting.read_metrics(workdir) == [{"step": 1, "train/loss": 0.5, "epoch": 0}]
        writer.write_scalars(2, {"train/loss": 0.25, "nc/train/z/zero_sum": np.array([0.1])})
    rows = reporting.read_metrics(workdir)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[1]["nc/train/z/zero_sum"] == pytest.approx(0.1)
    assert isinstance(rows[0]["epoch"], int)
    assert glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
    assert _tb_scalars(workdir)["train/loss"] == [(1, 0.5), (2, 0.25)]


def test_non_finite_values_round_trip(tmp_path):
    with reporting.MetricWriter(tmp_path) as writer:
        writer.write_scalars(3, {"train/loss": float("nan"), "x": float("inf")})
    (row,) = reporting.read_metrics(tmp_path)
    assert math.isnan(row["train/loss"]) and row["x"] == math.inf


def test_resume_truncates_later_rows(tmp_path):
    with reporting.MetricWriter(tmp_path) as writer:
        for step in (10, 20, 30, 40):
            writer.write_scalars(step, {"train/loss": 1.0 / step})
    # The process died after step 40, the last checkpoint is step 20; a partial line too.
    with open(tmp_path / workdir_lib.METRICS_FILE, "a") as f:
        f.write('{"step": 50, "train/lo')
    with reporting.MetricWriter(tmp_path, resume_step=20) as writer:
        assert [r["step"] for r in reporting.read_metrics(tmp_path)] == [10, 20]
        writer.write_scalars(30, {"train/loss": 0.5})
    assert [r["step"] for r in reporting.read_metrics(tmp_path)] == [10, 20, 30]
    assert reporting.read_metrics(tmp_path)[-1]["train/loss"] == 0.5
    # Fresh start in a reused workdir.
    with reporting.MetricWriter(tmp_path, resume_step=0):
        pass
    assert reporting.read_metrics(tmp_path) == []


def test_disabled_writer_writes_nothing(tmp_path):
    with reporting.MetricWriter(tmp_path / "r", enabled=False, resume_step=3) as writer:
        writer.write_scalars(1, {"a": 1.0})
    assert not os.path.exists(tmp_path / "r")


def test_write_scalars_rejects_arrays(tmp_path):
    with reporting.MetricWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="'spectrum' must be a number"):
            writer.write_scalars(1, {"spectrum": np.ones(3)})
        with pytest.raises(ValueError, match="reserved"):
            writer.write_scalars(1, {"step": 2})


def test_read_metrics_missing_file(tmp_path):
    assert reporting.read_metrics(tmp_path) == []


def test_save_and_load_config(tmp_path):
    import ml_collections

    config = ml_collections.ConfigDict(
        {"b": (1, 2), "a": {"lr": np.float32(0.5), "beta": np.int64(3)}, "c": None, "d": "x"}
    )
    path = workdir_lib.save_config(config, tmp_path)
    text = open(path).read()
    assert text.index('"a"') < text.index('"b"')  # sorted keys
    assert workdir_lib.load_config_json(tmp_path) == {
        "a": {"beta": 3, "lr": 0.5},
        "b": [1, 2],
        "c": None,
        "d": "x",
    }
    with pytest.raises(FileNotFoundError, match="config.json"):
        workdir_lib.load_config_json(tmp_path / "missing")


def test_progress_bar(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    bar = reporting.ProgressBar(100, initial=10, mininterval=0.0)
    bar.update(20, loss=0.123456, steps_per_sec=12.5)
    bar.update(35)
    assert bar.n == 35
    bar.close()
    out = stream.getvalue()
    assert "35/100" in out and "loss=0.1235" in out
    quiet = reporting.ProgressBar(5, enabled=False)
    quiet.update(3)
    quiet.close()


def _assert_png(path: str) -> None:
    assert os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


def _history():
    rows = []
    for epoch in range(1, 5):
        row = {"step": 10 * epoch, "epoch": epoch, "train/epoch_loss": 1.0 / epoch}
        for split in ("train", "test"):
            for i, metric in enumerate(reporting.NC_PANELS):
                row[f"nc/{split}/z/{metric}"] = 10.0 ** (-epoch - i)
        row["train/theorem_bound"] = 0.20141
        rows.append(row)
    rows.append({"step": 45, "train/loss": 0.2})  # a training-log row, no NC keys
    return rows


def test_plots_write_png_files(tmp_path):
    _assert_png(reporting.plot_nc_metrics(_history(), tmp_path / "nc.png"))
    spectra = {"train/z": np.array([1.0, 0.5, 1e-4]), "test/z": np.array([1.0, 0.0, 0.0])}
    _assert_png(reporting.plot_dc_spectrum(spectra, tmp_path / "dc.png"))
    labels = np.repeat(np.arange(3), 20)
    for dim in (2, 3):
        z = np.asarray(geometry.simplex_etf(3, dim))[labels] + 0.05
        _assert_png(reporting.plot_embeddings(z, labels, tmp_path / f"emb{dim}.png"))
    with pytest.raises(ValueError, match=r"\(N, 2\) or \(N, 3\)"):
        reporting.plot_embeddings(np.ones((5, 4)), np.zeros(5), tmp_path / "x.png")
    with pytest.raises(ValueError, match="no nc/"):
        reporting.plot_nc_metrics([{"step": 1, "train/loss": 1.0}], tmp_path / "y.png")


def test_plot_all_and_summary(tmp_path):
    workdir = str(tmp_path)
    with reporting.MetricWriter(workdir) as writer:
        for row in _history():
            writer.write_scalars(row["step"], {k: v for k, v in row.items() if k != "step"})
    z = np.random.default_rng(0).standard_normal((30, 2))
    paths = reporting.plot_all(
        workdir, spectra={"train/z": np.array([1.0, 0.3])}, embeddings=z, labels=np.arange(30) % 3
    )
    names = sorted(os.path.basename(p) for p in paths)
    assert names == ["dc_spectrum.png", "embeddings.png", "loss.png", "nc_metrics.png"]
    for path in paths:
        _assert_png(path)
    # 16-dimensional embeddings are skipped, not an error.
    assert len(reporting.plot_all(workdir, embeddings=np.ones((4, 16)), labels=np.zeros(4))) == 2
    final = {"eval/test/z/ncm_acc": 0.987654, "nc/test/z/zero_sum": 1.5e-3, "epoch": 4}
    text = reporting.summary_text(final, workdir)
    assert os.path.abspath(workdir) in text
    assert "[eval/test]" in text and "0.98765" in text and "0.0015" in text
    assert "plots/nc_metrics.png" in text and "metrics.jsonl" in text
    assert isinstance(text, str) and not text.endswith("\n")


def test_evaluation_rows_are_told_apart_from_train_rows(tmp_path):
    rows = [
        {"step": 5, "train/loss": 1.0},
        {"step": 10, "train/loss": 0.9},
        {"step": 10, "epoch": 1, "eval/test/z/ncm_acc": 0.5, "nc/train/z/zero_sum": 0.2},
        {"step": 15, "train/loss": 0.8},
    ]
    assert [reporting.is_evaluation_row(r) for r in rows] == [False, False, True, False]
    assert reporting.last_evaluation(rows) == rows[2]
    assert reporting.last_evaluation(rows[:2]) == {}
    last = reporting.last_evaluation(rows)
    last["epoch"] = 99  # a copy: the rows are not changed
    assert rows[2]["epoch"] == 1


def test_write_summary_writes_and_returns_the_text(tmp_path):
    text = reporting.write_summary(tmp_path, {"eval/test/z/ncm_acc": 0.75}, step=4, total_steps=4)
    assert text == reporting.summary_text(
        {"eval/test/z/ncm_acc": 0.75}, tmp_path, step=4, total_steps=4
    )
    assert (tmp_path / workdir_lib.SUMMARY_FILE).read_text() == text + "\n"
    assert "0.75" in text
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
