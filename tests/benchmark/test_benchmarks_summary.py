"""BENCHMARKS.md opens with a generated summary, and a huge-page row whose ratio is above 1
carries a generated comment saying whether it is within the runs' own spread."""

import importlib.util
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _make_doc():
    spec = importlib.util.spec_from_file_location("make_doc", ROOT / "benchmarks" / "make_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _step(step_ms, *, huge=False, peer=None, device="cpu:cpu", **extra):
    rec = {
        "kind": "benchmark",
        "mode": "step",
        "model": "tiny_cnn",
        "batch": 64,
        "image_shape": [8, 8, 1],
        "params_jax": 10,
        "step_ms": step_ms,
        "device": device,
        "command": "python -m hncl_jax.benchmark --mode=step --model=tiny_cnn --steps=3",
        "machine": {
            "glibc_tunables": "glibc.malloc.hugetlb=1" if huge else "",
            "xla_flags": "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",
        },
    }
    if peer:
        rec.update(peer="torch", params_torch=10, torch_eager_ms=step_ms / 1.5, ratio_eager=1.5)
    return {**rec, **extra}


def test_benchmarks_md_opens_with_the_generated_summary():
    make_doc = _make_doc()
    doc = (ROOT / "BENCHMARKS.md").read_text()
    summary = make_doc.generated_summary(doc)
    assert summary == make_doc.render_summary(), "run python benchmarks/make_doc.py"
    assert doc.index(make_doc.SUMMARY_BEGIN) < doc.index("`python -m hncl_jax.benchmark`")
    body = [ln for ln in summary.splitlines() if ln.startswith("- ")]
    assert 4 <= len(body) <= 6
    assert any("JAX / PyTorch eager" in ln for ln in body)
    assert any("GPU" in ln or "Devices" in ln for ln in body)


def test_summary_and_slower_note_are_computed_from_the_records(tmp_path):
    make_doc = _make_doc()
    records = [_step(300.0), _step(650.0, huge=True), _step(800.0), _step(700.0, huge=True)]
    records += [_step(10.0, peer=True, device="gpu:0")]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = make_doc.render_summary(tmp_path)
    assert "tiny_cnn 1.50×" in summary and "Devices**: gpu:0" in summary
    text = make_doc.render(tmp_path)
    assert "The ratio above 1" in text and "300–800 ms off" in text
    assert "ranges overlap" in text
    doc = tmp_path / "DOC.md"
    doc.write_text(
        f"# B\n\n{make_doc.SUMMARY_BEGIN}\n{make_doc.SUMMARY_END}\n\n"
        f"{make_doc.BEGIN}\n{make_doc.END}\n"
    )
    assert make_doc.main(["--check", f"--results={tmp_path}", f"--doc={doc}"]) == 1
    assert make_doc.main([f"--results={tmp_path}", f"--doc={doc}"]) == 0
    assert make_doc.main(["--check", f"--results={tmp_path}", f"--doc={doc}"]) == 0
    assert "tiny_cnn 1.50×" in doc.read_text()
