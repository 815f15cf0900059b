"""The import graph of host/: no cycle between packages, and no layer importing one above it.

Layers, top first: the entry points (cli, app, prepare, config, chat, the
public host/__init__), then set-up (host/setup), then the rest.  The
binding, the engine, the worker, rag, the runtime and the mod APIs never
import set-up or an entry point: they take paths and settings from above.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "host"

ENTRY = {"host.cli", "host.app", "host.startup", "host.config", "host.chat", "host"}
LOWER = ("host.llama", "host.engine", "host.rag", "host.runtime", "host.api", "host.worker",
         "host.messages", "host.errors", "host.ui", "host.remote", "host.results")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every host.* module a file imports, at any depth (lazy imports inside functions too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = set()  # `if TYPE_CHECKING:` blocks: annotations, not imports at run time
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            typing_only |= {id(n) for b in node.body for n in ast.walk(b)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("host")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("host"):
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in HOST.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def _layer(module: str) -> str:
    if module in ENTRY:
        return "entry"
    if module.startswith("host.setup"):
        return "setup"
    return "lower"


def test_no_lower_layer_imports_setup_or_an_entry_point():
    bad = [f"{m} imports {d}" for m, deps in _graph().items() if _layer(m) == "lower"
           for d in deps if _layer(d) != "lower"]
    assert bad == [], bad


def test_setup_imports_no_entry_point_outside_its_own_command_line():
    # host/setup/__main__.py and doctor's __main__ are set-up's command line: an entry point
    bad = [f"{m} imports {d}" for m, deps in _graph().items()
           if _layer(m) == "setup" and not m.endswith("__main__") and m != "host.setup.doctor"
           for d in deps if _layer(d) == "entry"]
    assert bad == [], bad


def test_no_import_cycle_between_packages():
    def package(m: str) -> str:
        parts = m.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 else m

    edges = defaultdict(set)
    for m, deps in _graph().items():
        for d in deps:
            if package(d) != package(m) and package(m) != "host" and package(d) != "host":
                edges[package(m)].add(package(d))
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(edges[node]):
            visit(nxt)
        stack.pop()

    for node in sorted(edges):
        visit(node)
    assert cycles == [], cycles
