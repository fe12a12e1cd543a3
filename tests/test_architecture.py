"""The architecture holds: imports point one way (``make lint`` runs import-linter's layers
contract from pyproject.toml), there is no import cycle at all, modules stay small, and the
package needs no ``type: ignore``."""

from __future__ import annotations

import pathlib

import grimp

PACKAGE = pathlib.Path(__file__).parent.parent / "llm_sse_mount"


def test_no_import_cycle_type_checking_imports_included() -> None:
    graph = grimp.build_graph("llm_sse_mount", exclude_type_checking_imports=False)
    # The package's own __init__ re-exports everything; every other module is in the graph.
    modules = sorted(m for m in graph.modules if m != "llm_sse_mount")
    edges = {
        m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in modules)
        for m in modules
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in edges[module]:
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in modules:
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_nothing_below_the_assembly_imports_it() -> None:
    graph = grimp.build_graph("llm_sse_mount", exclude_type_checking_imports=False)
    assembly = {
        "llm_sse_mount.mount",
        "llm_sse_mount.routes",
        "llm_sse_mount.browser_client",
        "llm_sse_mount.edge",
    }
    below = [m for m in graph.modules if m not in assembly and m != "llm_sse_mount"]
    offenders = [m for m in below if assembly & set(graph.find_modules_directly_imported_by(m))]
    assert offenders == []


def test_modules_stay_under_400_lines() -> None:
    sizes = {p.relative_to(PACKAGE): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}


def test_the_package_needs_no_type_ignore() -> None:
    hits = [
        f"{p.relative_to(PACKAGE)}:{i}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "type: ignore" in line
    ]
    assert hits == []
