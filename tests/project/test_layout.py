"""The package's layout: the library at the top, the trainer, reproduction and benchmark
wings in folders of their own, and the limits that keep them apart and readable.

Everything here reads the source with `ast` (nothing is imported), so a check names the
offending file and line. Run this file alone to see the whole state:
`python -m pytest -q tests/project/test_layout.py -rA`.
"""

from __future__ import annotations

import ast
import functools
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "hncl_jax")
NAME = "hncl_jax"

# The library: top-level modules users import, and data/ (docs/architecture.md).
LIBRARY = {
    "__init__",
    "_loss_utils",
    "geometry",
    "hardening",
    "losses",
    "baselines",
    "models",
    "layers",
    "evaluation",
    "checks",
    "runtime",
    "colab",
    "data",
}
# The commands at the top level besides the library (a module or a package each).
COMMANDS = {"main", "sweep"}
WINGS = ("train", "reproduce", "benchmark")
# The largest module each wing may hold, in lines.
MAX_MODULE_LINES = {"reproduce": 700, "benchmark": 400, "train": 1050}
MAX_FUNCTION_CODE_LINES = 80
MAX_LONG_FUNCTIONS = 3  # functions over MAX_FUNCTION_CODE_LINES in the whole package
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "__pycache__", "node_modules"}


# ----------------------------------------------------------------------------------------
# The package's modules and their imports.


def _walk(folder: str, package: str) -> dict[str, str]:
    """{dotted module name: path} of every .py file under `folder`, the package `package`."""
    found = {}
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for file in sorted(files):
            if not file.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(here, file), folder)[: -len(".py")]
            parts = [package, *rel.split(os.sep)]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = os.path.join(here, file)
    return found


@functools.cache
def _modules() -> dict[str, str]:
    """{dotted module name: path} of every .py file under hncl_jax/."""
    return _walk(PACKAGE, NAME)


@functools.cache
def _graph_modules() -> dict[str, str]:
    """The package's modules and the shipped configs (configs/ installs as hncl_jax.configs)."""
    return {**_modules(), **_walk(os.path.join(ROOT, "configs"), f"{NAME}.configs")}


@functools.cache
def _source(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


@functools.cache
def _tree(path: str) -> ast.Module:
    return ast.parse(_source(path), filename=path)


def _rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


def _is_package(module: str) -> bool:
    return _graph_modules()[module].endswith("__init__.py")


def _resolve(name: str) -> str | None:
    """The deepest module of the package that `name` (dotted) names, or None."""
    modules = _graph_modules()
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import statement in `module`.

    All statements count, those inside functions and `if TYPE_CHECKING:` included.
    `from P import x` is an import of the module P.x when x is a module or subpackage,
    else of P itself (its `__init__`). Importing a submodule is not counted as an import
    of its parent packages' `__init__` (that would make every package that re-exports
    its submodules a cycle); a submodule that imports its own package by name is.
    """
    path = _graph_modules()[module]
    package = module if _is_package(module) else module.rpartition(".")[0]
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target is not None:
                    found.append((target, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source != NAME and not source.startswith(NAME + "."):
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                target = full if full in _graph_modules() else _resolve(source)
                if target is not None:
                    found.append((target, node.lineno))
    return found


@functools.cache
def _graph() -> dict[str, dict[str, int]]:
    """{module: {imported module: first line}}, the package's own imports, self-loops out."""
    graph = {}
    for module in _graph_modules():
        edges: dict[str, int] = {}
        for target, line in _imports(module):
            if target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


def _one_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    """A shortest closed path through the component's first module, with import lines."""
    inside = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = paths[v] + [start]
                    return (
                        " -> ".join(
                            f"{a} ({_rel(_graph_modules()[a])}:{graph[a][b]})"
                            for a, b in zip(path, path[1:], strict=False)
                        )
                        + f" -> {start}"
                    )
                if w in inside and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return " <-> ".join(component)


def _group(module: str) -> str:
    """'library', a wing's name, 'sweep', 'main', or 'other' (a stray top-level module)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "library"  # hncl_jax/__init__.py
    top = parts[1]
    if top == "configs":
        return "configs"
    if top in WINGS or top in COMMANDS:
        return top
    if top in LIBRARY:
        return "library"
    return "other"


# ----------------------------------------------------------------------------------------
# (a) and (b): the import graph.


def test_the_import_graph_has_no_cycles():
    graph = _graph()
    cycles = _cycles(graph)
    print(
        f"import graph: {len(graph)} modules, {sum(map(len, graph.values()))} edges, "
        f"{len(cycles)} cycles"
    )
    assert not cycles, (
        f"{len(cycles)} import cycle(s) in {NAME} (function-level imports count):\n"
        + ("\n".join(f"  {len(c)} modules {c}\n    e.g. {_one_cycle(graph, c)}" for c in cycles))
    )


def _imports_between(sources: set[str], forbidden: set[str]) -> list[str]:
    graph = _graph()
    return [
        f"{_rel(_graph_modules()[module])}:{line}: imports {target}"
        for module in sorted(graph)
        if _group(module) in sources
        for target, line in sorted(graph[module].items())
        if _group(target) in forbidden
    ]


def test_the_library_imports_no_wing_and_no_command():
    bad = _imports_between({"library"}, {*WINGS, *COMMANDS})
    assert not bad, (
        "the library (top-level modules and data/) must not import train/, reproduce/, "
        "benchmark/, sweep or main:\n" + "\n".join(bad)
    )


def test_the_trainer_imports_neither_reproduce_nor_benchmark():
    bad = _imports_between({"train"}, {"reproduce", "benchmark"})
    assert not bad, "train/ must not import reproduce/ or benchmark/:\n" + "\n".join(bad)


# The floors of docs/architecture.md: what each part of the package may import besides itself.
MAY_IMPORT = {
    "library": {"library"},
    "train": {"library", "configs"},
    "sweep": {"library", "configs", "train"},
    "benchmark": {"library", "configs", "train"},
    "reproduce": {"library", "configs", "train", "sweep"},
    "main": {"library", "configs", "train"},
    "configs": {"library", "configs"},
}


def test_each_floor_imports_only_the_floors_below():
    graph = _graph()
    bad = [
        f"{_rel(_graph_modules()[module])}:{line}: {_group(module)} imports {target}"
        for module in sorted(graph)
        for target, line in sorted(graph[module].items())
        if _group(target) != _group(module)
        and _group(target) not in MAY_IMPORT.get(_group(module), set())
    ]
    assert not bad, (
        "imports against the floors of docs/architecture.md (library < train < sweep, "
        "benchmark < reproduce; main on train):\n" + "\n".join(bad)
    )


def test_the_top_level_holds_the_library_and_the_commands_only():
    tops = sorted({m.split(".")[1] for m in _modules() if m.count(".") >= 1})
    stray = [t for t in tops if t not in LIBRARY | COMMANDS | set(WINGS)]
    assert not stray, (
        f"modules at the top of {NAME}/ that are neither the library "
        f"({sorted(LIBRARY)}), a command ({sorted(COMMANDS)}) nor a wing "
        f"({list(WINGS)}): {stray}; move them into their wing"
    )


# ----------------------------------------------------------------------------------------
# (c) and (d): sizes.


def _wing_modules(wing: str) -> list[str]:
    return [m for m in _modules() if _group(m) == wing]


def test_each_wing_has_no_module_over_its_line_limit():
    report, bad = [], []
    for wing, limit in MAX_MODULE_LINES.items():
        sizes = {m: len(_source(_modules()[m]).splitlines()) for m in _wing_modules(wing)}
        if not sizes:
            bad.append(f"{wing}/: no modules (the wing is hncl_jax/{wing}/)")
            continue
        largest = max(sizes, key=sizes.get)
        report.append(f"{wing}/: largest {_rel(_modules()[largest])} {sizes[largest]} lines")
        bad += [
            f"{_rel(_modules()[m])}: {n} lines > {limit}"
            for m, n in sorted(sizes.items())
            if n > limit
        ]
    print("\n".join(report))
    assert not bad, "modules over their wing's line limit:\n" + "\n".join(bad)


def _docstring_lines(tree: ast.AST) -> set[int]:
    """The lines of every docstring (module, class and function) in `tree`."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def _function_code_lines(path: str) -> list[tuple[str, int, int]]:
    """(qualified name, first line, code lines) of every function in the module at `path`.

    Code lines: the function's lines (decorators and signature included, nested
    functions too) that are not blank, not only a comment, and not in a docstring.
    """
    source = _source(path).splitlines()
    tree = _tree(path)
    docstrings = _docstring_lines(tree)
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                code = sum(
                    1
                    for i in range(first, child.end_lineno + 1)
                    if i not in docstrings
                    and source[i - 1].strip()
                    and not source[i - 1].strip().startswith("#")
                )
                found.append((name, child.lineno, code))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


@functools.cache
def _long_functions() -> list[tuple[str, str, int]]:
    """(module, 'path:line name', code lines) of the functions over the limit."""
    return [
        (module, f"{_rel(path)}:{line} {name}", code)
        for module, path in sorted(_modules().items())
        for name, line, code in _function_code_lines(path)
        if code > MAX_FUNCTION_CODE_LINES
    ]


def test_no_function_over_80_code_lines_in_reproduce_or_train():
    bad = [
        f"{where}: {code} code lines"
        for module, where, code in _long_functions()
        if _group(module) in ("reproduce", "train")
    ]
    assert not bad, (
        f"functions over {MAX_FUNCTION_CODE_LINES} code lines in reproduce/ or train/ "
        "(split them along their blocks):\n" + "\n".join(bad)
    )


def test_at_most_three_functions_over_80_code_lines_in_the_package():
    long = [f"{where}: {code} code lines" for _, where, code in _long_functions()]
    print(f"{len(long)} functions over {MAX_FUNCTION_CODE_LINES} code lines")
    assert len(long) <= MAX_LONG_FUNCTIONS, (
        f"{len(long)} functions over {MAX_FUNCTION_CODE_LINES} code lines in {NAME}/ "
        f"(at most {MAX_LONG_FUNCTIONS}):\n" + "\n".join(long)
    )


def test_the_code_lines_count_skips_docstrings_comments_and_blank_lines(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text(
        'def f(x):\n    """Doc.\n\n    More.\n    """\n    # a comment\n\n'
        '    y = """not a\n    docstring"""\n    def g():\n        """Doc."""\n'
        "        return 1\n    return x + y\n"
    )
    assert _function_code_lines(str(path)) == [("f", 1, 6), ("f.g", 10, 2)]


# ----------------------------------------------------------------------------------------
# (e) and (f): special cases and the tests' folders.


def _names_fashion_mnist(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value == "fashion_mnist"
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_fashion_mnist(e) for e in node.elts)
    return False


def test_reproduce_has_no_fashion_mnist_special_case():
    bad = []
    for module in _wing_modules("reproduce"):
        path = _modules()[module]
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Compare) and any(
                _names_fashion_mnist(side) for side in (node.left, *node.comparators)
            ):
                bad.append(f"{_rel(path)}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.MatchValue) and _names_fashion_mnist(node.value):
                bad.append(f"{_rel(path)}:{node.lineno}: case {ast.unparse(node.value)}")
    assert not bad, (
        "reproduce/ compares a section's name with 'fashion_mnist'; the section module "
        "should say what differs (its SIZES, compute, render):\n" + "\n".join(bad)
    )


def test_no_test_file_at_the_top_of_tests():
    tests = os.path.join(ROOT, "tests")
    stray = sorted(
        f
        for f in os.listdir(tests)
        if f.endswith(".py") and f not in ("conftest.py", "__init__.py")
    )
    assert not stray, (
        f"Python files at the top of tests/ (only conftest.py and __init__.py belong there; "
        f"tests go in library/, train/, reproduce/, benchmark/ or project/): {stray}"
    )


# ----------------------------------------------------------------------------------------
# (g): documents the package cites.

MD_PATH = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)?[\w][\w./-]*\.md)\b")
DOCS_PATH = re.compile(r"(?<![\w/.-])(docs/[\w./-]*[\w])")
# "STYLE point 3": a capitalized document name with a numbered point ("CLOP §5", a paper's
# section, is a citation of the paper, not of a document).
NAMED_DOC = re.compile(r"\b([A-Z][A-Z_]{2,})(?:\.md)?\s+(?:point|item|rule)s?\s*\d")
OUTSIDE = re.compile(r"\.\./shared|/work/shared")


@functools.cache
def _repo_files() -> tuple[set[str], set[str]]:
    """(relative paths, base names) of the repository's files and folders."""
    paths, names = set(), set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        for entry in dirs + files:
            rel = os.path.relpath(os.path.join(folder, entry), ROOT)
            paths.add(rel.replace(os.sep, "/"))
            names.add(entry)
    return paths, names


def _cites_missing(text: str) -> list[str]:
    """The documents `text` cites that the repository does not have, each once."""
    paths, names = _repo_files()
    missing = []
    for match in MD_PATH.finditer(text):
        cited = match.group(1)
        if "/" in cited:
            ok = os.path.normpath(cited).replace(os.sep, "/") in paths
        else:
            ok = cited in names
        if not ok:
            missing.append(cited)
    missing += [m.group(1) for m in DOCS_PATH.finditer(text) if m.group(1) not in paths]
    missing += [m.group(0) for m in NAMED_DOC.finditer(text) if f"{m.group(1)}.md" not in names]
    missing += [m.group(0) for m in OUTSIDE.finditer(text)]
    return list(dict.fromkeys(missing))


def test_the_package_cites_only_documents_the_repository_has():
    bad = [
        f"{_rel(path)}:{i}: {cited!r}"
        for path in sorted(_modules().values())
        for i, line in enumerate(_source(path).splitlines(), 1)
        for cited in _cites_missing(line)
    ]
    assert not bad, (
        "docstrings or comments cite documents the repository does not have (name a "
        "file of the repository, e.g. docs/math.md §3, or say what is meant):\n" + "\n".join(bad)
    )


def test_the_citation_check_catches_what_it_should():
    assert _cites_missing("see docs/math.md §3, README.md and REPRODUCTION.md") == []
    assert _cites_missing("follows STYLE point 4") == ["STYLE point 4"]
    assert _cites_missing("see docs/nowhere.md and NOWHERE.md") == ["docs/nowhere.md", "NOWHERE.md"]
    outside = "../" + "shared/design/notes.md"  # in two parts: test_docs scans this file
    assert _cites_missing(f"see {outside}") != []


# ----------------------------------------------------------------------------------------
# (h): docs/architecture.md names every module.

ARCH_PAGE = os.path.join(ROOT, "docs", "architecture.md")
MODULE_LIST = "## The package, floor by floor"
PY_PATH = re.compile(r"`([\w/]+\.py)`")


def _listed_modules(text: str) -> set[str]:
    """The modules named in the "module" column of the tables of `MODULE_LIST`'s section.

    Paths are relative to hncl_jax/ (`train/loop.py`); returned as `hncl_jax/train/loop.py`.
    """
    start = text.find("\n" + MODULE_LIST)
    assert start >= 0, f"docs/architecture.md has no section {MODULE_LIST!r}"
    end = text.find("\n## ", start + 1)
    listed, column = set(), None
    for line in text[start : end if end >= 0 else None].splitlines():
        if not line.startswith("|"):
            column = None  # a table ended
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if column is None:  # a table's header row
            column = cells.index("module") if "module" in cells else -1
        elif column >= 0 and column < len(cells):
            listed.update(f"{NAME}/{path}" for path in PY_PATH.findall(cells[column]))
    return listed


def test_the_module_list_reader_reads_the_module_column_only():
    text = (
        f"# Title\n\n{MODULE_LIST}\n\n| floor | what | imports |\n| --- | --- | --- |\n"
        "| 1 | `nope.py` | x |\n\n| floor | module | what |\n| --- | --- | --- |\n"
        "| 0 | `a.py`, `train/b.py` | see `c.py` |\n\n## Next\n\n| module |\n| --- |\n| `d.py` |\n"
    )
    assert _listed_modules(text) == {f"{NAME}/a.py", f"{NAME}/train/b.py"}


def test_the_architecture_page_lists_every_module():
    actual = {_rel(path).replace(os.sep, "/") for path in _modules().values()}
    listed = _listed_modules(_source(ARCH_PAGE))
    missing, stale = sorted(actual - listed), sorted(listed - actual)
    assert not missing and not stale, (
        f"docs/architecture.md's module tables ({MODULE_LIST!r}) are out of date:\n"
        + "".join(f"  not listed: {m}\n" for m in missing)
        + "".join(f"  listed but absent: {m}\n" for m in stale)
    )


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []
