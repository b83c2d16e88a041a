"""`python -m hncl_jax.reproduce <section> [--size=...] [--write_doc] ...`: computes one
section of REPRODUCTION.md (training where it needs to, resumable), writes its results
file, and regenerates the section (and its figures) from that file.

Every section goes through the same steps (`main`): its size checked against its
`SIZES`, its own options (`add_arguments` / `options`, where it has them) checked, then
`compute` (skipped with `--write_doc`), the results file, `figures` (where it draws) and
`render` into the document.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from types import ModuleType

from hncl_jax.reproduce import SECTIONS, common, section


def _parser(modules: Mapping[str, ModuleType]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hncl_jax.reproduce",
        description="Compute (train where needed, resumable) one section of REPRODUCTION.md, "
        "write its results file, and regenerate the section from it.",
    )
    p.add_argument("section", choices=SECTIONS)
    p.add_argument(
        "--root",
        default=None,
        help="parent folder of the runs (default runs/reproduce/<section>[_<size>])",
    )
    sizes = "; ".join(
        f"{name} {tuple(m.SIZES)} (default {m.DEFAULT_SIZE})" for name, m in modules.items()
    )
    p.add_argument("--size", default=None, help=f"run size: {sizes}")
    # Sections sharing one `add_arguments` (the trained ones') add its options once.
    for add in dict.fromkeys(
        m.add_arguments for m in modules.values() if hasattr(m, "add_arguments")
    ):
        add(p)
    p.add_argument("--results", default=None, help="results file (default results/<section>.json)")
    p.add_argument(
        "--write_doc",
        action="store_true",
        help="only regenerate the REPRODUCTION.md section (and figures) from the results file",
    )
    p.add_argument("--doc", default=common.DOC, help="the document to update")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    modules = {name: section(name) for name in SECTIONS}
    parser = _parser(modules)
    args = parser.parse_args(argv)
    m = modules[args.section]
    size = args.size or m.DEFAULT_SIZE
    if size not in m.SIZES:
        parser.error(f"--size={size!r}: {m.NAME} has sizes {tuple(m.SIZES)}.")
    options = {}
    if hasattr(m, "options"):
        try:
            options = m.options(args, size)
        except ValueError as e:
            parser.error(str(e))
    root = args.root or common.default_root(m.NAME, size, m.UNSUFFIXED_SIZE)
    out = args.results or m.results_path(size)
    if not args.write_doc:
        results = m.compute(root, size, **options)
        if results is None:  # runs queued or running on SLURM: nothing to write yet
            print(f"rerun the same command once the runs have finished to write {out}")
            return 0
        common.write_results(results, out)
        print(f"wrote {out}")
    try:
        results = common.read_results(out, m.NAME)
    except ValueError as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    if hasattr(m, "figures"):
        m.figures(results, os.path.dirname(os.path.abspath(out)))
    common.write_section(m, results, args.doc)
    print(f"wrote the {m.NAME} section of {args.doc} from {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
