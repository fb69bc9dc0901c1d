"""`driftline train` and `driftline models ...` end to end against moto (in-process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from driftline.registry.store import Registry

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(ROOT / "cdk.json")]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from driftline.datasets.credit_default import generate, write_table

    return write_table(
        generate(1200, "2026-01-01", "2026-04-01", seed=21), tmp_path_factory.mktemp("data") / "credit.parquet"
    )


def run(*args: str) -> Any:
    from driftline.cli import common
    from driftline.cli.main import app

    # The rich console is created once per process (its width read then): make tables wide enough
    # here whichever test imported the CLI first.
    common.console.width = 200
    common.err_console.width = 200

    return CliRunner().invoke(app, [*args], catch_exceptions=False, env={"COLUMNS": "200"})


def test_train_approve_promote_audit_rollback(aws: dict[str, str], data_file: Path) -> None:
    res = run(
        "train", "--feature-set", "credit_default", "--model", "credit-default", "--data", str(data_file), *CONFIG
    )
    assert res.exit_code == 0, res.output
    assert "candidate credit-default v1 registered" in res.output and "roc_auc" in res.output

    res = run("models", "list", "--model", "credit-default", *CONFIG)
    assert res.exit_code == 0 and "candidate" in res.output and "hist_gradient_boosting" in res.output

    res = run("models", "show", "--model", "credit-default", "--version", "1", *CONFIG)
    assert res.exit_code == 0, res.output
    for text in ("validation metrics", "lineage", "training set sha256", "code version", "model.onnx", "file://"):
        assert text in res.output, text

    res = run("models", "promote", "-m", "credit-default", "-v", "1", "--reason", "too early", *CONFIG)
    assert res.exit_code == 2 and "approve it first" in res.output

    assert run("models", "approve", "-m", "credit-default", "-v", "1", "-r", "metrics ok", *CONFIG).exit_code == 0
    res = run("models", "promote", "-m", "credit-default", "-v", "1", "-r", "first champion", *CONFIG)
    assert res.exit_code == 0 and "v- -> v1" in res.output, res.output
    assert Registry.from_env().aliases("credit-default").champion == 1

    res = run("train", "-f", "credit_default", "-m", "credit-default", "-d", str(data_file), *CONFIG)
    assert res.exit_code == 0 and "champion v1" in res.output, res.output
    run("models", "approve", "-m", "credit-default", "-v", "2", "-r", "better", "--as", "alice", *CONFIG)
    run("models", "promote", "-m", "credit-default", "-v", "2", "-r", "ship", "--as", "alice", *CONFIG)
    res = run("models", "rollback", "-m", "credit-default", "-r", "v2 misbehaves", "--as", "bob", *CONFIG)
    assert res.exit_code == 0 and "v2 -> v1" in res.output, res.output

    res = run("models", "audit", "-m", "credit-default", "--json", *CONFIG)
    trail = json.loads(res.output)
    assert [(e["action"], e["version"]) for e in trail] == [
        ("register", 1),
        ("approve", 1),
        ("promote", 1),
        ("register", 2),
        ("approve", 2),
        ("promote", 2),
        ("rollback", 1),
    ]
    assert trail[1]["who"].startswith("arn:aws:sts::") and trail[5]["who"] == "alice"
    assert trail[6]["why"] == "v2 misbehaves"

    res = run("models", "list", *CONFIG)
    assert res.exit_code == 0 and "credit-default" in res.output


def test_rejected_training_exits_non_zero_with_the_reason(aws: dict[str, str], tmp_path: Path) -> None:
    from driftline.datasets.credit_default import generate, write_table

    small = write_table(generate(100, "2026-01-01", "2026-04-01", seed=1), tmp_path / "small.parquet")
    res = run("train", "-f", "credit_default", "-m", "credit-default", "-d", str(small), *CONFIG)
    assert res.exit_code == 1
    assert "rejected credit-default v1" in res.output and "at least 500 are required" in res.output


def test_user_mistakes_are_one_line(aws: dict[str, str]) -> None:
    res = run("models", "show", "-m", "ghost", *CONFIG)
    assert res.exit_code == 2 and "not in the registry" in res.output
    res = run("train", "-f", "credit_default", "-m", "ghost", "-d", "x.parquet", *CONFIG)
    assert res.exit_code == 2 and "unknown model 'ghost'" in res.output


def test_as_is_refused_against_aws(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`--as ARN` once let anyone approve as someone else on real AWS (issue 16, item 11)."""
    from driftline.cli import models

    monkeypatch.setattr(models, "_emulated", lambda: False)
    res = run(
        "models",
        "approve",
        "-m",
        "credit-default",
        "-v",
        "1",
        "-r",
        "ok",
        "--as",
        "arn:aws:iam::111111111111:role/ml-lead",
        *CONFIG,
    )
    assert res.exit_code == 2 and "--as works only against the local platform" in res.output
    monkeypatch.undo()
    assert models._emulated()  # moto answers STS with its fixed account
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "210987654321")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from driftline import aws as aws_mod

    aws_mod.reset_clients()
    assert not models._emulated()  # a real account id: not the emulator
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert models._emulated()
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    aws_mod.reset_clients()
