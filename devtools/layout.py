"""Figures on the code's layout: the longest functions, which apps import which, import cycles, modules per package.

    python -m devtools.layout

(needs grimp, which import-linter brings: requirements-dev.txt)
"""

import ast
import itertools
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def packages() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests")


def function_lengths(names: list[str]) -> list[tuple[int, str]]:
    lengths = []
    for package in names:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    lengths.append((length, f"{path.relative_to(ROOT)}:{node.name}"))
    return sorted(lengths, reverse=True)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Groups of modules that import each other, directly or not (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while (member := stack.pop()) != module:
                group.append(member)
            group.append(module)
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def main() -> None:
    sys.path.insert(0, str(ROOT))
    names = packages()
    lengths = function_lengths(names)
    print("longest functions:")
    for length, name in lengths[:12]:
        print(f"  {length:4d}  {name}")
    print(f"functions over 40 lines: {sum(n > 40 for n, _ in lengths)}; over 60: {sum(n > 60 for n, _ in lengths)}")

    graph = grimp.build_graph(*names, include_external_packages=False, cache_dir=None)
    imports = {
        (a, b)
        for a, b in itertools.permutations(names, 2)
        if graph.direct_import_exists(importer=a, imported=b, as_packages=True)
    }
    both_ways = sorted({tuple(sorted(pair)) for pair in imports if pair[::-1] in imports})
    print(f"app pairs importing each other: {len(both_ways)} {both_ways}")
    groups = cycles(graph)
    print(f"module import cycles (imports inside functions count too): {len(groups)}")
    for group in groups:
        print("  ", " <-> ".join(group))
    for package in names:
        print(f"modules in {package}/: {sum(1 for m in graph.modules if m.split('.')[0] == package)}")


if __name__ == "__main__":
    main()
