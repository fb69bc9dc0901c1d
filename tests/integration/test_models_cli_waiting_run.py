"""`driftline models approve|reject` decide through a retraining run that waits on the version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from driftline import aws as aws_mod
from driftline.retraining.approvals import store_token

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(ROOT / "cdk.json")]


def run(*args: str) -> Any:
    from driftline.cli.main import app

    return CliRunner().invoke(app, [*args], catch_exceptions=False, env={"COLUMNS": "200"})


def test_approve_of_a_version_whose_run_ended_changes_nothing(aws: dict[str, str]) -> None:
    # A token recorded by a run that no longer exists: the CLI must route through the run, refuse, and
    # leave the registry untouched (no approval without the workflow that asked for it).
    store_token(
        aws["CONTROL_TABLE"],
        "credit-default",
        3,
        task_token="tok",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:x:gone",
        requested_at="2026-11-26T00:00:00+00:00",
        timeout_seconds=3600,
        summary="v3 passed the gate",
    )
    res = run(
        "models", "approve", "--model", "credit-default", "--version", "3", "--reason", "ok", "--as", "me", *CONFIG
    )
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())  # rich wraps long lines at the console width
    assert "no longer waiting" in said and "nothing was changed" in said
    items = aws_mod.client("dynamodb").query(
        TableName=aws["REGISTRY_TABLE"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "MODEL#credit-default"}},
    )["Items"]
    assert not [i for i in items if i["sk"]["S"].startswith("AUDIT#")]


def test_approve_without_a_waiting_run_uses_the_registry(aws: dict[str, str]) -> None:
    res = run(
        "models", "approve", "--model", "credit-default", "--version", "1", "--reason", "ok", "--as", "me", *CONFIG
    )
    assert res.exit_code == 2 and "waiting retraining run" not in res.output
