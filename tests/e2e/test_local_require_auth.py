"""``driftline local up --require-auth``: the local API answers like the deployed one for SigV4: unsigned
requests to IAM routes are refused, the local client may predict but not approve, and the approver's
request reaches the approve function carrying the identity its signature proved (not a header's)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from driftline.local.gateway_auth import CREDENTIALS_FILE, call_api, local_credentials
from driftline.retraining.approval_api import LOCAL_PRINCIPAL_HEADER
from tests.e2e.conftest import FIXTURES, OVERRIDES, ROOT, LocalPlatformHandle, start_platform, stop_platform

pytestmark = pytest.mark.e2e

PREDICT = "/v1/models/churn/predict"
APPROVAL = "/v1/models/churn/versions/3/approval"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatformHandle]:
    overrides = {**OVERRIDES, "approve": f"{FIXTURES}.api"}  # the echo handler shows the event it was given
    handle = start_platform(tmp_path_factory.mktemp("driftline-auth"), overrides, "--require-auth")
    try:
        yield handle
    finally:
        stop_platform(handle)


def _call(p: LocalPlatformHandle, method: str, path: str, who: str | None, body: bytes = b"") -> tuple[int, Any]:
    creds = local_credentials(p.state_dir, who) if who else None
    status, text = call_api(p.api_url, method, path, body=body, credentials=creds, region=p.region)
    return status, json.loads(text)


def test_unsigned_requests_to_iam_routes_are_refused_and_public_ones_pass(secured: LocalPlatformHandle) -> None:
    assert _call(secured, "POST", PREDICT, None, b"{}") == (403, {"message": "Missing Authentication Token"})
    assert _call(secured, "POST", APPROVAL, None, b"{}") == (403, {"message": "Missing Authentication Token"})
    assert _call(secured, "GET", "/health", None)[0] == 200
    assert _call(secured, "GET", "/openapi.json", None)[0] == 200


def test_the_client_may_predict_and_may_not_approve(secured: LocalPlatformHandle) -> None:
    path = secured.state_dir / CREDENTIALS_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    status, echoed = _call(secured, "POST", PREDICT, "client", b'{"rows": []}')
    assert status == 201  # what the echo handler answers to a POST: the request reached it
    client_arn = f"arn:aws:iam::{secured.account}:user/{secured.name('api-client')}"
    assert echoed["requestContext"]["identity"]["userArn"] == client_arn
    status, refused = _call(secured, "POST", APPROVAL, "client", b'{"decision": "approve"}')
    assert status == 403
    assert refused["message"] == (
        f"User: {client_arn} is not authorized to perform: execute-api:Invoke on resource: "
        f"arn:aws:execute-api:{secured.region}:{secured.account}:local/live/POST{APPROVAL}"
    )


def test_the_approver_reaches_the_approve_function_with_the_proved_identity(secured: LocalPlatformHandle) -> None:
    from botocore.credentials import Credentials

    from driftline.local.gateway_auth import sign_headers

    creds: Credentials = local_credentials(secured.state_dir, "approver")
    url = f"{secured.api_url}{APPROVAL}"
    body = b'{"decision": "approve", "reason": "checked"}'
    headers = sign_headers("POST", url, body=body, credentials=creds, region=secured.region)
    headers[LOCAL_PRINCIPAL_HEADER] = "arn:aws:iam::123456789012:user/someone-else"  # unsigned: means nothing
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=60) as answer:
        echoed = json.loads(answer.read())
    identity = echoed["requestContext"]["identity"]
    assert identity["userArn"] == f"arn:aws:iam::{secured.account}:user/{secured.name('api-approver')}"
    assert identity["accessKey"] == creds.access_key and identity["accountId"] == secured.account
    assert echoed["path"] == APPROVAL
    assert _call(secured, "POST", PREDICT, "approver", b"{}")[0] == 403  # the approver policy is the approval only


def test_cli_call_signs_with_the_local_keys(secured: LocalPlatformHandle) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    base = [sys.executable, "-m", "driftline.cli.main", "local", "call"]
    flags = ["--state-dir", str(secured.state_dir)]
    unsigned = subprocess.run(
        [*base, "POST", PREDICT, "--data", "{}", *flags], cwd=ROOT, capture_output=True, text=True, env=env, check=False
    )
    assert unsigned.returncode == 1 and "Missing Authentication Token" in unsigned.stdout
    assert "--as client" in unsigned.stderr
    signed = subprocess.run(
        [*base, "POST", PREDICT, "--data", "{}", "--as", "client", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["requestContext"]["identity"]["userArn"].endswith(secured.name("api-client"))
