"""The documentation stands on its own: no pointers outside the repository, and every
`docs/math.md §n` reference names a section that exists."""

import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTSIDE = re.compile(r"\.\./shared|seeds/00|MATH|ARCHITECTURE")


def _tracked_text_files() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    keep = (".py", ".md", ".toml", ".ipynb", ".txt", ".cfg", ".yaml", ".yml")
    return [f for f in out.splitlines() if f.endswith(keep) and os.path.isfile(f"{ROOT}/{f}")]


def _read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        return fh.read()


def test_nothing_points_outside_the_repository():
    this = os.path.relpath(__file__, ROOT)
    hits = [
        f"{f}:{i}: {line.strip()[:80]}"
        for f in _tracked_text_files()
        if not f.startswith("docs/") and f != this
        for i, line in enumerate(_read(f).splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, "references to files users do not have:\n" + "\n".join(hits)


def test_math_references_name_existing_sections():
    sections = set(re.findall(r"(?m)^## (\d+)\.", _read("docs/math.md")))
    assert sections == {str(i) for i in range(14)}
    cited = set()
    for f in _tracked_text_files():
        for ref in re.findall(r"docs/math\.md §(\d+)(?:-(\d+))?", _read(f)):
            cited.update(n for n in ref if n)
    assert cited, "no docs/math.md references found"
    assert cited <= sections, f"docs/math.md has no section(s) {sorted(cited - sections)}"


def test_architecture_page_names_every_module():
    text = _read("docs/architecture.md")
    import hncl_jax

    for name in hncl_jax._MODULES:
        assert f"`{name}`" in text, f"docs/architecture.md omits {name}"
