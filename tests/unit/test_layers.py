"""The house's plan, checked: every import points down a layer, and the node programs carry nothing
of the host's orchestration (README, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lab.engines.docker.compose_file import CODE_DIRS
from tests.helpers import ROOT

PACKAGES = ("wire", "node", "nat", "server", "peers", "relay", "lab", "bench")
NODE_PACKAGES = ("wire", "node", "nat", "server", "peers", "relay")
# What each part of the house may import of the project (besides itself). Listed top-down; the
# flow is topology -> engines -> experiment -> captures -> analysis -> report.
MAY_IMPORT = {
    "wire": set(),
    "node": {"wire"},
    "nat": {"wire", "node"},
    "server": {"wire", "node"},
    "peers": {"wire", "node"},
    "relay": {"wire", "node"},
    "lab.model": {"wire", "node", "nat"},  # lab's own root modules: topology, errors, paths, run_format
    "lab.engines": {"wire", "node", "nat", "server", "peers", "relay", "lab.model"},
    "lab.experiment": {"wire", "node", "nat", "lab.model", "lab.engines"},
    "lab.analysis": {"wire", "node", "nat", "lab.model"},  # node: the link model (node/link.py), as nat: the NAT model
    "lab.report": {"wire", "node", "nat", "lab.model", "lab.analysis"},
}
ROOT_MODULES = {"lab.topology", "lab.errors", "lab.paths", "lab.run_format"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Every project module a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    known = modules()
    return {name for name in found if name in known}


def part_of(module: str) -> str:
    """The part of the house a module belongs to (a key of MAY_IMPORT), or '' for the CLI and the bench."""
    if module in ROOT_MODULES:
        return "lab.model"
    top, _, rest = module.partition(".")
    if top == "lab":
        sub = rest.partition(".")[0]
        return f"lab.{sub}" if f"lab.{sub}" in MAY_IMPORT else ""
    return top if top in MAY_IMPORT else ""


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_import_points_down(module):
    part = part_of(module)
    if not part:  # lab.cli, lab.__main__ and the bench stand on top of everything
        return
    wrong = sorted(imp for imp in imports_of(modules()[module])
                   if part_of(imp) and part_of(imp) != part and part_of(imp) not in MAY_IMPORT[part])
    assert not wrong, f"{module} ({part}) imports {wrong}; it may import {sorted(MAY_IMPORT[part])}"


def test_the_layers_have_no_cycle():
    graph = {m: {i for i in imports_of(p) if i != m} for m, p in modules().items()}
    parts = {m: part_of(m) for m in graph}
    edges = {(parts[a], parts[b]) for a, deps in graph.items() for b in deps if parts[a] and parts[b] and parts[a] != parts[b]}
    back = sorted((a, b) for a, b in edges if (b, a) in edges)
    assert not back, f"parts that import each other: {back}"


def test_the_node_programs_carry_nothing_of_the_host():
    """What a container mounts is what its programs import, and nothing of lab/."""
    reached = set()
    for module, path in modules().items():
        if module.partition(".")[0] in NODE_PACKAGES:
            reached |= {imp.partition(".")[0] for imp in imports_of(path)}
    assert "lab" not in reached
    assert reached <= set(CODE_DIRS) == set(NODE_PACKAGES)
