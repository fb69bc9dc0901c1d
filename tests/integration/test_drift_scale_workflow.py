"""The scale-out drift workflow end to end on the local platform's engines: the real ASL on moto's Step
Functions interpreter (moto server), the shard query on the local Athena (DuckDB, through the Glue
catalog), the Distributed Map and the reduce step running the real handlers in-process. A window above
the threshold gives the same drift as the in-process check of the same window; a shard function that
keeps failing is retried and the check ends ``incomplete`` naming its file; a query that fails ends the
check ``failed`` with Athena's message."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.capture_tables import feedback_table_name
from driftline.local.provision import provision_catalog
from driftline.monitoring import Context, run_check
from driftline.monitoring.history import DriftHistory
from tests.integration.test_drift_scale import write_v2_captures
from tests.integration.test_monitoring_check import (
    MODEL,
    T0,
    ctx_with,
    register_champion,
    window,
    write_captures,
    write_feedback,
)
from tests.support.local_athena import REGION, athena_emulator, emulated_workflows

ACCOUNT = "123456789012"


class Functions:
    """The drift-shard and drift-reduce handlers, run in this process when moto invokes them."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_shard = ""
        """Summarizing a file of this shard (``shard=<k>/``) fails on every attempt."""
        self.failed: set[str] = set()

    def invoke(self, fn: Any, event: Any = None) -> tuple[str, bool, str]:
        from lambdas import drift_reduce, drift_shard

        payload = json.loads(event) if isinstance(event, str | bytes) else event
        name = fn.function_name
        self.calls.append(name)
        try:
            if name.endswith("-drift-shard"):
                if self.fail_shard and f"/{self.fail_shard}/" in str(payload.get("key")):
                    self.failed.add(str(payload["key"]))
                    raise RuntimeError(f"injected failure on {payload['key']}")
                out = drift_shard.handler.__wrapped__(payload, None)  # type: ignore[attr-defined]
            elif name.endswith("-drift-reduce"):
                drift_reduce._context.cache_clear()
                out = drift_reduce.handler.__wrapped__(payload, None)  # type: ignore[attr-defined]
            else:
                raise RuntimeError(f"unexpected function {name}")
        except Exception as e:
            return json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}), True, ""
        return json.dumps(out, default=str), False, ""


@pytest.fixture
def local(platform_def: Any, credit_fs: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with athena_emulator(max_concurrent=1) as emu:  # it starts from empty moto backends
        clients = emu.clients
        functions = Functions()
        try:
            env = emulated_workflows(emu, platform_def, ACCOUNT, monkeypatch, functions.invoke)
            provision_catalog(platform_def, clients, REGION, ACCOUNT, [credit_fs])
            from tests.conftest import FEATURE_SETS

            env["FEATURE_SETS_DIR"] = str(FEATURE_SETS)
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            yield {"env": env, "clients": clients, "functions": functions}
        finally:
            aws_mod.reset_clients()


def _ctx(rows: int | None) -> Context:
    return ctx_with(lambda d: d["monitoring"].update(scale_out_rows=rows, scale_out_shard_rows=1000))


def _finish(clients: Callable[[str], Any], arn: str, timeout: float = 120.0) -> dict[str, Any]:
    sfn = clients("stepfunctions")
    deadline = time.monotonic() + timeout
    while (d := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still running"
        time.sleep(0.25)
    assert d["status"] == "SUCCEEDED", d
    return dict(json.loads(d["output"])["result"]["value"])


def _doc(uri: str) -> dict[str, Any]:
    bucket, key = uri[len("s3://") :].split("/", 1)
    return dict(json.loads(aws_mod.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_large_window_goes_athena_map_reduce_and_equals_in_process(local: dict[str, Any], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    ids = write_v2_captures(credit_fs, v, T0, 2400, seed=7, shift=0.5, caller="alice", per_request=3)
    write_feedback(ids[:300], [1] * 150 + [0] * 150, T0 + timedelta(minutes=50), by="alice")
    start, end = window(0)
    now = T0 + timedelta(hours=2)
    in_process = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx(None), now=now)
    a = _doc(in_process["result_uri"])

    started = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx(1000), now=now)
    assert started["status"] == "scaled_out" and started["estimate"]["shards"] >= 2, started
    out = _finish(local["clients"], started["execution_arn"])
    b = _doc(out["result_uri"])
    assert out["engine"] == "workflow" and b["status"] == a["status"] == "ok"
    assert b["n_current"] == a["n_current"] == 2400 and b["captures"]["shards"] >= 2
    assert b["drifted_columns"] == a["drifted_columns"] and b["dataset_drifted"] == a["dataset_drifted"]
    for name, col in a["columns"].items():
        other = b["columns"][name]
        assert (other["method"], other["drifted"]) == (col["method"], col["drifted"]), name
        if col["method"] != "wasserstein" and col["statistic"] is not None:  # Wasserstein: see docs
            assert other["statistic"] == pytest.approx(col["statistic"], rel=1e-9), name
    assert b["performance"]["n_labels"] == a["performance"]["n_labels"] == 300
    assert local["functions"].calls.count(f"{local['env']['DRIFTLINE_ENV']}-driftline-drift-shard") >= 2
    done = DriftHistory(_ctx(1000).control_table).get(MODEL, end)  # reduce completed the dispatch's item
    assert done is not None and done.status == "ok" and done.execution_arn == started["execution_arn"]
    assert done.listed_until and b["captures"]["listed_until"] == done.listed_until  # late rows stay counted


def test_v1_captures_and_malformed_lines_give_the_same_result_on_both_paths(
    local: dict[str, Any], credit_fs: Any
) -> None:
    """A window mixing v2 records, v1 captures (one line per row) and an object with a truncated record and
    a garbage line: both paths count the same 2 malformed lines and check the same rows the same way."""
    v = register_champion(credit_fs)
    v2_ids = write_v2_captures(credit_fs, v, T0, 900, seed=11, shift=0.5, caller="alice", per_request=3)
    v1_ids = write_captures(credit_fs, v, T0 + timedelta(minutes=1), 600, seed=12, shift=0.5, caller="alice")
    good = json.dumps({"v": 2, "request_id": "cut", "version": v, "role": "champion", "ts": T0.isoformat()})
    body = f"{good[:40]}\nthis is not JSON\n".encode()  # a record cut off by a failed write, and garbage
    key = f"captures/model={MODEL}/{T0:%Y/%m/%d/%H}/{MODEL}-broken"
    aws_mod.client("s3").put_object(Bucket=local["env"]["CAPTURES_BUCKET"], Key=key, Body=body)
    write_feedback(v2_ids[:100] + v1_ids[:100], [1, 0] * 100, T0 + timedelta(minutes=50), by="alice")
    start, end = window(0)
    now = T0 + timedelta(hours=2)
    a = _doc(run_check(MODEL, window_start=start, window_end=end, ctx=_ctx(None), now=now)["result_uri"])

    started = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx(1000), now=now)
    assert started["status"] == "scaled_out", started
    b = _doc(_finish(local["clients"], started["execution_arn"])["result_uri"])
    assert a["captures"]["bad_lines"] == b["captures"]["bad_lines"] == 2
    assert "2 capture lines were not JSON objects and were skipped" in a["notes"]
    assert "2 capture lines were not JSON objects and were skipped" in b["notes"]
    assert b["status"] == a["status"] == "ok" and b["n_current"] == a["n_current"] == 1500
    assert b["drifted_columns"] == a["drifted_columns"]
    for name, col in a["columns"].items():
        other = b["columns"][name]
        assert (other["method"], other["drifted"]) == (col["method"], col["drifted"]), name
        if col["method"] != "wasserstein" and col["statistic"] is not None:  # Wasserstein: see docs
            assert other["statistic"] == pytest.approx(col["statistic"], rel=1e-9), name
    assert b["performance"]["n_labels"] == a["performance"]["n_labels"] == 200


def test_a_large_window_is_checked_again_by_the_workflow_when_late_rows_arrive(
    local: dict[str, Any], credit_fs: Any
) -> None:
    """Late rows above the share call for a re-check; the window is above the scale-out size, so the re-check
    goes through the workflow (never a whole large window in-process), which records it as a re-check."""
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 1200, seed=13, per_request=3)
    time.sleep(1.1)  # S3 dates objects to the second: the check's listing must come after them
    start, end = window(0)
    first = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx(None), now=T0 + timedelta(hours=2))
    assert first["status"] == "ok" and first["n_current"] == 1200
    time.sleep(1.1)
    write_v2_captures(credit_fs, v, T0, 600, seed=14, shift=1.0, per_request=3)  # delivered after the check
    time.sleep(2.2)
    second = run_check(MODEL, ctx=_ctx(1000), now=T0 + timedelta(hours=2, minutes=5))
    (late,) = second["late"]["windows"]
    assert late["late_rows"] == 600 and not late["rechecked"], late
    assert "being checked again by the scale-out workflow" in late["note"]
    arn = late["note"].rsplit("(", 1)[1].rstrip(")")
    out = _finish(local["clients"], arn)
    doc = _doc(out["result_uri"])
    assert out["engine"] == "workflow" and doc["rechecked"] is True and doc["late_rows"] == 600
    assert doc["n_current"] == 1800 and doc["captures"]["shards"] >= 2
    item = DriftHistory(_ctx(1000).control_table).get(MODEL, end)
    assert item is not None and (item.status, item.rechecks, item.late_rows) == ("ok", 1, 0)
    assert item.execution_arn == arn


def test_failing_shard_is_retried_then_the_check_is_incomplete(local: dict[str, Any], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 1500, seed=8)
    start, end = window(0)
    local["functions"].fail_shard = "shard=0"
    started = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx(1000), now=T0 + timedelta(hours=2))
    out = _finish(local["clients"], started["execution_arn"])
    (failed,) = local["functions"].failed
    assert out["status"] == "incomplete" and failed in out["message"] and not out["alarm"], out
    attempts = [c for c in local["functions"].calls if c.endswith("-drift-shard")]
    assert len(attempts) >= started["estimate"]["shards"] + 2  # the failing item was tried again


def test_failed_query_is_a_failed_check_with_athenas_message(local: dict[str, Any], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    write_v2_captures(credit_fs, v, T0, 1500, seed=9)
    local["clients"]("glue").delete_table(DatabaseName=local["env"]["GLUE_DATABASE"], Name=feedback_table_name(MODEL))
    start, end = window(0)
    started = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx(1000), now=T0 + timedelta(hours=2))
    out = _finish(local["clients"], started["execution_arn"])
    assert out["status"] == "failed" and "feedback_credit_default" in out["message"], out
    done = DriftHistory(_ctx(1000).control_table).get(MODEL, end)
    assert done is not None and done.status == "failed" and done.listed_until  # the dispatch's listing mark


def test_v3_columns_mixed_with_v2_v1_and_malformed_v3_give_the_same_result_on_both_paths(
    local: dict[str, Any], credit_fs: Any
) -> None:
    """A window of v3 records (the rows by column, what the serving writer writes), v2 records, v1 captures and
    two malformed v3 lines (a column one value short; an ``index`` longer than the outputs), read from JSON
    lines through the Glue table by the local Athena: both paths count the same 2 malformed lines and check
    the same rows the same way."""
    v = register_champion(credit_fs)
    v3_ids = write_v2_captures(credit_fs, v, T0, 900, seed=21, shift=0.5, caller="alice", per_request=5, columns=True)
    v2_ids = write_v2_captures(credit_fs, v, T0, 300, seed=22, shift=0.5, caller="alice", per_request=3)
    v1_ids = write_captures(credit_fs, v, T0 + timedelta(minutes=1), 300, seed=23, shift=0.5, caller="alice")
    bucket = local["env"]["CAPTURES_BUCKET"]
    s3 = aws_mod.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"captures/model={MODEL}/")["Contents"]]
    firsts = [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read().splitlines()[0]) for k in keys]
    (good,) = [r for r in firsts if r.get("v") == 3]
    assert "cols" in good and "rows" not in good
    short = {**good, "request_id": "short", "cols": {**good["cols"], "age": good["cols"]["age"][:-1]}}
    long_index = {**good, "request_id": "long-index", "index": list(range(len(good["outputs"]) + 1))}
    body = "\n".join(json.dumps(r) for r in (short, long_index)).encode()
    s3.put_object(Bucket=bucket, Key=f"captures/model={MODEL}/{T0:%Y/%m/%d/%H}/{MODEL}-malformed-v3", Body=body)
    write_feedback(v3_ids[:100] + v2_ids[:50] + v1_ids[:50], [1, 0] * 100, T0 + timedelta(minutes=50), by="alice")
    start, end = window(0)
    now = T0 + timedelta(hours=2)
    a = _doc(run_check(MODEL, window_start=start, window_end=end, ctx=_ctx(None), now=now)["result_uri"])

    started = run_check(MODEL, window_start=start, window_end=end, ctx=_ctx(1000), now=now)
    assert started["status"] == "scaled_out", started
    b = _doc(_finish(local["clients"], started["execution_arn"])["result_uri"])
    assert a["captures"]["bad_lines"] == b["captures"]["bad_lines"] == 2
    assert b["status"] == a["status"] == "ok" and b["n_current"] == a["n_current"] == 1500
    assert b["drifted_columns"] == a["drifted_columns"]
    for name, col in a["columns"].items():
        other = b["columns"][name]
        assert (other["method"], other["drifted"]) == (col["method"], col["drifted"]), name
        if col["method"] != "wasserstein" and col["statistic"] is not None:  # Wasserstein: see docs
            assert other["statistic"] == pytest.approx(col["statistic"], rel=1e-9), name
    assert b["performance"]["n_labels"] == a["performance"]["n_labels"] == 200
