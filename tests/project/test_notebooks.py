"""The notebooks of colabs/: their install cell, their committed outputs, and a QUICK run.

Each notebook's source is the jupytext percent script `colabs/<name>.py`; the committed
`colabs/<name>.ipynb` is that script executed at QUICK size (HNCL_QUICK=1) with
`colabs/execute_notebooks.py`. The fast tests check that the pair agrees, that the
install cell reads the repository address of pyproject.toml and never replaces the
runtime's jax, and that the stored outputs show the notebook's results; the slow test
executes every notebook again ("python3" kernel of this interpreter) and checks what it
prints.
"""

import os
import re
import sys
import tomllib

import pytest

from hncl_jax.train import plots

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLABS = os.path.join(ROOT, "colabs")
NOTEBOOKS = ["theory", "synthetic_collapse", "cifar_collapse", "near_nc_warm_start", "clop"]
# Lines each notebook must print at QUICK size: its results were computed and shown.
EXPECTED_OUTPUT = {
    "theory": [
        "InfoNCE, C = 3:   0.20141",
        "C = 3, k = 256: exact 0.39333",
        "HSCL − SCL: 10 cases",
        "all ≥ 0: True",
        "k = 30: printed bound 2.0333, exact root 2.0358",
        "| 30 | 2.0333 |",
        "η = 2.0: effective rank after 1000 steps: 29 (k = 30)",
        "η = 2.1: effective rank after 1000 steps: 1 (k = 30)",
        "effective rank 29 (k − 1 = 29)",
    ],
    "synthetic_collapse": ["16 runs in", "| noise_views | hucl | 50 |", "last-epoch loss"],
    "cifar_collapse": ["**fig3_fig4_unit_ball**", "| setting | theory | observed |"],
    "near_nc_warm_start": ["| near-NC model |", "| HUCL β=30 |"],
    "clop": ["| nt_xent | True |", "| nt_xent | False |"],
}

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupytext = pytest.importorskip("jupytext")
pytest.importorskip("ipykernel")


def _executor():
    sys.path.insert(0, COLABS)
    try:
        import execute_notebooks
    finally:
        sys.path.remove(COLABS)
    return execute_notebooks


def _committed(name: str):
    with open(os.path.join(COLABS, f"{name}.ipynb"), encoding="utf-8") as fh:
        return nbformat.read(fh, as_version=4)


def _printed(nb) -> str:
    text = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            text.append(o.get("text", "") if o.get("output_type") == "stream" else "")
            text.append(o.get("data", {}).get("text/markdown", ""))
    return "\n".join(text)


def _errors(nb) -> list:
    return [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def _repository() -> str:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)["project"]["urls"]["Repository"]


def test_colabs_holds_the_notebook_pairs_and_their_executor():
    assert sorted(_executor().NOTEBOOKS) == sorted(NOTEBOOKS)
    files = {f for f in os.listdir(COLABS) if not f.startswith((".", "__"))}
    expected = {f"{n}.{ext}" for n in NOTEBOOKS for ext in ("py", "ipynb")}
    assert files == expected | {"execute_notebooks.py"}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_its_script_executed(name):
    script = jupytext.read(os.path.join(COLABS, f"{name}.py"))
    committed = _committed(name)
    pairs = list(zip(script.cells, committed.cells, strict=True))
    for i, (a, b) in enumerate(pairs):
        assert (a.cell_type, a.source) == (b.cell_type, b.source), (
            f"colabs/{name}.ipynb cell {i} differs from colabs/{name}.py: run "
            f"HNCL_QUICK=1 python colabs/execute_notebooks.py {name}"
        )
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), f"{name}.ipynb is not executed"
    assert not _errors(committed)
    printed = _printed(committed)
    assert "| QUICK (tiny sizes)" in printed  # executed at QUICK size
    for line in EXPECTED_OUTPUT[name]:
        assert line in printed, f"committed {name}.ipynb lacks {line!r}"
    assert any("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", [])), (
        f"{name}.ipynb shows no figure"
    )
    assert committed.metadata.get("accelerator") == "GPU"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_install_cell_uses_the_recorded_repository_and_keeps_jax(name):
    with open(os.path.join(COLABS, f"{name}.py"), encoding="utf-8") as fh:
        source = fh.read()
    repo = _repository()
    assert re.search(rf'^REPOSITORY = "{re.escape(repo)}"', source, flags=re.M)
    owner_repo = repo.removeprefix("https://github.com/")
    badge = f"colab.research.google.com/github/{owner_repo}/blob/main/colabs/{name}.ipynb"
    assert badge in source
    assert "<org>" not in source
    # hncl_jax itself without dependencies, then one call installs only what the runtime
    # lacks, reads HNCL_QUICK, picks the workdir and names the accelerator.
    assert '"pip", "install", "-q", "--no-deps", source' in source
    assert "QUICK, WORKDIR = colab.setup(use_drive=USE_DRIVE)" in source
    # ... and no cell does a part of it again by hand.
    by_hand = (
        r"install_missing_dependencies|check_accelerator|colab\.workdir\("
        r"|environ(\.get\(|\[)\s*.HNCL_QUICK"
    )
    assert not re.search(by_hand, source), re.search(by_hand, source)


def _set_up_cells(name: str) -> list[str]:
    """The install cell (the one that sets REPOSITORY) and the code cell after it."""
    code = [
        c.source
        for c in jupytext.read(os.path.join(COLABS, f"{name}.py")).cells
        if c.cell_type == "code"
    ]
    first = next(i for i, c in enumerate(code) if "REPOSITORY = " in c)
    return code[first : first + 2]


def test_every_notebook_sets_up_with_the_same_two_cells():
    cells = {name: _set_up_cells(name) for name in NOTEBOOKS}
    first = cells[NOTEBOOKS[0]]
    assert len(first) == 2 and "colab.setup(" in first[1]
    differ = [name for name in NOTEBOOKS if cells[name] != first]
    assert not differ, f"set-up cells of {differ} differ from those of {NOTEBOOKS[0]}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_figures_come_from_the_library(name):
    with open(os.path.join(COLABS, f"{name}.py"), encoding="utf-8") as fh:
        source = fh.read()
    # No figure drawn by hand: every figure is a hncl_jax.train.plots function's, displayed.
    assert "pyplot" not in source and not re.search(r"\bplt\.", source)
    assert not re.search(r"\.(subplots|add_subplot|plot|scatter|semilogy|hist)\(", source)
    figures = re.findall(r"plots\.(\w+_figure)\(", source)
    assert figures and all(f in plots.__all__ for f in figures)
    assert "# %matplotlib inline" in source  # so display(fig) shows the image


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_at_quick_size(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HNCL_QUICK", "1")
    monkeypatch.setenv("HNCL_WORKDIR", str(tmp_path))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("MPLBACKEND", "agg")
    nb = _executor().execute(name, timeout=300)
    assert not _errors(nb)
    text = _printed(nb)
    for line in EXPECTED_OUTPUT[name]:
        assert line in text, f"{name}: output lacks {line!r}"


def test_set_repository_rewrites_install_cells_and_badges(tmp_path):
    import shutil

    for name in NOTEBOOKS:
        for ext in ("py", "ipynb"):
            shutil.copy(os.path.join(COLABS, f"{name}.{ext}"), tmp_path)
    fork = "https://github.com/someone/hncl_fork"
    changed = _executor().set_repository(fork, str(tmp_path))
    assert len(changed) == 2 * len(NOTEBOOKS)
    for name in NOTEBOOKS:
        script = (tmp_path / f"{name}.py").read_text()
        assert f'REPOSITORY = "{fork}"' in script
        assert f"colab.research.google.com/github/someone/hncl_fork/blob/main/colabs/{name}" in (
            script
        )
        nb = nbformat.read(str(tmp_path / f"{name}.ipynb"), as_version=4)  # still valid JSON
        assert any(f'REPOSITORY = "{fork}"' in c.source for c in nb.cells)
        assert _repository().removeprefix("https://github.com/") not in script
    with pytest.raises(ValueError, match="https://github.com/<owner>/<name>"):
        _executor().set_repository("https://gitlab.com/x/y", str(tmp_path))
