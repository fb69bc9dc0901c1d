"""Serving and feature code uses other modules only through their public names.

A ``_private`` name is free to change with its own module; code elsewhere that imports it (the
typed records decoder once imported the validator's kind codes and unpacked its private fast-path
tuple) breaks silently when it does. So no module under ``driftline/serving`` or
``driftline/features`` imports a ``_name`` from another module or reads one off an imported
module; what another module needs gets a public name (in that module's ``__all__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("driftline/serving", "driftline/features")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list[str]:
    """``line: what`` for every private name taken from another module in ``source``."""
    tree = ast.parse(source)
    found: list[str] = []
    modules: set[str] = set()  # local names bound to imported modules (import x, import x.y as z)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            where = "." * node.level + (node.module or "")
            found += [f"{node.lineno}: from {where} import {a.name}" for a in node.names if _private(a.name)]
            # `from package import module` binds a module too; its private names count as well
            modules.update(a.asname or a.name for a in node.names if not _private(a.name))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if any(_private(part) for part in a.name.split(".")):
                    found.append(f"{node.lineno}: import {a.name}")
                modules.add(a.asname or a.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute) and not _private(base.attr):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules and base.id not in ("self", "cls"):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return sorted(found, key=lambda f: int(f.split(":")[0]))


def _modules() -> list[Path]:
    return sorted(p for d in SCANNED for p in (ROOT / d).rglob("*.py"))


def test_the_scan_finds_private_imports() -> None:
    source = (
        "from driftline.serving.validation import _BOOL, InputValidator\n"
        "from .arrays import _np\n"
        "from driftline.features import validation\n"
        "import driftline.serving.body as body\n"
        "import driftline.features\n"
        "x = validation._COERCE\n"
        "y = body._helper(1)\n"
        "z = driftline.features._x\n"
    )
    assert private_uses(source) == [
        "1: from driftline.serving.validation import _BOOL",
        "2: from .arrays import _np",
        "6: validation._COERCE",
        "7: body._helper",
        "8: driftline.features._x",
    ]
    assert private_uses("import os\nos.getcwd()\nself._x = 1\nv = obj._y\nfrom x import __version__\n") == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_is_taken_from_another_module(path: Path) -> None:
    assert private_uses(path.read_text()) == [], (
        f"{path.relative_to(ROOT)} uses private names of other modules: give them public names instead"
    )
