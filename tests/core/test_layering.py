"""Lower layers never import higher ones, no modules import each other in a circle, and no
submodule imports the package's top level: the import graph is checked from the source."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "convscope"

#: What each part of convscope may import besides itself and ``convscope.version`` (which imports nothing).
ALLOWED = {
    "version": set(),
    "errors": set(),
    "progress": set(),
    "hooks": {"errors"},
    "network": {"errors", "hooks"},
    "data": {"errors", "network"},
    "stats": {"errors"},
    "scan": {"progress", "errors", "hooks", "network", "data", "stats"},
    "project": {"errors", "hooks", "network"},
    "render": {"errors", "network"},
    "views": {"errors", "network", "data", "scan", "project", "render", "stats", "featurevis"},
    "atlas": {"progress", "errors", "network", "data", "scan", "render", "views", "stats", "featurevis"},
    "pipeline": {"errors", "network", "data", "scan", "project", "atlas", "stats"},
    "demo": {"progress", "errors", "network", "data", "scan", "project", "render", "atlas", "pipeline", "analysis"},
    "featurevis": {"errors", "hooks", "network", "project", "render"},
    "style": {"errors", "hooks", "network", "data", "render", "atlas"},
    "notebook": {"errors", "network", "render", "views", "atlas"},
    "analysis": {"progress", "errors", "hooks", "network", "data", "scan", "project", "render", "views", "atlas", "stats"},
    "explain": {"errors", "hooks", "network", "data", "scan", "render", "atlas", "notebook", "project"},
    "circuits": {"progress", "errors", "hooks", "network", "data", "scan", "render", "atlas", "notebook", "explain"},
    "cli_help": set(),
    "cli": {"cli_help", "errors", "network", "data", "scan", "project", "atlas", "pipeline", "demo", "style", "stats", "featurevis", "analysis", "explain", "circuits"},
}


def part(module: str) -> str | None:
    """``convscope.scan.gather`` -> ``scan``; ``None`` for the package itself."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[0] == "convscope" else None


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_module_imports_a_higher_layer():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        own = relative.parts[0].removesuffix(".py")
        if own in ("__init__", "__main__"):
            continue
        assert own in ALLOWED, f"{relative}: add its part to ALLOWED"
        for module in imports(path):
            target = part(module)
            if target is not None and target not in (own, "version") and target not in ALLOWED[own]:
                wrong.append(f"{relative} imports {module}")
    assert not wrong, "\n".join(wrong)


def module_name(path: Path) -> str:
    """``.../convscope/scan/gather.py`` -> ``convscope.scan.gather``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_nodes(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Every import of ``path`` anywhere (module level, in functions, under ``TYPE_CHECKING``) as
    ``(module, names)``: ``import a.b`` -> ``("a.b", [])``, ``from a import b, c`` -> ``("a", ["b", "c"])``,
    relative imports resolved against the file's package."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module, [alias.name for alias in node.names]


def module_graph() -> dict[str, set[str]]:
    """``module -> the convscope modules it imports``; ``from pkg import submodule`` is an edge to
    the submodule, ``from pkg import name`` one to ``pkg``."""
    paths = {module_name(path): path for path in SRC.rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        targets = set()
        for imported, names in import_nodes(path):
            for name in names or [None]:
                if name is not None and f"{imported}.{name}" in paths:
                    targets.add(f"{imported}.{name}")
                elif imported in paths:
                    targets.add(imported)
        graph[module] = targets - {module}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, iterative), each sorted.

    Example:
        >>> cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()})
        [['a', 'b', 'c']]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycles_finds_every_circle_and_only_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a", "f"}, "g": set()}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_no_modules_import_each_other_in_a_circle():
    """Not even type-only circles: each module's imports, wherever they are in the file, lead only downwards."""
    found = cycles(module_graph())
    assert not found, "modules that import each other in a circle, one set a line:\n" + "\n".join(", ".join(c) for c in found)


def test_no_submodule_imports_the_package_top_level():
    """``convscope/__init__.py`` imports the parts; a part that imported it back (``import convscope``,
    ``from convscope import ...``) would need the whole package, and close a circle through it."""
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        if path != SRC / "__init__.py":
            wrong += [f"{path.relative_to(SRC)} imports convscope {names}" for module, names in import_nodes(path) if module == "convscope"]
    assert not wrong, "\n".join(wrong)
