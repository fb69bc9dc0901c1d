"""The running local platform runs each function with its own role's session, and the emulator denies
what the function's declared access does not allow, with AccessDenied, as the deployed role would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LocalPlatformHandle, start_platform, stop_platform

PROBE = "tests.fixtures.iam_probe.handler"


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatformHandle]:
    handle = start_platform(tmp_path_factory.mktemp("driftline-iam"), {"serve": PROBE})
    try:
        yield handle
    finally:
        stop_platform(handle)


def _probe(p: LocalPlatformHandle, service: str, op: str, **args: Any) -> dict[str, Any]:
    out = p.client("lambda").invoke(
        FunctionName=p.name("serve"), Payload=json.dumps({"service": service, "op": op, "args": args}).encode()
    )
    result: dict[str, Any] = json.loads(out["Payload"].read())
    return result


def test_the_function_runs_as_its_own_role_and_is_denied_what_it_does_not_declare(probed: LocalPlatformHandle) -> None:
    p = probed
    ok = _probe(p, "dynamodb", "get_item", TableName=p.name("registry"), Key={"pk": {"S": "x"}, "sk": {"S": "y"}})
    assert ok["error"] is None, ok
    assert f"assumed-role/{p.name('serve')}-fn-role/" in ok["identity"]
    assert _probe(p, "s3", "list_objects_v2", Bucket=p.bucket("artifacts"))["error"] is None
    # serve reads the registry, never writes it; never touches the control table or the features bucket
    assert (
        _probe(p, "dynamodb", "put_item", TableName=p.name("registry"), Item={"pk": {"S": "x"}, "sk": {"S": "y"}})[
            "error"
        ]
        == "AccessDeniedException"
    )
    assert (
        _probe(p, "dynamodb", "get_item", TableName=p.name("control"), Key={"pk": {"S": "x"}, "sk": {"S": "y"}})[
            "error"
        ]
        == "AccessDeniedException"
    )
    assert _probe(p, "s3", "list_objects_v2", Bucket=p.bucket("features"))["error"] == "AccessDenied"
    # the platform's own clients (the test's root credentials) are not checked
    p.client("dynamodb").put_item(TableName=p.name("control"), Item={"pk": {"S": "x"}, "sk": {"S": "y"}})
