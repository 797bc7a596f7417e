"""The import graph of our packages, read from the source (ast), for the layout tests."""

from __future__ import annotations

import ast
from pathlib import Path


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str], *, nested: bool) -> set[str]:
    """Modules of ours that `path` imports. Top level only (not under TYPE_CHECKING) unless
    `nested`: then imports inside functions count too (a cycle hidden by a lazy import is one)."""
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if nested or isinstance(node, ast.If | ast.Try):
            nodes += list(ast.walk(node))
        else:
            nodes.append(node)
    found: set[str] = set()
    for sub in nodes:
        if isinstance(sub, ast.Import):
            found.update(a.name for a in sub.names if a.name in modules)
        elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
            for alias in sub.names:
                full = f"{sub.module}.{alias.name}"
                found.add(full if full in modules else sub.module)
    return found & modules


def graph(package: Path, src: Path, *, nested: bool) -> dict[str, set[str]]:
    paths = {module_name(p, src): p for p in package.rglob("*.py")}
    return {name: imports(path, set(paths), nested=nested) - {name} for name, path in paths.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                found.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    return found


def too_big(package: Path, src: Path, max_lines: int = 400) -> list[str]:
    """Modules over max_lines that do not say why at their top ("over ~400 lines")."""
    return [
        f"{path.relative_to(src)}: {n} lines"
        for path in sorted(package.rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > max_lines and "over ~400 lines" not in path.read_text()[:2000]
    ]
