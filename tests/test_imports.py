"""The package's shape, checked from the source: every module imports, the import graph has no
cycle, the node side never reaches into the publisher or the generators, and the public API
cannot be shadowed by a submodule of the same name.

The graph is built from the AST of every module under src/depotdelivery: every ``import`` /
``from ... import`` of a depotdelivery module, wherever it sits (module level or inside a
function: a lazy import still couples the two modules), except under ``if TYPE_CHECKING:``
(annotations only, never executed). ``from package import name`` is an edge to the submodule
``package.name`` when that is a module, else to ``package``.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import depotdelivery

SRC = Path(depotdelivery.__file__).resolve().parent
PACKAGE = "depotdelivery"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != module}


def _graph() -> dict[str, set[str]]:
    return {name: _imports(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py")
            for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
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
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_the_graph_sees_the_imports():
    graph = _graph()
    # spot checks that the parser follows the spellings the package uses
    assert "depotdelivery.node.session" in graph["depotdelivery.node.prepare"]  # module level
    assert "depotdelivery.node.select" in graph["depotdelivery.node.prepare"]  # inside a function
    assert "depotdelivery.node.hydrate" in graph["depotdelivery.node.prepare"]  # from package import module
    assert "depotdelivery.cpu" not in graph["depotdelivery.node.check"]  # under TYPE_CHECKING only


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_a_cycle_is_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_node_never_imports_the_publisher_or_the_generators():
    graph = _graph()
    for name in graph:
        if name.startswith("depotdelivery.node"):
            bad = sorted(m for m in _reachable(graph, name)
                         if m.startswith(("depotdelivery.publisher", "depotdelivery.synth", "depotdelivery.cli",
                                          "depotdelivery.demo")))
            assert bad == [], f"{name} reaches {bad}"


def test_the_readers_never_import_the_generators_and_the_demo_never_the_cli():
    graph = _graph()
    for name in graph:
        if name.startswith(("depotdelivery.julia", "depotdelivery.store", "depotdelivery.cpu")):
            assert not any(m.startswith(("depotdelivery.synth", "depotdelivery.publisher", "depotdelivery.node"))
                           for m in _reachable(graph, name)), name
    assert not any(m.startswith("depotdelivery.cli") for m in _reachable(graph, "depotdelivery.demo"))


def _submodules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(depotdelivery.__path__, f"{PACKAGE}.")
                  if not m.name.endswith("__main__"))


def test_every_module_imports():
    # every source module, and the compiled extension (depotdelivery._cpuid) when it is built
    assert set(MODULES) - {PACKAGE, f"{PACKAGE}.__main__"} <= set(_submodules())
    for name in _submodules():
        importlib.import_module(name)


def test_no_public_name_is_also_a_submodule():
    submodules = {m.name.rpartition(".")[2] for m in pkgutil.iter_modules(depotdelivery.__path__)}
    assert sorted(set(depotdelivery.__all__) & submodules) == []


def test_public_names_survive_importing_every_submodule():
    # a fresh interpreter: this test process has imported submodules already
    code = f"""
import importlib, depotdelivery
before = {{name: getattr(depotdelivery, name) for name in depotdelivery.__all__}}
for name in {_submodules()!r}:
    importlib.import_module(name)
after = {{name: getattr(depotdelivery, name) for name in depotdelivery.__all__}}
changed = sorted(n for n in before if after[n] is not before[n])
assert not changed, changed
from depotdelivery.publisher.publish import VariantInput
import depotdelivery.node.select
assert callable(depotdelivery.publish) and callable(depotdelivery.select), (depotdelivery.publish, depotdelivery.select)
assert callable(depotdelivery.prepare) and callable(depotdelivery.verify)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_are_complete_and_resolve():
    for name in depotdelivery.__all__:
        assert getattr(depotdelivery, name) is not None
    assert sorted(depotdelivery.__all__) == sorted(set(depotdelivery.__all__))
    assert dir(depotdelivery) == sorted(depotdelivery.__all__)
    for module in _submodules():
        mod = importlib.import_module(module)
        declared = getattr(mod, "__all__", None)
        assert declared is not None or module.rpartition(".")[2].startswith("_") or mod.__file__.endswith(
            "__init__.py"), f"{module} has no __all__"
        for name in declared or ():
            assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which it does not define"


@pytest.mark.parametrize("name", ["prepare", "publish", "select", "verify", "detect", "keygen"])
def test_the_api_parameters_are_visible(name):
    import inspect

    params = inspect.signature(getattr(depotdelivery, name)).parameters.values()
    assert not any(p.kind is p.VAR_KEYWORD for p in params), f"{name} hides its parameters behind **"


def test_py_typed_is_shipped():
    assert (SRC / "py.typed").is_file()
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text()
    assert 'depotdelivery = ["py.typed"]' in pyproject
