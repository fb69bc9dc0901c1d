"""Every workflow definition uses only what moto 5.2.5's Step Functions interpreter runs (the local
platform executes them there; /work/shared/notes and docs/monitoring.md list the subset), and the scale-out
workflow's handlers answer hostile input with a precise message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.platform import WORKFLOWS_DIR

DEFINITIONS = sorted(WORKFLOWS_DIR.glob("*.asl.json"))
ITEM_READERS = {"arn:aws:states:::s3:listObjectsV2", "arn:aws:states:::s3:getObject"}


def _states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch["States"])
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _states(state[key]["States"])


def test_the_scale_out_workflow_exists() -> None:
    assert WORKFLOWS_DIR / "drift_scale.asl.json" in DEFINITIONS


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_definitions_use_only_what_the_local_interpreter_runs(path: Path) -> None:
    doc = json.loads(path.read_text())
    for name, state in _states(doc["States"]):
        resource = str(state.get("Resource", ""))
        assert not resource.endswith(".sync"), f"{path.name} {name}: .sync integrations do not run locally"
        assert not resource.endswith(".sync:2"), f"{path.name} {name}: .sync integrations do not run locally"
        assert "ItemBatcher" not in state and "ResultWriter" not in state, f"{path.name} {name}"
        if state.get("Type") != "Map":
            continue
        reader = state.get("ItemReader")
        if reader is not None:
            assert reader["Resource"] in ITEM_READERS, f"{path.name} {name}: reader {reader['Resource']}"
            input_type = reader.get("ReaderConfig", {}).get("InputType")
            assert input_type in (None, "CSV", "JSON"), f"{path.name} {name}: InputType {input_type}"
        if state.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
            assert isinstance(state.get("MaxConcurrency"), int) and state["MaxConcurrency"] > 0, name
            assert state["ItemProcessor"]["ProcessorConfig"].get("ExecutionType", "STANDARD") == "STANDARD"
            tolerated = state.get("ToleratedFailurePercentage")
            assert tolerated is None or isinstance(tolerated, float), f"{name}: a float literal only"
            assert "ToleratedFailurePercentagePath" not in state


def test_scale_workflow_polls_athena_with_a_guard_and_always_ends_in_reduce() -> None:
    doc = json.loads((WORKFLOWS_DIR / "drift_scale.asl.json").read_text())
    states = doc["States"]
    assert states["StartQuery"]["Resource"] == "arn:aws:states:::athena:startQueryExecution"
    choice = states["QueryDone?"]
    assert choice["Default"] == "WaitForQuery"
    assert any(c.get("NumericGreaterThanEqualsPath") == "$.max_polls" for c in choice["Choices"])
    ends = {n for n, s in states.items() if s.get("End")}
    assert ends == {"Reduce", "RecordQueryFailure"}
    assert states["SummarizeShards"]["ToleratedFailurePercentage"] == 0.0
    assert states["SummarizeShards"]["Catch"][0]["Next"] == "Reduce"
    retry = states["SummarizeShards"]["ItemProcessor"]["States"]["Summarize"]["Retry"]
    assert any("States.TaskFailed" in r["ErrorEquals"] and r["MaxAttempts"] >= 1 for r in retry)


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        {"key": 3},
        {"key": "k", "bucket": "b", "model": "m", "run": "r"},
        {"key": "k", "bucket": "b", "model": "m", "run": "r", "profile": {"uri": 1}},
    ],
)
def test_shard_handler_answers_malformed_items(event: Any) -> None:
    from lambdas import drift_shard

    out = drift_shard.handler.__wrapped__(event, None)  # type: ignore[attr-defined]
    assert out["status"] == "error" and out["message"]


@pytest.mark.parametrize(
    "event",
    [None, "x", {"model": "m"}, {"model": "m", "run": "r", "window_start": "a", "window_end": "b", "version": "1"}],
)
def test_reduce_handler_answers_malformed_state(event: Any) -> None:
    from lambdas import drift_reduce

    out = drift_reduce.handler.__wrapped__(event, None)  # type: ignore[attr-defined]
    assert out["status"] == "error"
    assert "workflow state" in out["message"] or "JSON object" in out["message"]


def test_the_ingest_parts_workflow_maps_the_parts_and_records_every_outcome() -> None:
    doc = json.loads((WORKFLOWS_DIR / "ingest_parts.asl.json").read_text())
    states = doc["States"]
    assert WORKFLOWS_DIR / "ingest_parts.asl.json" in DEFINITIONS
    assert {n for n, s in states.items() if s.get("End")} == {"Commit"} and states["Failed"]["Type"] == "Fail"
    for name in ("Plan", "Commit"):  # a step that fails for good is recorded as failed with its error
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "RecordFailure"}
        ]
    assert states["RecordFailure"]["Parameters"]["FunctionName"] == "${CommitFunctionArn}"
    mapped = states["ValidateParts"]
    assert mapped["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert mapped["Catch"][0]["Next"] == "Commit" and mapped["Next"] == "Commit"
    retry = mapped["ItemProcessor"]["States"]["ValidatePart"]["Retry"]
    assert any("States.TaskFailed" in r["ErrorEquals"] and r["MaxAttempts"] >= 1 for r in retry)
    # the local reader fails on an empty prefix: the Map runs only for a plan with parts
    (choice,) = states["Planned?"]["Choices"]
    assert {"Variable": "$.plan.parts", "NumericGreaterThan": 0} in choice["And"]
    assert states["Planned?"]["Default"] == "Commit"


@pytest.mark.parametrize("module", ["ingest_plan", "ingest_part", "ingest_commit"])
@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        "x",
        {"key": 3},
        {"bucket": "b", "key": "k"},
        {"upload": {"bucket": "b"}, "feature_set": "credit_default", "upload_id": "u", "bucket": "b"},
        {"upload": {"bucket": "b", "key": "k"}, "feature_set": "nope", "upload_id": "u", "bucket": "b"},
        {
            "upload": {"bucket": "b", "key": "k", "size": "9"},
            "feature_set": "credit_default",
            "upload_id": "u",
            "bucket": "b",
        },
    ],
)
def test_ingest_parts_handlers_answer_malformed_input(module: str, event: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from tests.conftest import FEATURE_SETS

    monkeypatch.setenv("FEATURE_SETS_DIR", str(FEATURE_SETS))
    monkeypatch.setenv("FEATURES_BUCKET", "features-bucket")
    handler_module = importlib.import_module(f"lambdas.{module}")
    handler_module._catalog.cache_clear()
    out = handler_module.handler.__wrapped__(event, None)
    assert out["status"] == "error" and out["message"], out
