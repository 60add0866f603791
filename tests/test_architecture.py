"""The package's layers, enforced: no import cycle (lazy imports included) and no lower layer importing a higher
one; library functions stay short. The layer order is written once, here (docs/architecture.md explains it)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "braintune"

# lowest first; a module may import from its own layer and the layers below it
LAYERS = [
    {"braintune", "errors", "registry", "provenance", "_moved"},  # foundation
    {"data"},
    {"backbones"},
    {"pooling", "heads", "losses"},
    {"evaluation"},
    {"downstream", "analysis"},
    {"config"},
    {"models", "controls"},
    {"training"},
    {"commands", "report"},
    {"cli", "__main__", "lm"},
]
LIBRARY = set().union(*LAYERS[:9])  # everything below the commands
MAX_FUNCTION_LINES = 60  # code lines: the docstring (numpydoc, often long) is not counted


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """braintune modules that ``name`` imports anywhere in its body (lazy imports inside functions too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            targets = subs if subs and len(subs) == len(node.names) else [target, *subs]
        else:
            continue
        for t in targets:
            while t not in known and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in known and t != name:
                found.add(t)
    return found


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"module {module} belongs to no layer; add its top-level name to LAYERS")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_lower_layer_imports_a_higher_one():
    wrong = [f"{a} (layer {layer_of(a)}) -> {b} (layer {layer_of(b)})"
             for a, targets in graph().items() for b in targets if layer_of(b) > layer_of(a)]
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    edges = graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_library_functions_are_short():
    long = []
    for name, path in modules().items():
        top = name.split(".")[1] if "." in name else name
        if top not in LIBRARY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                    n -= first.end_lineno - first.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert not long, f"library functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_the_layer_test_can_fail(tmp_path):
    """The checker itself: a planted wrong-way import and a planted cycle are found."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "low.py").write_text("def f():\n    from .high import g\n")
    (tmp_path / "pkg" / "high.py").write_text("from .low import f\n")
    known = {"pkg": tmp_path / "pkg" / "__init__.py", "pkg.low": tmp_path / "pkg" / "low.py", "pkg.high": tmp_path / "pkg" / "high.py"}
    assert imports("pkg.low", known["pkg.low"], known) == {"pkg.high"}  # the lazy import is seen
    assert imports("pkg.high", known["pkg.high"], known) == {"pkg.low"}


def test_moved_modules_import_with_a_deprecation_warning():
    """Old import paths keep working for one release (an import hook, so no library module imports a command)."""
    import importlib
    import sys
    import warnings

    from braintune._moved import MOVED

    for old, new in MOVED.items():
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught), old
