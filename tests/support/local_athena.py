"""The local Athena for tests: a moto server on a free port with moto's Athena delegated to the DuckDB
engine, and the Step Functions poll loop (start → Wait → GetQueryExecution → Choice) that workflows
use because moto's interpreter has no ``.sync``. One definition, so every test module exercises the
emulator the same way."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from driftline.local.athena import AthenaEngine, EngineOptions, GlueCatalog, s3_filesystem
from driftline.local.athena_hook import install_athena

__all__ = ["REGION", "AthenaEmulator", "athena_emulator", "athena_poll_loop", "emulated_workflows", "run_to_end"]

REGION = "us-east-1"


@dataclass(frozen=True)
class AthenaEmulator:
    """Where the emulator listens and a client factory for it (any credentials do)."""

    endpoint: str
    port: int
    clients: Callable[[str], Any]


@contextmanager
def athena_emulator(*, threads: int = 1, max_concurrent: int = 2) -> Iterator[AthenaEmulator]:
    """A moto server whose Athena runs queries on DuckDB over its own Glue and S3, until the context ends."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _reset(endpoint)  # moto's backends are per process: start from none of an earlier test's buckets or tables
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)

    def clients(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)

    def engine_for(account: str, region: str) -> AthenaEngine:
        fs = s3_filesystem(endpoint, "test", "test", region)
        options = EngineOptions(threads=threads, max_concurrent=max_concurrent)
        return AthenaEngine(GlueCatalog(clients("glue")), fs, options)

    try:
        with install_athena(engine_for):
            yield AthenaEmulator(endpoint=endpoint, port=port, clients=clients)
    finally:
        _reset(endpoint)
        server.stop()


def emulated_workflows(
    emu: AthenaEmulator,
    platform_def: Any,
    account: str,
    monkeypatch: Any,
    invoke: Callable[[Any, Any], tuple[str, bool, str]],
) -> dict[str, str]:
    """Point this process at ``emu`` with the platform provisioned and its state machines executing,
    every Lambda task of a workflow answered by ``invoke(function, event)`` in this process; returns the
    functions' environment (also set). EventBridge targets are removed: moto cannot deliver to Lambda
    (the local runtime does that), so a test calls the next handler itself."""
    from moto.awslambda.models import LambdaFunction
    from moto.core.config import default_user_config

    from driftline import aws as aws_mod
    from driftline.local.provision import provision_platform

    monkeypatch.setenv("MOTO_PORT", str(emu.port))
    for k, v in {
        "AWS_ENDPOINT_URL": emu.endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", lambda fn, event=None: invoke(fn, event))
    aws_mod.reset_clients()
    names = provision_platform(platform_def, emu.clients, REGION, account)
    events = emu.clients("events")
    for r in platform_def.event_rules:
        events.remove_targets(Rule=platform_def.name(r.logical), EventBusName=platform_def.event_bus, Ids=["target"])
    env: dict[str, str] = names.env(platform_def)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def _reset(endpoint: str) -> None:
    """Empty every moto backend of this process (the server's ``/moto-api/reset``)."""
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:  # nosec B310 - the local emulator
        resp.read()


def athena_poll_loop(
    query: str, workgroup: str, database: str, *, scanned: bool = False, results_path: str | None = None
) -> dict[str, Any]:
    """The ASL that runs ``query`` on Athena and polls until it ends: ``$.status.state`` (and
    ``$.status.scanned`` with ``scanned``), the rows at ``results_path`` (the whole output without one);
    a failed or cancelled query fails the execution with ``QueryFailed``."""
    selector = {"state.$": "$.QueryExecution.Status.State"}
    if scanned:
        selector["scanned.$"] = "$.QueryExecution.Statistics.DataScannedInBytes"
    results: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::athena:getQueryResults",
        "Parameters": {"QueryExecutionId.$": "$.query.id"},
        "ResultSelector": {"rows.$": "$.ResultSet.Rows"},
        "End": True,
    }
    if results_path is not None:
        results["ResultPath"] = results_path
    return {
        "StartAt": "Start",
        "States": {
            "Start": {
                "Type": "Task",
                "Resource": "arn:aws:states:::athena:startQueryExecution",
                "Parameters": {
                    "QueryString": query,
                    "WorkGroup": workgroup,
                    "QueryExecutionContext": {"Database": database},
                },
                "ResultSelector": {"id.$": "$.QueryExecutionId"},
                "ResultPath": "$.query",
                "Next": "Wait",
            },
            "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Get"},
            "Get": {
                "Type": "Task",
                "Resource": "arn:aws:states:::athena:getQueryExecution",
                "Parameters": {"QueryExecutionId.$": "$.query.id"},
                "ResultSelector": selector,
                "ResultPath": "$.status",
                "Next": "Done?",
            },
            "Done?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.status.state", "StringEquals": "SUCCEEDED", "Next": "Results"},
                    {"Variable": "$.status.state", "StringEquals": "FAILED", "Next": "Failed"},
                    {"Variable": "$.status.state", "StringEquals": "CANCELLED", "Next": "Failed"},
                ],
                "Default": "Wait",
            },
            "Results": results,
            "Failed": {"Type": "Fail", "Error": "QueryFailed"},
        },
    }


def run_to_end(
    sfn: Any, definition: dict[str, Any], *, name: str, role_arn: str, timeout_s: float, poll_s: float = 0.25
) -> tuple[str, dict[str, Any]]:
    """Create a state machine ``name-<random>`` from ``definition``, run it with ``{}`` and wait until it
    ends: its execution ARN and last description (the caller asserts on its status and output)."""
    arn = sfn.create_state_machine(
        name=f"{name}-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=role_arn
    )["stateMachineArn"]
    run: str = sfn.start_execution(stateMachineArn=arn, name=str(uuid.uuid4()), input="{}")["executionArn"]
    deadline = time.monotonic() + timeout_s
    while (desc := sfn.describe_execution(executionArn=run))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{run} did not finish in {timeout_s} s"
        time.sleep(poll_s)
    return run, dict(desc)
