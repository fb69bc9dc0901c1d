"""Logic modules reach the control table and the event bus through their adapters, and the CLI asks STS
through its resolver: a client built by hand in one of them again is a regression.

An AST scan: no ``aws.client("dynamodb"|"events")`` (an injected client factory may still build the
client it hands an adapter), no DynamoDB/EventBridge calls (``put_item``, ``query``, ``put_events``...),
no attribute-value literals (``{"S": ...}``) in the modules that now use :mod:`driftline.control_store`
and :mod:`driftline.event_bus`; no ``aws.client("sts")`` in ``driftline/cli/`` outside ``resources.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTED = (
    "driftline/retraining/control.py",
    "driftline/retraining/approvals.py",
    "driftline/monitoring/history.py",
    "driftline/features/ingest.py",
    "driftline/features/redrive.py",
    "driftline/monitoring/publish.py",
    "driftline/retraining/requests.py",
)
"""Modules whose control-table items and events go through the adapters."""
SERVICES = {"dynamodb", "events"}
CALLS = {"put_item", "get_item", "delete_item", "update_item", "query", "put_events", "transact_write_items"}
ATTRIBUTE_KEYS = {"S", "N", "BOOL"}


def _violations(path: Path, services: set[str], calls: set[str], literals: bool) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            arg = node.args[0] if node.args else None
            if (
                isinstance(f, ast.Attribute)
                and f.attr == "client"
                and isinstance(f.value, ast.Name)
                and f.value.id == "aws"
                and isinstance(arg, ast.Constant)
                and arg.value in services
            ):
                bad.append(f"{where}:{node.lineno}: builds a {arg.value} client")
            if isinstance(f, ast.Attribute) and f.attr in calls:
                bad.append(f"{where}:{node.lineno}: calls {f.attr}")
        if (
            literals
            and isinstance(node, ast.Dict)
            and any(isinstance(k, ast.Constant) and k.value in ATTRIBUTE_KEYS for k in node.keys)
        ):
            bad.append(f"{where}:{node.lineno}: writes a DynamoDB attribute value")
    return bad


@pytest.mark.parametrize("module", ADAPTED)
def test_logic_modules_use_the_adapters(module: str) -> None:
    bad = _violations(ROOT / module, SERVICES, CALLS, literals=True)
    assert not bad, "use driftline.control_store / driftline.event_bus:\n" + "\n".join(bad)


def test_the_cli_asks_sts_only_through_its_resolver() -> None:
    files = [p for p in sorted((ROOT / "driftline" / "cli").glob("*.py")) if p.name != "resources.py"]
    bad = [v for p in files for v in _violations(p, {"sts"}, {"get_caller_identity"}, literals=False)]
    assert not bad, "use driftline.cli.resources:\n" + "\n".join(bad)


def test_the_scan_catches_a_hand_built_item(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "from driftline import aws\n"
        'def put(t):\n    aws.client("dynamodb").put_item(TableName=t, Item={"pk": {"S": "x"}})\n'
    )
    assert len(_violations(f, SERVICES, CALLS, literals=True)) == 3
