"""The approval route's request handling: path, principal and body parsing, and how each outcome of
``resolve_approval`` maps to an HTTP answer. No AWS: the resolver is a stand-in."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from driftline.config import PlatformConfig
from driftline.registry.store import InvalidTransitionError
from driftline.retraining.approval_api import handle, parse_request
from driftline.retraining.approvals import (
    ApprovalNotAllowedError,
    ApprovalNotFoundError,
    ApprovalNotWaitingError,
)

CFG = PlatformConfig.model_validate({"models": [{"name": "m", "feature_set": "credit_default"}]})
ARN = "arn:aws:sts::123456789012:assumed-role/Approvers/alice"


def event(body: Any = None, *, version: str = "2", principal: str | None = ARN, raw: str | None = None,
          b64: bool = False) -> dict[str, Any]:
    text = raw if raw is not None else (None if body is None else json.dumps(body))
    if b64 and text is not None:
        text = base64.b64encode(text.encode()).decode()
    return {"resource": "/v1/models/{model}/versions/{version}/approval", "httpMethod": "POST",
            "pathParameters": {"model": "m", "version": version}, "body": text, "isBase64Encoded": b64,
            "requestContext": {"requestId": "rid", "identity": {"userArn": principal, "caller": None}}}


def answer(ev: dict[str, Any], resolve: Any = None) -> tuple[int, dict[str, Any]]:
    calls: list[tuple[Any, ...]] = []

    def fake(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(args)
        if resolve is not None:
            return resolve(*args)  # type: ignore[no-any-return]
        model, version, approve, principal, reason = args
        return {"model": model, "version": version, "decision": "approved" if approve else "rejected",
                "by": principal, "reason": reason, "execution_arn": "arn:x"}

    out = handle(ev, CFG, resolve=fake)
    assert out["headers"]["Content-Type"] == "application/json"
    return out["statusCode"], json.loads(out["body"])


def test_approve_uses_the_signed_caller_as_principal() -> None:
    status, body = answer(event({"decision": "approve", "reason": " reviewed the holdout "}))
    assert status == 200
    assert body["decision"] == "approved" and body["by"] == ARN and body["reason"] == "reviewed the holdout"
    assert body["request_id"] == "rid"


def test_reject_and_base64_body_and_v_prefixed_version() -> None:
    req = parse_request(event({"decision": "reject", "reason": "too small"}, version="v7", b64=True))
    assert (req.model, req.version, req.approve, req.reason, req.principal) == ("m", 7, False, "too small", ARN)


def test_caller_is_used_when_user_arn_is_absent() -> None:
    ev = event({"decision": "approve", "reason": "ok"}, principal=None)
    ev["requestContext"]["identity"]["caller"] = "AROAEXAMPLE:alice"
    assert parse_request(ev).principal == "AROAEXAMPLE:alice"


@pytest.mark.parametrize(
    ("ev", "status", "code", "says"),
    [
        (event(None), 400, "missing_body", "has no body"),
        (event(raw="{nope"), 400, "invalid_json", "not valid JSON"),
        (event(["approve"]), 400, "invalid_body", "must be a JSON object, got list"),
        ({**event(raw="%%%"), "isBase64Encoded": True}, 400, "invalid_body", "not base64"),
        (event({"decision": "approve", "reason": "x"}, version="abc"), 400, "bad_version", "positive integer"),
        (event({"decision": "approve", "reason": "x"}, version="0"), 400, "bad_version", "positive integer"),
        (event({"reason": "x"}), 422, "invalid_request", "'decision' is missing"),
        (event({"decision": "yes", "reason": "x"}), 422, "invalid_request", "'decision' is 'yes'"),
        (event({"decision": "approve"}), 422, "invalid_request", "'reason' is missing"),
        (event({"decision": "approve", "reason": "  "}), 422, "invalid_request", "'reason' is empty"),
        (event({"decision": "approve", "reason": 3}), 422, "invalid_request", "'reason' is a int"),
        (event({"decision": "approve", "reason": "x" * 2001}), 422, "invalid_request", "at most 2000"),
        (event({"decision": "approve", "reason": "x", "principal": "root"}), 422, "invalid_request",
         "unknown field(s) 'principal'"),
        (event({"decision": "approve", "reason": "x"}, principal=None), 403, "no_principal", "SigV4"),
    ],
)
def test_client_mistakes_are_4xx_and_resolve_nothing(ev: dict[str, Any], status: int, code: str, says: str) -> None:
    def never(*_: Any) -> dict[str, Any]:
        raise AssertionError("resolve_approval must not be called for a malformed request")

    got, body = answer(ev, never)
    assert got == status, body
    assert body["error"]["code"] == code and says in body["error"]["message"], body
    assert body["error"]["status"] == status


def test_every_problem_of_the_body_is_named_at_once() -> None:
    _, body = answer(event({"decision": "maybe"}))
    msg = body["error"]["message"]
    assert "'decision' is 'maybe'" in msg and "'reason' is missing" in msg


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ApprovalNotAllowedError("arn may not approve 'm' v2"), 403, "approval_not_allowed"),
        (ApprovalNotFoundError("model 'm' has no version 2"), 404, "approval_not_found"),
        (ApprovalNotWaitingError("no retraining run is waiting"), 409, "approval_not_waiting"),
        (InvalidTransitionError("cannot approve: status 'rejected'"), 409, "invalid_transition"),
    ],
)
def test_resolver_refusals_map_to_their_status(error: Exception, status: int, code: str) -> None:
    def refuse(*_: Any) -> dict[str, Any]:
        raise error

    got, body = answer(event({"decision": "approve", "reason": "ok"}), refuse)
    assert (got, body["error"]["code"], body["error"]["message"]) == (status, code, str(error))
