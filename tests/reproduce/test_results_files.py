"""Results files of `python -m hncl_jax.reproduce`: written atomically, read with one line.

A kill while a results file was written in place left it truncated, and the next
`--write_doc` died with a raw JSONDecodeError.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from hncl_jax.reproduce import common

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "section, name", [("theory", "theory.json"), ("fashion_mnist", "fashion_mnist_cpu.json")]
)
def test_write_doc_over_a_truncated_results_file_is_one_line(tmp_path, section, name):
    text = open(os.path.join(ROOT, "results", name)).read()
    results = tmp_path / name
    results.write_text(text[: len(text) // 2])  # a write cut short
    doc = tmp_path / "REPRODUCTION.md"
    shutil.copy(os.path.join(ROOT, "REPRODUCTION.md"), doc)
    before = doc.read_text()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hncl_jax.reproduce",
            section,
            "--write_doc",
            f"--results={results}",
            f"--doc={doc}",
        ],
        cwd=tmp_path,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"results file {results} cannot be read" in lines[0]
    assert f"python -m hncl_jax.reproduce {section}`" in lines[0]
    assert doc.read_text() == before  # nothing written from a damaged file


def test_results_are_written_atomically(tmp_path, monkeypatch):
    path = str(tmp_path / "r.json")
    common.write_results({"a": 1}, path)
    assert json.loads(open(path).read()) == {"a": 1}

    def killed(fd):
        raise KeyboardInterrupt  # the process stops half-way through the write

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        common.write_results({"a": 2, "b": list(range(1000))}, path)
    assert json.loads(open(path).read()) == {"a": 1}  # the old file, whole
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left behind
    with pytest.raises(ValueError, match=r"r.json cannot be read .*reproduce theory"):
        open(path, "w").write('{"a": ')
        common.read_results(path, "theory")
