"""The contracts of ``driftline/contracts.py`` are written nowhere else: a literal copy is a regression.

Scans every string in the code that ships or deploys (``driftline/``, ``lambdas/``, ``stacks/``,
``app.py``), docstrings aside, for the event names, the metric namespace, the control-table item
prefixes and the S3 key roots.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline import contracts

ROOT = Path(__file__).resolve().parents[2]
EXACT = (
    {e.source for e in contracts.EVENTS}
    | {e.detail_type for e in contracts.EVENTS}
    | {
        contracts.METRICS_NAMESPACE,
        contracts.S3_OBJECT_CREATED,
        contracts.LATE_ROWS_METRIC,
        contracts.TEST_TRAFFIC_HEADER,
    }
)
"""Strings that must only appear as the contract itself."""
PREFIXES = (
    *contracts.CONTROL_PREFIXES,
    f"{contracts.CAPTURES_PREFIX}/model=",
    f"{contracts.FEEDBACK_PREFIX}/model=",
    f"{contracts.CAPTURE_ERRORS_PREFIX}/",
    f"{contracts.CURATED_PREFIX}/",
    f"{contracts.QUARANTINE_PREFIX}/",
    f"{contracts.INCOMING_PREFIX}/",
    f"{contracts.ATHENA_RESULTS_PREFIX}/",
    "drift/",
)
"""Key layouts: no string (or f-string) may start with one."""


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
        if isinstance(node, (ast.Module, ast.ClassDef)):  # attribute docstrings: a string after an assignment
            for a, b in zip(node.body, node.body[1:], strict=False):
                if (
                    isinstance(a, (ast.Assign, ast.AnnAssign))
                    and isinstance(b, ast.Expr)
                    and isinstance(b.value, ast.Constant)
                ):
                    ids.add(id(b.value))
    return ids


CONSTANTS = {k: v for k, v in vars(contracts).items() if k.isupper() and isinstance(v, str)}
"""String constants of contracts.py: an f-string that starts with one of them spells its key layout out."""


def _rendered(node: ast.JoinedStr) -> str:
    """The f-string with each contracts constant it interpolates (``{FEEDBACK_PREFIX}``,
    ``{contracts.CAPTURES_PREFIX}``) replaced by its value and anything else by ``{}``: so
    ``f"{FEEDBACK_PREFIX}/model={m}/"`` reads ``feedback/model={}/``, a copy of the layout."""
    out = []
    for v in node.values:
        if isinstance(v, ast.Constant):
            out.append(str(v.value))
            continue
        inner = v.value if isinstance(v, ast.FormattedValue) else v
        name = inner.id if isinstance(inner, ast.Name) else inner.attr if isinstance(inner, ast.Attribute) else ""
        out.append(CONSTANTS.get(name, "{}"))
    return "".join(out)


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _docstrings(tree)
    skip |= {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            yield node.lineno, str(node.values[0].value)


MODEL_LAYOUTS = tuple(
    f"{root}/model="
    for root in (
        contracts.CAPTURES_PREFIX,
        contracts.FEEDBACK_PREFIX,
        contracts.CAPTURE_ERRORS_PREFIX,
        contracts.DRIFT_SCRATCH_PREFIX,
    )
)
"""Per-model key layouts: built only by contracts' functions (``capture_prefix``, ``feedback_prefix``, …),
never by an f-string around the root constant."""


def _layouts(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values and not isinstance(node.values[0], ast.Constant):
            text = _rendered(node)  # an f-string starting with text is checked by _strings already
            if text.startswith(MODEL_LAYOUTS):
                yield node.lineno, text


def _files() -> list[Path]:
    out = [ROOT / "app.py"]
    for folder in ("driftline", "lambdas", "stacks"):
        out += sorted((ROOT / folder).rglob("*.py"))
    return [p for p in out if p != ROOT / "driftline" / "contracts.py"]


def _violations(path: Path) -> list[str]:
    bad = []
    for line, text in _strings(path):
        if text in EXACT or any(text.startswith(p) for p in PREFIXES):
            bad.append(f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}")
    bad += [f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}" for line, text in _layouts(path)]
    return bad


def test_no_contract_is_written_outside_contracts_py() -> None:
    bad = [v for p in _files() for v in _violations(p)]
    assert not bad, "use driftline.contracts instead of:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "snippet",
    [
        'X = "DriftDetected"\n',
        'k = f"INGEST#{fs}"\n',
        'p = "captures/model=" + m\n',
        'def f():\n    return f"feedback/model={m}/"\n',
        'from driftline.contracts import FEEDBACK_PREFIX\np = f"{FEEDBACK_PREFIX}/model={m}/"\n',
        'from driftline import contracts\np = f"{contracts.CAPTURES_PREFIX}/model={m}/{h}/"\n',
    ],
)
def test_the_scan_catches_a_copy(tmp_path: Path, snippet: str) -> None:
    f = tmp_path / "m.py"
    f.write_text(f'"""doc: DriftDetected, INGEST#x."""\n{snippet}')
    assert len(_violations_at(f)) == 1


def _violations_at(path: Path) -> list[str]:
    found = [t for _, t in _strings(path) if t in EXACT or any(t.startswith(p) for p in PREFIXES)]
    return found + [t for _, t in _layouts(path)]


def test_event_patterns_and_entries() -> None:
    assert contracts.FEATURE_DATA_ACCEPTED.pattern(has_labels=[True]) == {
        "source": ["driftline.ingest"],
        "detail-type": ["FeatureDataAccepted"],
        "detail": {"has_labels": [True]},
    }
    entry = contracts.RETRAIN_REQUESTED.entry({"model": "m"}, "bus")
    assert entry == {
        "Source": "driftline.cli",
        "DetailType": "RetrainRequested",
        "Detail": '{"model": "m"}',
        "EventBusName": "bus",
    }
    assert len({(e.source, e.detail_type) for e in contracts.EVENTS}) == len(contracts.EVENTS)
