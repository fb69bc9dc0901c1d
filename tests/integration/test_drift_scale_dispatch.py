"""Dispatch of the scheduled check: a window at or above the configured size starts the scale-out
workflow (named per model and window, so a retried schedule does not start a second one); smaller and
empty windows keep the in-process check; config bounds are refused like every other key."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.config import ConfigError, from_context
from driftline.monitoring import Context, run_check
from driftline.monitoring.history import FAILED, RUNNING, DriftHistory, HistoryEntry
from driftline.monitoring.lateness import needs_recheck, restreak
from driftline.monitoring.scale.dispatch import WindowSize, estimate_window, wants_scale_out
from tests.integration.test_drift_scale import write_v2_captures
from tests.integration.test_monitoring_check import MODEL, T0, ctx_with, register_champion, window
from tests.unit.test_config import _ctx


def _state_machine(monkeypatch: pytest.MonkeyPatch, credit_fs: Any) -> str:
    sfn = aws_mod.client("stepfunctions")
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    arn = sfn.create_state_machine(
        name="drift-scale", definition=definition, roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    monkeypatch.setenv("DRIFT_SCALE_STATE_MACHINE_ARN", arn)
    monkeypatch.setenv("ATHENA_WORKGROUP", "wg")
    monkeypatch.setenv("GLUE_DATABASE", "db")
    glue = aws_mod.client("glue")
    glue.create_database(DatabaseInput={"Name": "db"})
    row = "struct<" + ",".join(f"{f.name}:string" for f in credit_fs.features) + ">"
    columns = [{"Name": "request_id", "Type": "string"}, {"Name": "rows", "Type": f"array<{row}>"}]
    columns += [{"Name": "features", "Type": row}, {"Name": "prediction", "Type": "struct<value:double>"}]
    columns += [{"Name": "test", "Type": "boolean"}]
    columns += [
        {"Name": "cols", "Type": "struct<" + ",".join(f"{f.name}:array<string>" for f in credit_fs.features) + ">"}
    ]
    glue.create_table(
        DatabaseName="db", TableInput={"Name": "captures_credit_default", "StorageDescriptor": {"Columns": columns}}
    )
    return str(arn)


def _ctx_with(rows: int | None, bytes_: int | None = None) -> Context:
    return ctx_with(
        lambda d: d.setdefault("monitoring", {}).update(
            scale_out_rows=rows, scale_out_bytes=bytes_, scale_out_shard_rows=1000
        )
    )


def test_estimate_counts_v2_rows_from_a_sampled_object(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 400, seed=1, per_request=4)
    size = estimate_window(aws_mod.client("s3"), aws["CAPTURES_BUCKET"], MODEL, T0, T0 + timedelta(hours=1))
    assert size.objects == 1 and size.bytes > 0 and size.rows == 400
    assert wants_scale_out(size, 400, None) and not wants_scale_out(size, 401, None)
    assert wants_scale_out(size, None, size.bytes) and not wants_scale_out(WindowSize(0, 0, 0), 1, 1)


def test_large_window_starts_the_workflow_once_small_one_stays_in_process(
    aws: dict[str, str], credit_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = _state_machine(monkeypatch, credit_fs)
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 400, seed=2)
    start, end = window(0)
    out = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx_with(300), now=T0 + timedelta(hours=2))
    assert out["status"] == "scaled_out" and out["started"] and out["estimate"]["rows"] == 400
    again = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx_with(300), now=T0 + timedelta(hours=2))
    assert again["status"] == "scaled_out" and not again["started"]
    assert again["execution_arn"] == out["execution_arn"]
    executions = aws_mod.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]
    assert len(executions) == 1
    state = json.loads(aws_mod.client("stepfunctions").describe_execution(executionArn=out["execution_arn"])["input"])
    assert state["query"].startswith("UNLOAD (") and state["estimate"]["shards"] == 1
    assert state["data_prefix"].endswith(f"{state['run']}/data/") and state["max_polls"] > 0
    assert "LEFT JOIN UNNEST(c.v2_rows) WITH ORDINALITY AS u(f_0, " in state["query"]
    assert "LEFT JOIN UNNEST(c.v3_positions) AS w(n)" in state["query"]

    # a re-check by hand after that execution ended (failed or incomplete) runs again, under a new name
    aws_mod.client("stepfunctions").stop_execution(executionArn=out["execution_arn"])
    rerun = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx_with(300), now=T0 + timedelta(hours=2))
    assert rerun["started"] and rerun["execution_arn"] != out["execution_arn"]
    rerun_state = json.loads(
        aws_mod.client("stepfunctions").describe_execution(executionArn=rerun["execution_arn"])["input"]
    )
    assert rerun_state["run"] != state["run"] and rerun_state["run"].startswith(state["run"])
    assert rerun["execution_arn"].endswith(":" + rerun_state["run"])

    small = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx_with(401), now=T0 + timedelta(hours=2))
    assert small["status"] == "ok" and small["n_current"] == 400


@pytest.mark.parametrize("missing", ["test", "cols"])
def test_a_captures_table_without_the_v1_and_test_columns_keeps_the_window_in_process(
    aws: dict[str, str], credit_fs: Any, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """A table created before the v1, ``test`` or v3 ``cols`` columns (not yet redeployed) would fail the query
    or count test traffic: the window is checked in-process until the table has them."""
    _state_machine(monkeypatch, credit_fs)
    glue = aws_mod.client("glue")
    table = glue.get_table(DatabaseName="db", Name="captures_credit_default")["Table"]
    old = [c for c in table["StorageDescriptor"]["Columns"] if c["Name"] != missing]
    glue.update_table(DatabaseName="db", TableInput={"Name": table["Name"], "StorageDescriptor": {"Columns": old}})
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 400, seed=2)
    start, end = window(0)
    out = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx_with(300), now=T0 + timedelta(hours=2))
    assert out["status"] == "ok" and out["n_current"] == 400


def test_empty_window_is_checked_in_process_as_insufficient_data(
    aws: dict[str, str], credit_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _state_machine(monkeypatch, credit_fs)
    register_champion(credit_fs)
    start, end = window(0)
    out = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx_with(1), now=T0 + timedelta(hours=2))
    assert out["status"] == "insufficient_data"


def test_a_window_handed_to_the_workflow_is_taken_until_it_ends(
    aws: dict[str, str], credit_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 follow-up: the next scheduled run, coming before the reduce step, must not check an
    overlapping window; an execution that dies leaves the window failed, not running forever."""
    _state_machine(monkeypatch, credit_fs)  # a state machine whose executions stay RUNNING under moto
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 400, seed=3)
    write_v2_captures(credit_fs, v, T0 + timedelta(hours=1), 40, seed=4)
    history = DriftHistory.from_env()
    start, end = window(0)
    out = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx_with(300), now=T0 + timedelta(hours=2))
    assert out["status"] == "scaled_out" and out["started"]
    taken = history.get(MODEL, end)
    assert taken is not None and taken.status == RUNNING and taken.execution_arn == out["execution_arn"]
    assert taken.listed_until and taken.version == v and not taken.alarm

    nxt = run_check(MODEL, ctx=_ctx_with(300), now=T0 + timedelta(hours=2, minutes=10))
    assert nxt["window_start"] == end and nxt["n_current"] == 40  # not the 400 rows of the running window
    still = history.get(MODEL, end)
    assert still is not None and still.status == RUNNING  # the look-back neither re-checks nor settles it

    aws_mod.client("stepfunctions").stop_execution(executionArn=out["execution_arn"], error="Boom", cause="test")
    later = run_check(MODEL, ctx=_ctx_with(300), now=T0 + timedelta(hours=2, minutes=20))
    failed = history.get(MODEL, end)
    assert failed is not None and failed.status == FAILED and "ABORTED" in failed.message
    assert failed.listed_until == taken.listed_until  # its late rows are still counted
    assert any("marked failed" in n and end in n for n in later["late"]["notes"])
    assert later["window_start"] == nxt["window_end"]


def test_a_running_window_neither_extends_nor_breaks_a_streak(aws: dict[str, str], credit_fs: Any) -> None:
    register_champion(credit_fs)
    history = DriftHistory.from_env()
    s0, e0 = window(0)
    s1, e1 = window(1)
    history.put(HistoryEntry(MODEL, s0, e0, 1, "ok", drifted=True, streak=1, listed_until=e0))
    history.put(HistoryEntry(MODEL, s1, e1, 1, RUNNING, streak=1, listed_until=e1, execution_arn="arn:x"))
    assert history.claim(HistoryEntry(MODEL, s1, e1, 1, RUNNING, execution_arn="arn:y")) is False
    s2, e2 = window(2)
    history.put(HistoryEntry(MODEL, s2, e2, 1, "ok", drifted=True, streak=2, alarm=True))
    assert restreak(sorted(history.list(MODEL), key=lambda e: e.window_end), e0, 2) == []
    late = HistoryEntry(MODEL, s1, e1, 1, RUNNING, late_rows=500, n_current=0)
    assert not needs_recheck(late, 0.05, 100)
    late.status = FAILED
    assert not needs_recheck(late, 0.05, 100)


@pytest.mark.parametrize(
    ("key", "value"),
    [("scale_out_rows", 0), ("scale_out_bytes", -5), ("scale_out_shard_rows", 10), ("scale_out_shard_rows", 10**9)],
)
def test_scale_out_settings_out_of_bounds_are_one_line_config_errors(key: str, value: int) -> None:
    with pytest.raises(ConfigError) as err:
        from_context(_ctx(lambda d: d.setdefault("monitoring", {}).update({key: value})))
    assert f"monitoring.{key}" in str(err.value) and "\n" not in str(err.value)
