"""Imports run down the layers only: handlers → core → contracts/aws, never back up.

Layers, top to bottom: the CLI; the demo; the local platform; the notebook API; the core
(features, serving, drift, training, monitoring, retraining, registry, ...). The handlers in
``lambdas/`` and the core are what Lambda runs (``stacks/bundle_contents.NOT_IN_LAMBDA`` is stripped from
every zip), so neither may import anything above the core, even inside a function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from stacks.bundle_contents import NOT_IN_LAMBDA

ROOT = Path(__file__).resolve().parents[2]
UPPER = tuple(f"driftline.{n.removesuffix('.py').replace('/', '.')}" for n in NOT_IN_LAMBDA)
"""Modules no deployed code may import."""
LAYERS: dict[str, tuple[str, ...]] = {
    "driftline.local": ("driftline.cli", "driftline.demo"),
    "driftline.demo": ("driftline.cli",),
}
"""Below the core, each upper layer still may not import the ones above it."""
ALLOWED = {
    ("driftline/__init__.py", "driftline.notebook"): "the top-level notebook names, loaded on attribute "
    "access only (PEP 562 __getattr__): a Lambda function never touches them"
}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _deployed() -> list[Path]:
    files = sorted((ROOT / "lambdas").rglob("*.py")) + sorted((ROOT / "driftline").rglob("*.py"))
    return [p for p in files if not _module(p).startswith(UPPER)]


def _hits(name: str, banned: tuple[str, ...]) -> bool:
    return any(name == b or name.startswith(b + ".") for b in banned)


def test_deployed_code_never_imports_what_the_zips_leave_out() -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in _deployed()
        for line, name in _imports(p)
        if _hits(name, UPPER) and (str(p.relative_to(ROOT)), name) not in ALLOWED
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_upper_layers_do_not_import_the_ones_above(layer: str) -> None:
    root = ROOT / Path(*layer.split("."))
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in sorted(root.rglob("*.py"))
        for line, name in _imports(p)
        if _hits(name, LAYERS[layer])
    ]
    assert not bad, "\n".join(bad)


def test_the_scan_sees_function_level_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from driftline.demo.story import Story\n    import driftline.cli.main\n")
    assert [n for _, n in _imports(f)] == ["driftline.demo.story", "driftline.demo.story.Story", "driftline.cli.main"]
