"""`driftline models approve|promote` honour the quality gate (issue 15): a version registered by hand
(no recorded gate outcome) is judged from its metrics and the model's ``gate`` at approve/promote time;
a failure is refused unless ``--override-gate --reason``, and the override is audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from driftline.registry.store import Registry

MODEL = "house-prices"
GATE = {"min_metrics": {}, "max_metrics": {"rmse": 10.0}, "primary_metric": "rmse", "max_relative_regression": 0.05}


@pytest.fixture
def config(tmp_path: Path) -> list[str]:
    """A cdk.json with one regression model gated on an rmse ceiling."""
    doc = {
        "context": {
            "driftline:env": "dev",
            "driftline:environments": {
                "dev": {"models": [{"name": MODEL, "feature_set": "credit_default", "gate": GATE}]}
            },
        }
    }
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(doc))
    return ["--config", str(path)]


def run(*args: str) -> Any:
    from driftline.cli.main import app

    return CliRunner().invoke(app, [*args], catch_exceptions=False, env={"COLUMNS": "250"})


def said(res: Any) -> str:
    return " ".join(res.output.split())  # rich wraps long lines at the console width


def test_regression_candidate_over_its_ceiling_needs_an_override(aws: dict[str, str], config: list[str]) -> None:
    reg = Registry(aws["REGISTRY_TABLE"])
    v = reg.register(MODEL, metrics={"rmse": 35.0, "mae": 20.0}, created_by="notebook").version  # 3.5x the ceiling

    res = run("models", "approve", "-m", MODEL, "-v", str(v), "--reason", "looks ok", "--as", "bob", *config)
    assert res.exit_code == 2, res.output
    assert (
        f"cannot approve '{MODEL}' v1: it failed the quality gate (with no champion to compare with, "
        f"evaluated by approve by bob): rmse 35.0000 > ceiling 10.0000;"
    ) in said(res)
    assert f"driftline models approve --model {MODEL} --version 1 --override-gate --reason" in said(res)
    assert reg.get_version(MODEL, v).status == "candidate" and reg.get_version(MODEL, v).gate == {}
    assert [e.action for e in reg.audit(MODEL)] == ["register"]

    res = run(
        "models",
        "approve",
        "-m",
        MODEL,
        "-v",
        str(v),
        "--reason",
        "launch baseline, known to be weak",
        "--override-gate",
        "--as",
        "bob",
        *config,
    )
    assert res.exit_code == 0, res.output
    assert "quality gate failed; overridden" in said(res)
    mv = reg.get_version(MODEL, v)
    assert mv.status == "approved" and mv.gate["passed"] is False
    assert mv.gate["reasons"] == ["rmse 35.0000 > ceiling 10.0000"]
    approve = reg.audit(MODEL)[-1]
    assert (approve.action, approve.who, approve.why) == ("approve", "bob", "launch baseline, known to be weak")
    assert approve.details["gate_override"] == {
        "reason": "launch baseline, known to be weak",
        "failed": ["rmse 35.0000 > ceiling 10.0000"],
    }

    # approved with an override is not a pass: promoting needs its own, audited, override
    res = run("models", "promote", "-m", MODEL, "-v", str(v), "--reason", "ship", "--as", "bob", *config)
    assert res.exit_code == 2 and f"cannot promote '{MODEL}' v1: it failed the quality gate" in said(res)
    assert reg.aliases(MODEL).champion is None
    res = run(
        "models",
        "promote",
        "-m",
        MODEL,
        "-v",
        str(v),
        "--reason",
        "ship the baseline",
        "--override-gate",
        "--as",
        "bob",
        *config,
    )
    assert res.exit_code == 0, res.output
    assert reg.aliases(MODEL).champion == v
    assert reg.audit(MODEL)[-1].details["gate_override"]["reason"] == "ship the baseline"

    res = run("models", "audit", "-m", MODEL, "--json", *config)
    overrides = [
        (e["action"], e["details"]["gate_override"]["reason"])
        for e in json.loads(res.output)
        if "gate_override" in e["details"]
    ]
    assert overrides == [("approve", "launch baseline, known to be weak"), ("promote", "ship the baseline")]
    res = run("models", "show", "-m", MODEL, "-v", str(v), *config)
    assert "quality gate: failed no champion to compare with, evaluated by approve by bob" in said(res)


def test_hand_registered_version_is_judged_against_the_champion_on_its_own_holdout(
    aws: dict[str, str], config: list[str]
) -> None:
    reg = Registry(aws["REGISTRY_TABLE"])
    champion = reg.register(MODEL, metrics={"rmse": 9.0}).version
    reg.approve(MODEL, champion, "bob", "seed")
    reg.promote(MODEL, champion, "bob", "seed")
    # the trainer scored the champion on each candidate's holdout: 8.0 there (its own 9.0 is another holdout)
    lineage = {"parent_version": champion, "champion_metrics": {"rmse": 8.0}}
    worse = reg.register(MODEL, metrics={"rmse": 8.6}, lineage=lineage).version
    better = reg.register(MODEL, metrics={"rmse": 8.3}, lineage=lineage).version

    res = run("models", "approve", "-m", MODEL, "-v", str(worse), "--reason", "ok", "--as", "bob", *config)
    assert res.exit_code == 2
    assert (
        f"against champion v{champion} on the same holdout, evaluated by approve by bob): rmse 8.6000 is worse "
        f"than the champion v{champion}'s 8.0000 (max_relative_regression 0.05: at most 8.4000)"
    ) in said(res)

    res = run("models", "approve", "-m", MODEL, "-v", str(better), "--reason", "ok", "--as", "bob", *config)
    assert res.exit_code == 0, res.output
    gate = reg.get_version(MODEL, better).gate
    assert gate["passed"] is True and gate["champion_version"] == champion
    assert gate["comparison"] == "same_holdout" and gate["evaluated_by"] == "approve by bob"
    res = run("models", "promote", "-m", MODEL, "-v", str(better), "--reason", "better", "--as", "bob", *config)
    assert res.exit_code == 0, res.output
    assert reg.aliases(MODEL).champion == better
    assert "gate_override" not in reg.audit(MODEL)[-1].details
