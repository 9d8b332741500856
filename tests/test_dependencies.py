"""The dependency rule stated in ``segval/__init__.py``, checked on every import of every module (those inside
functions included): a package imports only packages of lower layers, or itself."""

from __future__ import annotations

import ast
from pathlib import Path

import segval

SRC = Path(segval.__file__).parent

#: the layer of each top-level module / package of segval (lower imports nothing above it)
LAYERS: dict[str, int] = {
    "errors": -1, "io": 0,  # io raises the user errors of errors
    "dataset": 1,
    "metrics": 2,
    "models": 3, "datamodules": 3, "tracking": 3,
    "report": 4,
    "qa": 5,
    "analysis": 6,
    "release": 7,
    "relabel": 8, "experiments": 8, "callbacks": 8,
    "demo": 9,
    "commands": 10,
    "cli": 11,
    "conf": 11,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every segval import in the file, at any depth."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out += [(node.lineno, t) for t in targets if t == "segval" or t.startswith("segval.")]
    return out


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
            if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())) and p.stem != "__init__"}
    assert tops <= set(LAYERS), f"modules without a layer in this test: {sorted(tops - set(LAYERS))}"


def test_imports_follow_the_dependency_rule():
    violations = []
    for path in sorted(SRC.rglob("*.py")):
        mine = _top(_module_name(path))
        if mine is None:  # segval/__init__.py
            continue
        for line, target in _imports(path):
            other = _top(target)
            if other is None or other == mine or other not in LAYERS:
                continue  # `from segval import x` of a submodule is resolved by its full name
            if LAYERS[other] >= LAYERS[mine]:
                violations.append(f"{path.relative_to(SRC.parent)}:{line}: {mine} (layer {LAYERS[mine]}) imports "
                                  f"{target} (layer {LAYERS[other]})")
    assert not violations, "\n".join(violations)


def test_nothing_imports_commands_or_cli():
    for path in sorted(SRC.rglob("*.py")):
        mine = _top(_module_name(path))
        if mine in ("commands", "cli"):
            continue
        bad = [t for _, t in _imports(path) if _top(t) in ("commands", "cli")]
        assert not bad, f"{path}: imports {bad}"


def test_demo_is_imported_only_by_commands():
    for path in sorted(SRC.rglob("*.py")):
        mine = _top(_module_name(path))
        if mine in ("demo", "commands", "cli"):
            continue
        bad = [t for _, t in _imports(path) if _top(t) == "demo"]
        assert not bad, f"{path}: imports {bad}"


def test_the_rule_is_stated_in_the_package_docstring():
    doc = segval.__doc__ or ""
    assert "dataset  <-  metrics  <-  models, datamodules" in doc
