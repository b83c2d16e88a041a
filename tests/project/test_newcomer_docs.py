"""What the documents tell a newcomer works as written: install forms, measured figures,
terms defined where they first appear, the notebooks linked, BENCHMARKS.md summarised."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        return fh.read()


def _documents() -> dict[str, str]:
    paths = ["README.md", "BENCHMARKS.md", "REPRODUCTION.md", "CHANGELOG.md"]
    paths += glob.glob("docs/*.md", root_dir=ROOT)
    paths += glob.glob("hncl_jax/**/*.py", root_dir=ROOT, recursive=True)
    paths += glob.glob("configs/*.py", root_dir=ROOT) + glob.glob("colabs/*.py", root_dir=ROOT)
    return {p: _read(p) for p in paths}


def test_no_install_of_an_extra_by_the_bare_package_name():
    # hncl_jax is installed from a checkout or a wheel, not from an index: an extra on the
    # bare name (pip install "hncl_jax[wandb]") finds nothing. The forms that work are
    # `pip install -e ".[wandb]"` in a checkout, or the extra's own package.
    bare = re.compile(r"pip install\s+['\"]?hncl_jax\[")
    found = [p for p, text in _documents().items() if bare.search(text)]
    assert not found, f"install forms that only work from an index: {found}"
    readme = _read("README.md")
    assert "`pip install wandb`" in readme and 'pip install -e ".[wandb]"' in readme


def _repository() -> str:
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)["project"]["urls"]["Repository"]


def test_readme_links_every_notebook_with_its_badge():
    readme = _read("README.md")
    owner_repo = _repository().removeprefix("https://github.com/")
    for path in sorted(glob.glob("colabs/*.ipynb", root_dir=ROOT)):
        name = os.path.basename(path).removesuffix(".ipynb")
        assert f"[{name}](colabs/{name}.ipynb)" in readme, name
        badge = f"colab.research.google.com/github/{owner_repo}/blob/main/colabs/{name}.ipynb"
        assert badge in readme, f"README has no Colab badge for {name} at {owner_repo}"


def test_set_repository_rewrites_the_readme_badges_too(tmp_path):
    import shutil
    import sys

    colabs = tmp_path / "colabs"
    colabs.mkdir()
    shutil.copy(os.path.join(ROOT, "colabs", "theory.py"), colabs)
    shutil.copy(os.path.join(ROOT, "README.md"), tmp_path)
    sys.path.insert(0, os.path.join(ROOT, "colabs"))
    try:
        import execute_notebooks
    finally:
        sys.path.pop(0)
    changed = execute_notebooks.set_repository("https://github.com/someone/fork", str(colabs))
    assert str(tmp_path / "README.md") in changed
    readme = (tmp_path / "README.md").read_text()
    assert "colab.research.google.com/github/someone/fork/blob/main/colabs/clop.ipynb" in readme
    assert _read("README.md") != readme  # the checkout's README is untouched


def _first(text: str, term: str) -> str:
    """The paragraph (or list item) where `term` first appears."""
    i = text.index(term)
    start = max(text.rfind("\n\n", 0, i), text.rfind("\n- ", 0, i))
    end = min(j for j in (text.find("\n\n", i), text.find("\n- ", i)) if j != -1)
    return text[start:end]


def test_readme_defines_etf_psi_eta_k_where_they_first_appear():
    readme = _read("README.md")
    assert "equiangular tight frame" in _first(readme, "ETF")
    psi = _first(readme, "ψ")
    assert "margins" in psi and "negatives drawn per anchor" in psi
    assert "harder negatives" in _first(readme, "η")
    code = readme[readme.index("```python") :]
    k_line = next(ln for ln in code.splitlines() if "k=256" in ln or "k = 256" in ln)
    assert "negatives per anchor" in k_line


def test_readme_names_the_licence_and_the_release_files():
    readme = _read("README.md")
    assert "Apache License 2.0" in readme and "(LICENSE)" in readme
    assert "(CHANGELOG.md)" in readme and "python -m build" in readme


def test_readme_says_which_smoke_runs_need_their_data():
    smoke = " ".join(_first(_read("README.md"), "**Quick check**").split())
    assert "`synthetic`, `clop_synthetic` and `digits` need nothing" in smoke
    for name in ("cifar100", "fashion_mnist", "tinyimagenet"):
        assert f"`{name}`" in smoke


def test_durations_are_measured_figures_not_guesses():
    vague = re.compile(r"few seconds|seconds-long check|well under a minute")
    found = [p for p, text in _documents().items() if vague.search(text)]
    assert not found, f"unmeasured durations in {found}"
    readme = _read("README.md")
    smoke = _first(readme, "**Quick check**")
    assert re.search(r"`digits:smoke` takes \d+ CPU-seconds", smoke)
    assert "/usr/bin/time -v python -m hncl_jax.main" in " ".join(smoke.split())
    notebooks = _first(readme, "executed at `HNCL_QUICK=1` size")
    assert re.search(r"\d+ to \d+ CPU-seconds", notebooks) and "/usr/bin/time" in notebooks
