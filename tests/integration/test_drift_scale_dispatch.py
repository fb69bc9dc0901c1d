"""Dispatch of the scheduled check: a window at or above the configured size starts the scale-out
workflow (named per model and window, so a retried schedule does not start a second one); smaller and
empty windows keep the in-process check; config bounds are refused like every other key."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.config import ConfigError, PlatformConfig, from_context
from driftline.monitoring import Context, run_check
from driftline.monitoring.scale.dispatch import WindowSize, estimate_window, wants_scale_out
from tests.integration.test_drift_scale import write_v2_captures
from tests.integration.test_monitoring_check import MODEL, T0, register_champion, window
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
    rows = "array<struct<" + ",".join(f"{f.name}:string" for f in credit_fs.features) + ">>"
    columns = [{"Name": "request_id", "Type": "string"}, {"Name": "rows", "Type": rows}]
    glue.create_table(
        DatabaseName="db", TableInput={"Name": "captures_credit_default", "StorageDescriptor": {"Columns": columns}}
    )
    return str(arn)


def _ctx_with(rows: int | None, bytes_: int | None = None) -> Context:
    base = Context.from_env()
    data = base.config.model_dump()
    data.setdefault("monitoring", {}).update(scale_out_rows=rows, scale_out_bytes=bytes_, scale_out_shard_rows=1000)
    return replace(base, config=PlatformConfig.model_validate(data))


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
    assert "CROSS JOIN UNNEST(c.rows) WITH ORDINALITY AS u(f_0, " in state["query"]

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


def test_empty_window_is_checked_in_process_as_insufficient_data(
    aws: dict[str, str], credit_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _state_machine(monkeypatch, credit_fs)
    register_champion(credit_fs)
    start, end = window(0)
    out = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx_with(1), now=T0 + timedelta(hours=2))
    assert out["status"] == "insufficient_data"


@pytest.mark.parametrize(
    ("key", "value"),
    [("scale_out_rows", 0), ("scale_out_bytes", -5), ("scale_out_shard_rows", 10), ("scale_out_shard_rows", 10**9)],
)
def test_scale_out_settings_out_of_bounds_are_one_line_config_errors(key: str, value: int) -> None:
    with pytest.raises(ConfigError) as err:
        from_context(_ctx(lambda d: d.setdefault("monitoring", {}).update({key: value})))
    assert f"monitoring.{key}" in str(err.value) and "\n" not in str(err.value)
