"""Lower layers never import higher ones: the package graph is checked from the source."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "convscope"

#: What each part of convscope may import besides itself and ``convscope.version`` (which imports nothing).
ALLOWED = {
    "version": set(),
    "errors": set(),
    "hooks": {"errors"},
    "network": {"errors", "hooks"},
    "data": {"errors", "network"},
    "stats": {"errors"},
    "scan": {"errors", "hooks", "network", "data", "stats"},
    "project": {"errors", "hooks", "network"},
    "render": {"errors", "network"},
    "views": {"errors", "network", "data", "scan", "project", "render", "stats", "featurevis"},
    "atlas": {"errors", "network", "data", "scan", "render", "views", "stats", "featurevis"},
    "pipeline": {"errors", "network", "data", "scan", "project", "atlas", "stats"},
    "demo": {"errors", "network", "data", "scan", "project", "render", "atlas", "pipeline", "analysis"},
    "featurevis": {"errors", "hooks", "network", "project", "render"},
    "style": {"errors", "hooks", "network", "data", "render", "atlas"},
    "notebook": {"errors", "network", "render", "views", "atlas"},
    "analysis": {"errors", "hooks", "network", "data", "scan", "project", "render", "views", "atlas", "stats"},
    "cli": {"errors", "network", "data", "scan", "project", "atlas", "pipeline", "demo", "style", "stats", "featurevis", "analysis"},
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
