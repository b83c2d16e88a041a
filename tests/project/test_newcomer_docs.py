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
