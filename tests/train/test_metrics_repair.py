"""metrics.jsonl survives any damage: a resume keeps every readable row once and logs the rest."""

from __future__ import annotations

import json
import logging
import os

import pytest

from hncl_jax.train import reporting
from hncl_jax.train import workdir as workdir_lib

GOOD = [{"step": s, "train/loss": 1.0 / s} for s in (2, 4, 6, 8)]


def _write(path, pieces: list[bytes]) -> None:
    with open(path, "wb") as f:
        f.write(b"".join(pieces))


def _line(row) -> bytes:
    return (json.dumps(row) + "\n").encode()


DAMAGE = {
    "non-UTF-8 bytes": b"\xff\xfe\x80garbage\n",
    "non-UTF-8 bytes inside a row": b'{"step": 5, "tr\xffain/loss": 0.1}\n',
    "step is a string": b'{"step": "x", "train/loss": 0.5}\n',
    "step is null": b'{"step": null, "train/loss": 0.5}\n',
    "step overflows": b'{"step": 1e999, "train/loss": 0.5}\n',
    "step is negative": b'{"step": -3, "train/loss": 0.5}\n',
    "step is a bool": b'{"step": true, "train/loss": 0.5}\n',
    "no step": b'{"train/loss": 0.5}\n',
    "not an object": b"[1, 2, 3]\n",
    "torn row": b'{"step": 5, "train/lo\n',
    "deep nesting": b"[" * 100000 + b"\n",
    "a line of braces": b'{"a": ' * 100000 + b"\n",
}


@pytest.mark.parametrize("damage", list(DAMAGE.values()), ids=list(DAMAGE))
def test_damage_in_the_middle_is_skipped_on_resume(tmp_path, caplog, damage):
    path = tmp_path / workdir_lib.METRICS_FILE
    _write(path, [_line(GOOD[0]), _line(GOOD[1]), damage, _line(GOOD[2]), _line(GOOD[3])])
    original = path.read_bytes()
    with caplog.at_level(logging.WARNING):
        writer = reporting.MetricWriter(str(tmp_path), resume_step=6)
    writer.write_scalars(8, {"train/loss": 0.125})
    writer.close()
    rows = reporting.read_metrics(str(tmp_path))
    assert rows == GOOD  # every readable row up to 6, then the resumed step 8, no repeat
    assert "line 3" in caplog.text and "skipped" in caplog.text
    # What could not be read is kept next to the file.
    assert (tmp_path / (workdir_lib.METRICS_FILE + ".damaged")).read_bytes() == original
    with open(path) as f:
        assert all(json.loads(line) for line in f)  # one clean row per line


def test_merged_rows_are_both_kept_and_duplicates_dropped(tmp_path, caplog):
    path = tmp_path / workdir_lib.METRICS_FILE
    merged = _line(GOOD[1]).rstrip(b"\n") + _line(GOOD[2])  # two rows glued on one line
    eval_row = {"step": 4, "eval/acc": 0.5}  # same step, other keys: not a duplicate
    _write(path, [_line(GOOD[0]), merged, _line(eval_row), _line(GOOD[1]), _line(GOOD[3])])
    rows, skipped = reporting.parse_metrics_file(str(path))
    assert rows == [GOOD[0], GOOD[1], GOOD[2], eval_row, GOOD[3]]
    assert skipped == ["line 4: a repeat of an earlier row of step 4"]
    with caplog.at_level(logging.WARNING):
        reporting.MetricWriter(str(tmp_path), resume_step=8).close()
    assert "a repeat of an earlier row of step 4" in caplog.text
    assert reporting.read_metrics(str(tmp_path)) == rows
    assert path.read_bytes().count(b"\n") == len(rows)


def test_float_steps_are_read_as_ints_and_a_clean_file_is_left_alone(tmp_path):
    path = tmp_path / workdir_lib.METRICS_FILE
    _write(path, [b'{"step": 2.0, "a": 1}\n', b'{"step": 4, "a": NaN}\n'])
    rows, skipped = reporting.parse_metrics_file(str(path))
    assert [r["step"] for r in rows] == [2, 4] and isinstance(rows[0]["step"], int)
    assert skipped == []
    clean = tmp_path / "clean"
    clean.mkdir()
    _write(clean / workdir_lib.METRICS_FILE, [_line(r) for r in GOOD])
    before = os.stat(clean / workdir_lib.METRICS_FILE).st_mtime_ns
    reporting.MetricWriter(str(clean), resume_step=8).close()
    assert os.stat(clean / workdir_lib.METRICS_FILE).st_mtime_ns == before  # not rewritten
    assert not (clean / (workdir_lib.METRICS_FILE + ".damaged")).exists()
