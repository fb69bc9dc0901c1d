"""checkov over the synthesized templates: every finding is either fixed or skipped here with a reason.

checkov runs from its own pinned tool environment (``uv tool run``): its dependency pins
(urllib3 1.x among them) would otherwise downgrade the project's own environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import CfnElement

from tests.infrastructure.conftest import Synth

CHECKOV = "checkov==3.2.459"

# Skipped everywhere, with the reason.
SKIPPED = {
    "CKV_AWS_115": "Reserved concurrency is configurable for the serving function (serving.reserved_concurrency); "
    "reserving it for every function would take from the account pool (and fails on new accounts "
    "whose limit is 10). Retraining is already limited to one run per model.",
    "CKV_AWS_117": "No function talks to anything inside a VPC; a VPC would add NAT gateway cost while idle and "
    "cold-start latency, for no isolation gain (all access is IAM-authorized AWS APIs).",
    "CKV_AWS_120": "Predictions are per request and must never be served from a cache; API Gateway caching "
    "also bills hourly while idle.",
}
# Accepted on exactly these resources, with the reason: each entry names the constructs it accepts,
# resolved to their (stack, logical id) in the synthesized app, so a finding is accepted only on the
# very resource named here, never on another whose id or code happens to contain a word.
Located = tuple[str, str]
"""(template file name, CloudFormation logical id)"""


def _located(stack: Any, construct: Any) -> Located:
    cfn = construct if isinstance(construct, CfnElement) else construct.node.default_child
    return f"{stack.stack_name}.template.json", str(stack.resolve(stack.get_logical_id(cfn)))


def _notification_handler(app: Any) -> list[Located]:
    handler = app.data.node.find_child(NOTIFICATIONS_HANDLER_ID)
    return [_located(app.data, handler.node.find_child("Resource"))]


def _access_log_bucket(app: Any) -> list[Located]:
    return [_located(app.data, app.data.access_logs)]


def _public_methods(app: Any) -> list[Located]:
    return [
        _located(app.serving, app.serving.api.root.resource_for_path(r.path).node.find_child(r.method))
        for r in app.platform.routes
        if not r.authorized
    ]


NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
"""CDK's fixed id of its singleton S3-notification handler (aws-s3 notifications-resource-handler)."""

ACCEPTED_ON: dict[str, tuple[Callable[[Any], list[Located]], str]] = {
    "CKV_AWS_116": (
        _notification_handler,
        "CDK's own deployment-time handler for S3 notification configuration, invoked synchronously "
        "by CloudFormation; it has no asynchronous invocations to dead-letter.",
    ),
    "CKV_AWS_18": (
        _access_log_bucket,
        "The access-log bucket is the destination of every other bucket's access logs; "
        "logging it to itself would loop.",
    ),
    "CKV_AWS_59": (
        _public_methods,
        "The unauthenticated routes of the platform definition (GET /health, GET /openapi.json) are public "
        "by design: no model details, throttled on their own; every model route requires IAM or an API key.",
    ),
}


def accepted_findings(app: Any) -> dict[str, set[Located]]:
    """check id -> the exact (template, logical id) pairs it is accepted on."""
    return {check: set(where(app)) for check, (where, _) in ACCEPTED_ON.items()}


def is_accepted(finding: dict[str, Any], accepted: dict[str, set[Located]]) -> bool:
    """A checkov finding is accepted when its check id and its resource are both named exactly."""
    _, _, logical_id = str(finding["resource"]).partition(".")
    located = (Path(str(finding.get("file_path", ""))).name, logical_id)
    return located in accepted.get(str(finding["check_id"]), set())


def _uv() -> str:
    return shutil.which("uv") or str(Path(sys.executable).with_name("uv"))


def test_checkov_has_no_unjustified_findings(synth: Synth) -> None:
    files = sorted(str(p) for p in synth.outdir.glob("*.template.json"))
    args = [
        _uv(),
        "tool",
        "run",
        "--from",
        CHECKOV,
        "checkov",
        "--quiet",
        "--compact",
        "--framework",
        "cloudformation",
        "-o",
        "json",
        "--skip-check",
        ",".join(SKIPPED),
    ]
    for f in files:
        args += ["-f", f]
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    if not proc.stdout.strip():
        pytest.fail(f"checkov produced no report: {proc.stderr[-2000:]}")
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    accepted = accepted_findings(synth.app)
    unjustified = [
        f"{f['check_id']} {f['check_name']} @ {f['resource']} {f.get('file_path', '')}"
        for report in reports
        for f in report["results"]["failed_checks"]
        if not is_accepted(f, accepted)
    ]
    assert not unjustified, "\n".join(unjustified)


def test_checkov_acceptances_name_existing_resources_exactly(synth: Synth) -> None:
    """Every acceptance resolves to resources of the synthesized templates, and a resource merely
    containing an accepted name (the old substring match) is not accepted."""
    accepted = accepted_findings(synth.app)
    for check, located in accepted.items():
        assert located, f"{check}: accepted on nothing"
        for file, logical_id in located:
            assert logical_id in synth.templates[_kind(synth, file)]["Resources"], (check, file, logical_id)
    (file, logical_id), *_ = sorted(accepted["CKV_AWS_18"])
    same = {"check_id": "CKV_AWS_18", "resource": f"AWS::S3::Bucket.{logical_id}", "file_path": f"/x/{file}"}
    assert is_accepted(same, accepted)
    lookalike = {**same, "resource": f"AWS::S3::Bucket.Archive{logical_id}"}
    other_check = {**same, "check_id": "CKV_AWS_21"}
    other_stack = {**same, "file_path": "/x/Other.template.json"}
    assert not any(is_accepted(f, accepted) for f in (lookalike, other_check, other_stack))


def _kind(synth: Synth, file: str) -> str:
    app = synth.app
    kinds = {app.data: "data", app.serving: "serving", app.monitoring: "monitoring", app.pipeline: "pipeline"}
    return next(kind for stack, kind in kinds.items() if f"{stack.stack_name}.template.json" == file)
