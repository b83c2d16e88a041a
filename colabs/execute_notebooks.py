"""Executes the notebooks of colabs/ and writes each `<name>.ipynb` with its outputs.

    HNCL_QUICK=1 python colabs/execute_notebooks.py              # all, at CPU size
    HNCL_QUICK=1 python colabs/execute_notebooks.py theory clop  # some
    python colabs/execute_notebooks.py --out /tmp/executed       # full size, copies elsewhere
    python colabs/execute_notebooks.py --set-repository           # after editing pyproject

Each notebook's source is the jupytext percent script `colabs/<name>.py` (edit that file;
Jupyter with jupytext opens either file and keeps the pair in step). This script turns the
script into a notebook, runs it top to bottom in the "python3" kernel of this interpreter
(the environment, HNCL_QUICK, HNCL_WORKDIR, ..., is passed on) and writes the result. The
committed `.ipynb` files are the QUICK-size executions, so their figures show on the
repository page; tests/project/test_notebooks.py executes them again and checks what they print.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOKS = ("theory", "synthetic_collapse", "cifar_collapse", "near_nc_warm_start", "clop")


def read(name: str):
    """The notebook of `colabs/<name>.py` (no outputs), as an nbformat NotebookNode."""
    import jupytext

    return jupytext.read(os.path.join(HERE, f"{name}.py"))


def execute(name: str, output: str | None = None, timeout: int = 3600):
    """Runs notebook `name` top to bottom; raises nbclient's CellExecutionError on failure.

    Args:
      name: one of NOTEBOOKS.
      output: where to write the executed notebook (None: nowhere).
      timeout: seconds allowed per cell.

    Returns:
      the executed notebook.
    """
    import nbclient
    import nbformat

    nb = read(name)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": HERE}}
    )
    client.execute()
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w", encoding="utf-8") as fh:
            nbformat.write(nb, fh)
    return nb


def repository(pyproject: str = os.path.join(HERE, "..", "pyproject.toml")) -> str:
    """The repository address recorded in pyproject.toml's `[project.urls] Repository`."""
    with open(pyproject, "rb") as fh:
        return tomllib.load(fh)["project"]["urls"]["Repository"]


def set_repository(url: str, folder: str = HERE) -> list[str]:
    """Writes `url` (https://github.com/<owner>/<name>) into the notebooks of `folder`.

    Rewrites each `<name>.py` and `<name>.ipynb`: the install cell's `REPOSITORY = "..."`
    line and the "Open in Colab" badge, so a fork's notebooks install from and open in the
    fork; and the badges of the README.md beside `folder`, where there is one. Returns the
    files changed.
    """
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", url)
    if not match:
        raise ValueError(f"Repository {url!r} is not of the form https://github.com/<owner>/<name>")
    owner_repo = match.group(1)
    changed = []
    readme = os.path.join(folder, os.pardir, "README.md")
    for path in sorted(
        glob.glob(os.path.join(folder, "*.py")) + glob.glob(os.path.join(folder, "*.ipynb"))
    ) + ([os.path.normpath(readme)] if os.path.isfile(readme) else []):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        new = re.sub(
            r'REPOSITORY = \\?"https://github\.com/[\w.-]+/[\w.-]+\\?"',
            lambda m: (
                m.group(0).split("https://")[0]
                + f"https://github.com/{owner_repo}"
                + ('\\"' if m.group(0).endswith('\\"') else '"')
            ),
            text,
        )
        new = re.sub(
            r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/",
            f"colab.research.google.com/github/{owner_repo}/blob/",
            new,
        )
        if new != text:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(new)
            changed.append(path)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"notebooks to run (default: all of {NOTEBOOKS})")
    parser.add_argument("--out", default=HERE, help="folder for the executed .ipynb files")
    parser.add_argument(
        "--set-repository",
        action="store_true",
        help="write pyproject's [project.urls] Repository into the notebooks, run nothing",
    )
    args = parser.parse_args()
    if args.set_repository:
        for path in set_repository(repository()):
            print("updated", path)
        return
    for name in args.names or NOTEBOOKS:
        if name not in NOTEBOOKS:
            parser.error(f"unknown notebook {name!r}; choose from {', '.join(NOTEBOOKS)}")
        start = time.perf_counter()
        path = os.path.join(args.out, f"{name}.ipynb")
        execute(name, path)
        print(f"executed {name} in {time.perf_counter() - start:.0f} s -> {path}")


if __name__ == "__main__":
    main()
