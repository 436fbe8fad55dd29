"""The house layout: no import cycles, no hidden (function-local) imports of the library's
own modules outside the lazy CLI plugins, and a docstring on every function a runbook calls."""
from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "fedcloud_lib"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """(library modules imported at the top level, function-local library imports)."""
    module = _module_name(path)
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    local: list[tuple[int, str]] = []

    def targets(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        assert isinstance(node, ast.ImportFrom)
        base = _resolve(module, is_pkg, node.level, node.module)
        out = []
        for a in node.names:  # `from . import x` may name a submodule
            sub = f"{base}.{a.name}"
            out.append(sub if (LIB.parent / (sub.replace(".", "/") + ".py")).exists()
                       or (LIB.parent / sub.replace(".", "/")).is_dir() else base)
        return out

    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            top |= {t for t in targets(node) if t.startswith("fedcloud_lib")}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    local += [(inner.lineno, t) for t in targets(inner)
                              if t.startswith("fedcloud_lib")]
    return top, local


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in LIB.rglob("*.py"):
        mod = _module_name(path)
        top, _ = _imports(path)
        # a package importing its own submodules (re-exports) is not a dependency cycle
        graph[mod] = {t for t in top if not (path.name == "__init__.py" and t.startswith(mod + "."))}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # importing a.b.c imports the packages a and a.b first
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt in graph and state.get(nxt) is None:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for mod in sorted(graph):
        if state.get(mod) is None:
            visit(mod, [mod])
    return cycles


def test_no_import_cycles():
    graph = _graph()
    assert "fedcloud_lib.plan" in graph["fedcloud_lib.instance.apply"]  # the graph is real
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_function_local_imports_of_the_library_outside_cli_plugins():
    found = []
    for path in LIB.rglob("*.py"):
        if path.name == "cli.py":
            continue  # the lazy plugins: a command imports only what it runs
        _, local = _imports(path)
        found += [f"{path.relative_to(ROOT)}:{line} imports {t}" for line, t in local]
    assert found == []


def _runbook_calls() -> set[tuple[str, str]]:
    """(runbook, dotted call) for every call into fedcloud_lib in the committed runbooks."""
    calls = set()
    for nb_path in sorted((ROOT / "runbooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        aliases: dict[str, str] = {}
        code = [c.source for c in nb.cells if c.cell_type == "code"
                and "parameters" not in c.metadata.get("tags", [])]
        for src in code:
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname \
                            else a.name.split(".")[0]
                elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fedcloud_lib"):
                    for a in node.names:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for src in code:
            for node in ast.walk(ast.parse(src)):
                if not isinstance(node, ast.Call):
                    continue
                parts, f = [], node.func
                while isinstance(f, ast.Attribute):
                    parts.insert(0, f.attr)
                    f = f.value
                if isinstance(f, ast.Name) and f.id in aliases:
                    dotted = ".".join([aliases[f.id], *parts])
                    if dotted.startswith("fedcloud_lib"):
                        calls.add((nb_path.stem, dotted))
    return calls


def _resolve_object(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise AssertionError(f"cannot resolve {dotted}")


def test_every_function_a_runbook_calls_has_a_docstring():
    calls = _runbook_calls()
    assert len(calls) > 10  # the runbooks do call the library
    missing = []
    for runbook, dotted in sorted(calls):
        obj = _resolve_object(dotted)
        if callable(obj) and not (inspect.getdoc(obj) or "").strip():
            missing.append(f"{runbook}: {dotted}")
    assert missing == []
