"""The package's layers (docs: DESIGN.md, Layout): no upward import, training/ and decoding/
never import each other, and no import cycle between modules or between packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hourglass_w2v2"

#: lowest first; a module is in the layer of the longest prefix listed here
LAYERS = {
    "hourglass_w2v2": 1,
    "hourglass_w2v2.fileio": 1,
    "hourglass_w2v2.models": 1,
    "hourglass_w2v2.lang": 1,
    "hourglass_w2v2.scoring": 1,
    "hourglass_w2v2.greedy": 1,
    "hourglass_w2v2.data": 2,
    "hourglass_w2v2.convert": 2,
    "hourglass_w2v2.checkpoint": 2,
    "hourglass_w2v2.results": 2,
    "hourglass_w2v2.export": 2,
    "hourglass_w2v2.training": 3,
    "hourglass_w2v2.decoding": 3,
    "hourglass_w2v2.bin": 4,
}
#: same layer, but never importing each other
APART = [("hourglass_w2v2.training", "hourglass_w2v2.decoding")]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (annotations only)."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(path: Path, name: str) -> set[str]:
    """Every package module ``path`` imports at run time, wherever the import stands (lazy
    ones too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # "from pkg import module" imports that module
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    return {
        name: {m for m in _imports(path, name) if m in paths and m != name}
        for name, path in paths.items()
    }


def _group(module: str) -> str:
    """The longest prefix of ``module`` that :data:`LAYERS` lists."""
    prefixes = [k for k in LAYERS if module == k or module.startswith(k + ".")]
    best = max(prefixes, key=len, default="")
    if not best:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (tests/test_layering.py)")
    return best


GRAPH = _graph()


def test_every_module_is_in_a_layer():
    assert len(GRAPH) > 40
    for module in GRAPH:
        _group(module)


def test_no_import_goes_up_a_layer_or_across_training_and_decoding():
    wrong = []
    for module, deps in GRAPH.items():
        for dep in deps:
            src, dst = _group(module), _group(dep)
            if LAYERS[dst] > LAYERS[src] and dst != "hourglass_w2v2":
                wrong.append(f"{module} (layer {LAYERS[src]}) imports {dep} (layer {LAYERS[dst]})")
            for a, b in APART:
                if {src, dst} == {a, b} or (src.startswith(a) and dst.startswith(b)):
                    wrong.append(f"{module} imports {dep}: {a} and {b} stay apart")
    assert not wrong, "\n".join(sorted(wrong))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as the nodes along it), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_through_others():
    # a package's __init__ re-exporting its modules is not a cycle of code
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in GRAPH.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_two_packages_import_each_other():
    groups: dict[str, set[str]] = {}
    for module, deps in GRAPH.items():
        src = _group(module)
        groups.setdefault(src, set()).update(_group(d) for d in deps if _group(d) != src)
    groups = {g: {d for d in deps if d != "hourglass_w2v2"} for g, deps in groups.items()}
    assert _cycle(groups) is None, " -> ".join(_cycle(groups) or [])


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ],
)
def test_cycle_finder(graph, cycle):
    assert _cycle(graph) == cycle
