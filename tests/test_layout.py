"""The shape of the library: no import cycles, one file name per module, short files, and a
README Layout table that lists every folder."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "rlsp"
MODULES = sorted(LIBRARY.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {module_name(p): p for p in MODULES}


def imported_modules(path: Path) -> set[str]:
    """The rlsp modules ``path`` imports anywhere in it (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlsp"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in NAMES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rlsp"))
    return {name for name in found if name in NAMES}


def test_no_import_cycles():
    me = {name: imported_modules(path) for name, path in NAMES.items()}
    # Importing a package's module runs the package's __init__ first; a module importing its own
    # package is not a cycle that Python trips on, so edges to ancestors are left out.
    graph = {name: {d for d in deps if not name.startswith(d + ".") and d != name} for name, deps in me.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_two_modules_share_a_file_name():
    counts = Counter(p.name for p in MODULES if p.name != "__init__.py")
    assert [name for name, n in counts.items() if n > 1] == []


def test_no_module_is_much_over_300_lines():
    long = {str(p.relative_to(REPO)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 310}
    assert long == {}


def test_readme_layout_lists_every_folder():
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([^`]+)/`", table, flags=re.MULTILINE))
    packages = {str(p.parent.relative_to(REPO)) for p in LIBRARY.rglob("__init__.py")}
    top = {p.name for p in REPO.iterdir() if p.is_dir() and any(p.glob("*.py")) | any(p.glob("*.yaml"))
           and not p.name.startswith(".") and p.name != "build"}
    assert packages | top <= listed, sorted((packages | top) - listed)
    folders_that_exist = {entry for entry in listed if (REPO / entry).is_dir()}
    planned = listed - folders_that_exist
    # folders the table announces for later are marked as such
    for entry in planned:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{entry}/`"))
        assert "(planned" in row, row


def test_every_function_fits_on_a_screen():
    """60 lines at most: a longer function is split by moving whole phases into functions named
    after them (the training step, evaluation, the SFT trainer's hooks, reward checking)."""
    long = {f"{p.relative_to(REPO)}:{node.name}": node.end_lineno - node.lineno + 1
            for p in MODULES for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60}
    assert long == {}


def test_commands_live_in_the_module_named_after_them():
    """``rlsp X`` runs ``rlsp/commands/X.py``; a command's body lives in rlsp/commands, not in a
    library package."""
    from rlsp.cli import COMMANDS

    assert {p.stem for p in (LIBRARY / "commands").glob("*.py")} >= set(COMMANDS)
    bodies = [str(p.relative_to(REPO)) for p in MODULES if p.stem.endswith("_command")]
    assert bodies == []


def test_one_function_per_name_across_modules_that_load_things():
    """``load_run`` once meant two things (a training checkpoint, a rollout log); each loader has
    its own name."""
    defined = Counter(node.name for p in MODULES for node in ast.parse(p.read_text()).body
                      if isinstance(node, ast.FunctionDef) and node.name.startswith(("load_", "save_")))
    assert [name for name, n in defined.items() if n > 1] == []
