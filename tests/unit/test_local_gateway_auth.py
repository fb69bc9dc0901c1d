"""SigV4 at the local gateway (``local up --require-auth``): API Gateway's 403s for every bad or missing
signature, the caller's identity policies decide, the proved identity reaches the event, and no header
of any shape makes the gateway fail."""

from __future__ import annotations

import http.client
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from driftline import config
from driftline.local.apigw import ApiGateway, RouteTable
from driftline.local.executor import InvocationResult
from driftline.local.gateway_auth import (
    CREDENTIALS_FILE,
    GatewayAuthError,
    GatewayAuthorizer,
    SignedRequest,
    credentials_hint,
    provision_api_callers,
    sign_headers,
)
from driftline.local.moto_state import EmulatorKey
from driftline.platform import API_STAGE, INVOKE_ACTION, build_platform, route_auth
from driftline.retraining.approval_api import LOCAL_PRINCIPAL_HEADER

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
HOST = "127.0.0.1:3000"
PREDICT = "/v1/models/churn/predict"
RESOURCE = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:local/{API_STAGE}/POST{PREDICT}"
USER = EmulatorKey(
    access_key_id="AKIAEXAMPLECLIENT001",
    secret_access_key="client-secret",
    session_token=None,
    arn=f"arn:aws:iam::{ACCOUNT}:user/client",
    user_id="AIDACLIENT",
    account=ACCOUNT,
    active=True,
    expires_at=None,
)
SESSION = EmulatorKey(
    access_key_id="ASIAEXAMPLESESSION01",
    secret_access_key="session-secret",
    session_token="session-token",
    arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/approver/alice",
    user_id="AROAAPPROVER:alice",
    account=ACCOUNT,
    active=True,
    expires_at=datetime.now(UTC) + timedelta(hours=1),
)
MESSAGES = (
    "Missing Authentication Token",
    "Authorization header requires",
    "Invalid key=value pair (missing equal-sign) in Authorization header",
    "Credential should be scoped",
    "Date must be in",
    "Date in Credential scope does not match",
    "Signature expired:",
    "Signature not yet current:",
    "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    "The security token included in the request is invalid.",
    "The request signature we calculated does not match the signature you provided.",
)
"""API Gateway's messages for an unauthenticated request (a fuzzed header must get one of them)."""


def _authorizer(
    keys: tuple[EmulatorKey, ...] = (USER, SESSION),
    decisions: dict[str, str] | None = None,
    clock: datetime | None = None,
) -> GatewayAuthorizer:
    by_id = {k.access_key_id: k for k in keys}
    return GatewayAuthorizer(
        region=REGION,
        account=ACCOUNT,
        lookup=by_id.get,
        decide=lambda key, action, resource: (
            (decisions or {}).get(key.arn, "allow") if action == INVOKE_ACTION else "implicit"
        ),
        clock=(lambda: clock) if clock is not None else (lambda: datetime.now(UTC)),
    )


def _signed(
    key: EmulatorKey = USER,
    *,
    method: str = "POST",
    path: str = PREDICT,
    query: str = "",
    body: bytes = b'{"rows": [{"x": 1}]}',
    secret: str | None = None,
    region: str = REGION,
    token: bool = True,
) -> SignedRequest:
    creds = Credentials(key.access_key_id, secret or key.secret_access_key, key.session_token if token else None)
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    headers = sign_headers(
        method, url, body=body, headers={"Content-Type": "application/json"}, credentials=creds, region=region
    )
    return SignedRequest(method, path, query, [("Host", HOST), *headers.items()], body)


def _refusal(authorizer: GatewayAuthorizer, request: SignedRequest) -> GatewayAuthError:
    with pytest.raises(GatewayAuthError) as e:
        authorizer.authorize(request)
    return e.value


def _replace(request: SignedRequest, name: str, value: str | None) -> SignedRequest:
    headers = [(k, v) for k, v in request.headers if k.lower() != name.lower()]
    if value is not None:
        headers.append((name, value))
    return SignedRequest(request.method, request.path, request.query, headers, request.body)


def test_a_signed_request_proves_its_caller() -> None:
    caller = _authorizer().authorize(_signed(query="b=2&a=1"))
    assert caller.identity() == {
        "userArn": USER.arn,
        "caller": USER.user_id,
        "user": USER.user_id,
        "accountId": ACCOUNT,
        "accessKey": USER.access_key_id,
    }


def test_an_assumed_role_session_needs_its_token() -> None:
    authorizer = _authorizer()
    assert authorizer.authorize(_signed(SESSION)).arn == SESSION.arn
    without = _refusal(authorizer, _signed(SESSION, token=False))
    assert without.message == "The security token included in the request is invalid."
    wrong = _replace(_signed(SESSION), "X-Amz-Security-Token", "forged")
    assert _refusal(authorizer, wrong).message == "The security token included in the request is invalid."
    ended = EmulatorKey(**{**SESSION.__dict__, "expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    refusal = _refusal(_authorizer(keys=(ended,)), _signed(ended))
    assert (refusal.error_type, refusal.message) == (
        "ExpiredTokenException",
        "The security token included in the request is expired",
    )


def test_wrong_secret_and_tampering_are_signature_mismatches() -> None:
    authorizer = _authorizer()
    for request in (
        _signed(secret="not-the-secret"),
        SignedRequest("POST", PREDICT, "", _signed().headers, b'{"rows": []}'),  # body changed after signing
        SignedRequest("POST", "/v1/models/other/predict", "", _signed().headers, _signed().body),
        _replace(_signed(), "X-Amz-Content-SHA256", "0" * 64),
    ):
        refusal = _refusal(authorizer, request)
        assert refusal.error_type == "InvalidSignatureException"
        assert refusal.message.startswith(
            "The request signature we calculated does not match the signature you provided."
        )
        assert "The Canonical String for this request should have been" in refusal.message


def test_expired_and_future_signatures() -> None:
    later = _refusal(_authorizer(clock=datetime.now(UTC) + timedelta(minutes=6)), _signed())
    assert later.message.startswith("Signature expired: ") and later.message.endswith(" - 5 min.)")
    earlier = _refusal(_authorizer(clock=datetime.now(UTC) - timedelta(minutes=6)), _signed())
    assert earlier.message.startswith("Signature not yet current: ")
    assert _authorizer(clock=datetime.now(UTC) + timedelta(minutes=4)).authorize(_signed()).arn == USER.arn


def test_unknown_or_inactive_key() -> None:
    assert _refusal(_authorizer(keys=(SESSION,)), _signed()).message == (
        "The security token included in the request is invalid."
    )
    inactive = EmulatorKey(**{**USER.__dict__, "active": False})
    assert _refusal(_authorizer(keys=(inactive,)), _signed()).error_type == "UnrecognizedClientException"


def test_missing_header_and_other_schemes() -> None:
    authorizer = _authorizer()
    missing = _refusal(authorizer, _replace(_signed(), "Authorization", None))
    assert (missing.error_type, missing.message) == (
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )
    assert _refusal(authorizer, _replace(_signed(), "Authorization", "  ")).message == "Missing Authentication Token"
    jwt = _refusal(authorizer, _replace(_signed(), "Authorization", "eyJhbGciOi.eyJzdWIi.sig"))
    assert jwt.message.startswith("Authorization header requires 'Credential' parameter. ")
    assert jwt.message.endswith("Authorization=eyJhbGciOi.eyJzdWIi.sig")
    bearer = _refusal(authorizer, _replace(_signed(), "Authorization", "Bearer abc"))
    assert bearer.message.startswith("Invalid key=value pair (missing equal-sign) in Authorization header (hashed")


def test_credential_scope_and_signed_host() -> None:
    authorizer = _authorizer()
    assert _refusal(authorizer, _signed(region="eu-west-1")).message == (
        "Credential should be scoped to a valid region, not 'eu-west-1'. "
    )
    request = _signed()
    auth = request.header("Authorization") or ""
    for old, new, message in (
        ("/execute-api/", "/lambda/", "Credential should be scoped to correct service: 'execute-api'. "),
        ("SignedHeaders=content-type;host;", "SignedHeaders=content-type;", "'Host' or ':authority' must be a"),
    ):
        assert old in auth
        assert _refusal(authorizer, _replace(request, "Authorization", auth.replace(old, new))).message.startswith(
            message
        )
    no_date = _refusal(authorizer, _replace(request, "X-Amz-Date", None))
    assert "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header." in no_date.message
    bad_date = _refusal(authorizer, _replace(request, "X-Amz-Date", "yesterday"))
    assert bad_date.message.startswith("Date must be in ISO-8601 'basic format'. Got 'yesterday'.")


@pytest.mark.parametrize(("decision", "suffix"), [("implicit", ""), ("deny", " with an explicit deny")])
def test_the_callers_policies_decide(decision: str, suffix: str) -> None:
    refusal = _refusal(_authorizer(decisions={USER.arn: decision}), _signed())
    assert refusal.error_type == "AccessDeniedException"
    assert refusal.message == (
        f"User: {USER.arn} is not authorized to perform: execute-api:Invoke on resource: {RESOURCE}{suffix}"
    )


_HEADER_TEXT = hs.text(hs.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=200)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    authorization=hs.one_of(
        _HEADER_TEXT,
        hs.builds(
            lambda a, b, c, d: f"AWS4-HMAC-SHA256 Credential={a}, SignedHeaders={b}, Signature={c}{d}",
            _HEADER_TEXT,
            _HEADER_TEXT,
            _HEADER_TEXT,
            _HEADER_TEXT,
        ),
        hs.builds(lambda s: f"AWS4-HMAC-SHA256 {s}", _HEADER_TEXT),
    ),
    date=hs.one_of(hs.none(), _HEADER_TEXT, hs.just(datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))),
    token=hs.one_of(hs.none(), _HEADER_TEXT),
    http_date=hs.one_of(
        hs.none(), _HEADER_TEXT, hs.just("Tue, 01 Jan 9999 00:00:00 GMT"), hs.just("Mon, 1 Jan 1 0:0:0")
    ),
)
def test_any_malformed_header_is_a_403_message_never_an_exception(
    authorization: str, date: str | None, token: str | None, http_date: str | None
) -> None:
    request = _replace(_signed(), "Authorization", authorization)
    request = _replace(request, "X-Amz-Date", date)
    request = _replace(request, "Date", http_date)
    request = _replace(request, "X-Amz-Security-Token", token)
    refusal = _refusal(_authorizer(), request)
    assert refusal.message.startswith(MESSAGES), refusal.message


# ---- the gateway: 403s over HTTP, the identity in the event, the principal header ignored ----


@pytest.fixture(scope="module")
def gateway() -> Iterator[ApiGateway]:
    def echo(function: str, event_json: str) -> InvocationResult:
        event = json.loads(event_json)
        body = json.dumps({"identity": event["requestContext"]["identity"], "function": function})
        payload = json.dumps({"statusCode": 200, "body": body})
        return InvocationResult(request_id="r", payload=payload, error=False, duration_ms=1.0, cold=False)

    routes = RouteTable(
        [
            ("GET", "/openapi.json", "serve", None, (100.0, 100), False),
            ("POST", "/v1/models/{model}/predict", "serve", None, None, True),
        ]
    )
    api = ApiGateway(
        routes, echo, port=0, stage=API_STAGE, account=ACCOUNT, authorizer=_authorizer(), log=lambda _: None
    )
    api.start()
    api.open()
    try:
        yield api
    finally:
        api.stop()


def _http(api: ApiGateway, request: SignedRequest, path: str | None = None) -> tuple[int, dict[str, Any], str]:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        conn.putrequest(request.method, path or request.path, skip_host=True, skip_accept_encoding=True)
        for k, v in request.headers:
            conn.putheader(k, v.encode("latin-1"))
        conn.putheader("Content-Length", str(len(request.body)))
        conn.endheaders(request.body)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read()), answer.getheader("x-amzn-ErrorType") or ""
    finally:
        conn.close()


def test_gateway_checks_iam_routes_only_and_passes_the_proved_identity(gateway: ApiGateway) -> None:
    unsigned = _replace(_signed(), "Authorization", None)
    assert _http(gateway, unsigned) == (
        403,
        {"message": "Missing Authentication Token"},
        "MissingAuthenticationTokenException",
    )
    forged = _replace(_signed(), LOCAL_PRINCIPAL_HEADER, "arn:aws:iam::123456789012:user/someone-else")
    status, doc, _ = _http(gateway, forged)
    assert (
        status == 200 and doc["identity"]["userArn"] == USER.arn and doc["identity"]["accessKey"] == USER.access_key_id
    )
    public = SignedRequest("GET", "/openapi.json", "", [("Host", HOST), (LOCAL_PRINCIPAL_HEADER, "arn:x")], b"")
    status, doc, _ = _http(gateway, public)
    assert status == 200 and doc["identity"]["userArn"] is None  # the header names nobody with --require-auth


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(authorization=_HEADER_TEXT.filter(lambda s: s.strip() == s and s != ""))
def test_gateway_answers_fuzzed_headers_with_api_gateway_403s(gateway: ApiGateway, authorization: str) -> None:
    status, doc, error_type = _http(gateway, _replace(_signed(), "Authorization", authorization))
    assert status == 403 and error_type and str(doc["message"]).startswith(MESSAGES)


# ---- one decision and one definition, shared with the deployed API ----


@pytest.mark.parametrize("auth", ["iam", "api_key"])
def test_local_routes_follow_the_deployed_authorization(auth: str) -> None:
    platform = build_platform(config.load(ROOT / "cdk.json"))
    decided = {(r.method, r.path): route_auth(r, auth) for r in platform.routes}  # type: ignore[arg-type]
    assert decided[("GET", "/health")] == "NONE"
    assert decided[("GET", "/openapi.json")] == "NONE"
    assert decided[("POST", "/v1/models/{model}/versions/{version}/approval")] == "IAM"
    assert decided[("POST", "/v1/models/{model}/predict")] == ("IAM" if auth == "iam" else "API_KEY")


def test_emulator_keys_and_policies_from_the_platform_definition(tmp_path: Path) -> None:
    """Against moto's own IAM/STS: the provisioned client may predict but not approve, the approver the
    reverse, keys are found with their secrets, and the credentials file is the owner's only."""
    import boto3
    from moto import mock_aws

    from driftline.local import moto_state

    platform = build_platform(config.load(ROOT / "cdk.json"))
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
        callers = provision_api_callers(platform, iam, account=ACCOUNT, region=REGION, state_dir=tmp_path)
        again = provision_api_callers(platform, iam, account=ACCOUNT, region=REGION, state_dir=tmp_path)
        assert again.client_arn == callers.client_arn
        path = tmp_path / CREDENTIALS_FILE
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        text = path.read_text()
        keys = {
            section.split("]")[0]: dict(line.split(" = ") for line in section.splitlines()[1:] if " = " in line)
            for section in text.split("[")[1:]
        }
        client = moto_state.emulator_key(ACCOUNT, keys["driftline-local-client"]["aws_access_key_id"])
        approver = moto_state.emulator_key(ACCOUNT, keys["driftline-local-approver"]["aws_access_key_id"])
        assert client is not None and approver is not None
        assert client.arn == callers.client_arn and approver.arn == callers.approver_arn
        assert client.secret_access_key == keys["driftline-local-client"]["aws_secret_access_key"]
        approval = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:local/{API_STAGE}/POST/v1/models/churn/versions/3/approval"
        assert moto_state.invoke_decision(client, INVOKE_ACTION, RESOURCE) == "allow"
        assert moto_state.invoke_decision(client, INVOKE_ACTION, approval) == "implicit"
        assert moto_state.invoke_decision(approver, INVOKE_ACTION, approval) == "allow"
        assert moto_state.invoke_decision(approver, INVOKE_ACTION, RESOURCE) == "implicit"
        assert moto_state.emulator_key(ACCOUNT, "AKIANOTISSUED0000000") is None

        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
            ],
        }
        role = iam.create_role(RoleName="approver", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.attach_role_policy(
            RoleName="approver", PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/{platform.name('api-approve')}"
        )
        sts = boto3.client("sts", region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
        creds = sts.assume_role(RoleArn=role, RoleSessionName="alice")["Credentials"]
        session = moto_state.emulator_key(ACCOUNT, creds["AccessKeyId"])
        assert session is not None and session.session_token == creds["SessionToken"]
        assert session.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/approver/alice"
        assert moto_state.invoke_decision(session, INVOKE_ACTION, approval) == "allow"
    assert str(path) in credentials_hint(tmp_path, "http://127.0.0.1:3000")


def test_the_key_store_accessor_refuses_a_moto_without_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from driftline.local import moto_state
    from driftline.local.runtime import LocalOptions, LocalPlatform, LocalStartError

    assert moto_state.check_key_store() == []  # the pinned moto has every internal the accessor reads
    monkeypatch.setattr(moto_state, "check_key_store", lambda: ["AssumedRole.user_id"])
    with pytest.raises(moto_state.MissingKeyStoreError, match=r"AssumedRole\.user_id.*--require-auth needs moto"):
        moto_state.emulator_key(ACCOUNT, USER.access_key_id)
    platform = build_platform(config.load(ROOT / "cdk.json"))
    local = LocalPlatform(platform, LocalOptions(require_auth=True, state_dir=tmp_path))
    with pytest.raises(LocalStartError, match=r"--require-auth reads the emulator's access keys"):
        local._authorizer()
    assert LocalPlatform(platform, LocalOptions(state_dir=tmp_path))._authorizer() is None


def test_local_credentials_say_where_they_come_from(tmp_path: Path) -> None:
    from driftline.local.gateway_auth import local_credentials

    with pytest.raises(ValueError, match=r"written by `driftline local up --require-auth`"):
        local_credentials(tmp_path, "client")
    with pytest.raises(ValueError, match=r"--as 'admin': choose one of client, approver"):
        local_credentials(tmp_path, "admin")
    (tmp_path / CREDENTIALS_FILE).write_text("not [an ini")
    with pytest.raises(ValueError, match="is not an AWS credentials file"):
        local_credentials(tmp_path, "client")
