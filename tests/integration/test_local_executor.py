"""The local Lambda executor running real handler modules in warm worker processes."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.local.executor import FunctionSpec, LambdaExecutor
from driftline.local.state import pid_alive

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = "tests.fixtures.lambda_handlers"


def spec(handler: str, timeout_s: float = 5.0, **kw: Any) -> FunctionSpec:
    name = kw.pop("name", f"fn-{handler.rsplit('.', 1)[-1]}")
    return FunctionSpec(
        name=name,
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        handler=handler if "." in handler else f"{FIXTURES}.{handler}",
        timeout_s=timeout_s,
        memory_mb=256,
        env=kw.pop("env", {"STAGE": "test"}),
        code_paths=(str(ROOT),),
        **kw,
    )


@pytest.fixture
def executor() -> Iterator[tuple[LambdaExecutor, list[tuple[str, str]], list[tuple[str, list[str]]]]]:
    lines: list[tuple[str, str]] = []
    logs: list[tuple[str, list[str]]] = []
    ex = LambdaExecutor(
        on_line=lambda s, line: lines.append((s.name, line)),
        on_logs=lambda s, stream, events: logs.append((stream, [m for _, m in events])),
        max_workers_per_function=2,
    )
    yield ex, lines, logs
    ex.shutdown()


def payload(result: Any) -> Any:
    return json.loads(result.payload)


def test_warm_worker_keeps_module_state_and_gets_a_lambda_context(executor: Any) -> None:
    ex, lines, logs = executor
    os.environ["DRIFTLINE_TEST_HOST_ONLY"] = "leak?"
    try:
        first = ex.invoke(spec("echo"), '{"a": 1}', request_id="req-1")
        second = ex.invoke(spec("echo"), '{"a": 2}')
    finally:
        del os.environ["DRIFTLINE_TEST_HOST_ONLY"]
    one, two = payload(first), payload(second)
    assert not first.error and first.cold and not second.cold
    assert one["event"] == {"a": 1} and two["event"] == {"a": 2}
    assert (one["calls"], two["calls"]) == (1, 2) and one["pid"] == two["pid"]
    assert one["request_id"] == "req-1" and one["function_name"] == "fn-echo" and one["memory_limit_in_mb"] == "256"
    assert one["invoked_function_arn"].endswith(":function:fn-echo") and 0 < one["remaining_ms"] <= 5000
    env = one["env"]
    assert env["STAGE"] == "test" and env["AWS_LAMBDA_FUNCTION_NAME"] == "fn-echo" and env["TZ"] == ":UTC"
    assert env["_HANDLER"] == f"{FIXTURES}.echo" and "DRIFTLINE_TEST_HOST_ONLY" not in env
    assert ("fn-echo", "echo called 1 times") in lines
    stream, log = logs[0]
    assert log[0] == "START RequestId: req-1 Version: $LATEST" and "echo called 1 times" in log
    assert log[-2] == "END RequestId: req-1" and log[-1].startswith("REPORT RequestId: req-1\tDuration:")
    assert "Init Duration" in log[-1] and "Init Duration" not in logs[1][1][-1]
    assert logs[1][0] == stream  # one log stream per execution environment
    assert "echo called 1 times" in first.log_tail


def test_handler_exception_has_lambdas_error_shape(executor: Any) -> None:
    ex, lines, _ = executor
    result = ex.invoke(spec("fail"), '{"why": "no label column"}')
    err = payload(result)
    assert result.error and result.error_type == "ValidationFailed"
    assert err["errorMessage"] == "bad input: no label column" and err["requestId"] == result.request_id
    assert len(err["stackTrace"]) == 1 and "in fail" in err["stackTrace"][0]  # the runtime's frames are hidden
    assert any("[ERROR] ValidationFailed" in line for _, line in lines)


def test_timeout_kills_the_worker_and_the_next_call_gets_a_fresh_one(executor: Any) -> None:
    ex, _, logs = executor
    pid = payload(ex.invoke(spec("sleep", timeout_s=1.0), '{"seconds": 0}'))["pid"]
    t0 = time.monotonic()
    result = ex.invoke(spec("sleep", timeout_s=1.0), '{"seconds": 30}')
    assert time.monotonic() - t0 < 5
    err = payload(result)
    assert err["errorType"] == "Sandbox.Timedout"
    assert err["errorMessage"] == f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds"
    assert any("Task timed out after 1.00 seconds" in line for line in logs[-1][1])
    assert not pid_alive(pid)
    again = ex.invoke(spec("sleep", timeout_s=1.0), '{"seconds": 0}')
    assert not again.error and again.cold and payload(again)["pid"] != pid


def test_non_json_result_is_a_marshal_error(executor: Any) -> None:
    ex, _, _ = executor
    err = payload(ex.invoke(spec("not_json"), "{}"))
    assert err["errorType"] == "Runtime.MarshalError"
    assert "Object of type datetime is not JSON serializable" in err["errorMessage"]
    assert not ex.invoke(spec("not_json"), "{}").cold  # the worker survives a marshal error


def test_crashed_worker_is_replaced(executor: Any) -> None:
    ex, lines, _ = executor
    first = ex.invoke(spec("crash"), "{}")
    err = payload(first)
    assert err["errorType"] == "Runtime.ExitError" and "exit status 3" in err["errorMessage"]
    assert ("fn-crash", "about to crash") in lines
    assert ex.invoke(spec("crash"), "{}").cold


def test_missing_module_is_an_import_error_and_is_retried(executor: Any) -> None:
    ex, _, _ = executor
    for _ in range(2):
        result = ex.invoke(spec("lambdas.not_written_yet.handler"), "{}")
        err = payload(result)
        assert err["errorType"] == "Runtime.ImportModuleError" and result.cold
        assert "Unable to import module 'lambdas.not_written_yet'" in err["errorMessage"]
    err = payload(ex.invoke(spec(f"{FIXTURES}.no_such_function"), "{}"))
    assert err["errorType"] == "Runtime.HandlerNotFound"


def test_invalid_event_is_an_unmarshal_error(executor: Any) -> None:
    ex, _, _ = executor
    assert payload(ex.invoke(spec("echo"), "{not json"))["errorType"] == "Runtime.UnmarshalError"


def test_overlapping_invocations_scale_out_up_to_the_bound(executor: Any) -> None:
    ex, _, _ = executor
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(ex.invoke(spec("sleep"), '{"seconds": 0.7}'))) for _ in range(4)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    pids = {payload(r)["pid"] for r in results}
    assert len(pids) == 2 and all(not r.error for r in results)
    assert elapsed >= 1.4  # two waves of two: the bound holds
    assert ex.stats()["fn-sleep"]["workers"] == 2


def test_configuration_change_starts_new_environments(executor: Any) -> None:
    ex, _, _ = executor
    old = payload(ex.invoke(spec("echo"), "{}"))
    new = payload(ex.invoke(spec("echo", env={"STAGE": "changed"}), "{}"))
    assert new["env"]["STAGE"] == "changed" and new["pid"] != old["pid"] and new["calls"] == 1
    time.sleep(0.5)
    assert not pid_alive(old["pid"])


def test_shutdown_ends_every_worker() -> None:
    ex = LambdaExecutor()
    pids = [payload(ex.invoke(spec("echo", name=f"f{i}"), "{}"))["pid"] for i in range(3)]
    assert all(pid_alive(p) for p in pids)
    ex.shutdown()
    assert not any(pid_alive(p) for p in pids)
    with pytest.raises(RuntimeError, match="shut down"):
        ex.invoke(spec("echo"), "{}")
