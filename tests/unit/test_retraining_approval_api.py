"""The approval route's request handling: path, principal and body parsing, and how each outcome of
``resolve_approval`` maps to an HTTP answer. No AWS: the resolver is a stand-in."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from driftline.config import PlatformConfig
from driftline.registry.store import InvalidTransitionError
from driftline.retraining.approval_api import ROUTE, handle, parse_request
from driftline.retraining.approvals import (
    ApprovalNotAllowedError,
    ApprovalNotFoundError,
    ApprovalNotWaitingError,
)

CFG = PlatformConfig.model_validate({"models": [{"name": "m", "feature_set": "credit_default"}]})
ARN = "arn:aws:sts::123456789012:assumed-role/Approvers/alice"


def event(
    body: Any = None, *, version: str = "2", principal: str | None = ARN, raw: str | None = None, b64: bool = False
) -> dict[str, Any]:
    text = raw if raw is not None else (None if body is None else json.dumps(body))
    if b64 and text is not None:
        text = base64.b64encode(text.encode()).decode()
    return {
        "resource": ROUTE,
        "httpMethod": "POST",
        "pathParameters": {"model": "m", "version": version},
        "body": text,
        "isBase64Encoded": b64,
        "requestContext": {
            "requestId": "rid",
            "resourcePath": ROUTE,
            "httpMethod": "POST",
            "apiId": "abc123",
            "identity": {"userArn": principal, "caller": None},
        },
    }


def answer(ev: dict[str, Any], resolve: Any = None, api_id: str | None = None) -> tuple[int, dict[str, Any]]:
    calls: list[tuple[Any, ...]] = []

    def fake(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(args)
        if resolve is not None:
            return resolve(*args)  # type: ignore[no-any-return]
        model, version, approve, principal, reason = args
        return {
            "model": model,
            "version": version,
            "decision": "approved" if approve else "rejected",
            "by": principal,
            "reason": reason,
            "execution_arn": "arn:x",
        }

    out = handle(ev, CFG, api_id=api_id, resolve=fake)
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


def test_caller_without_user_arn_is_no_principal() -> None:
    """``caller`` alone (an access-key id) is not an IAM-authorized identity to audit."""
    ev = event({"decision": "approve", "reason": "ok"}, principal=None)
    ev["requestContext"]["identity"]["caller"] = "AROAEXAMPLE:alice"
    status, body = answer(ev, lambda *_: pytest.fail("resolved"))
    assert status == 403 and body["error"]["code"] == "no_principal"


def _direct(ev: dict[str, Any]) -> dict[str, Any]:
    """What a direct ``lambda:Invoke`` caller might send: the body and a chosen identity, no route context."""
    ctx = ev["requestContext"]
    return {**ev, "requestContext": {"requestId": ctx["requestId"], "identity": ctx["identity"]}}


@pytest.mark.parametrize(
    ("tamper", "api_id", "says"),
    [
        (_direct, None, "resource None is not"),
        (lambda ev: {k: v for k, v in ev.items() if k != "requestContext"}, None, "no requestContext"),
        (
            lambda ev: {
                **ev,
                "requestContext": {**ev["requestContext"], "resourcePath": "/v1/models/{model}/feedback"},
            },
            None,
            "is not '/v1/models/{model}/versions/{version}/approval'",
        ),
        (
            lambda ev: {**ev, "requestContext": {**ev["requestContext"], "httpMethod": "GET"}},
            None,
            "method 'GET' is not 'POST'",
        ),
        (lambda ev: ev, "otherapi", "API 'abc123' is not this platform's ('otherapi')"),
    ],
)
def test_events_not_from_the_approval_route_are_refused(tamper: Any, api_id: str | None, says: str) -> None:
    """A forged identity in an event that is not API Gateway's route event decides nothing (issue 16 item 11)."""
    ev = tamper(event({"decision": "approve", "reason": "ok"}, principal="arn:aws:iam::123456789012:role/ml-lead"))
    status, body = answer(ev, lambda *_: pytest.fail("a forged event was resolved"), api_id=api_id)
    assert status == 403 and body["error"]["code"] == "not_api_gateway" and says in body["error"]["message"], body


def test_the_route_event_of_the_known_api_is_accepted() -> None:
    status, body = answer(event({"decision": "approve", "reason": "ok"}), api_id="abc123")
    assert status == 200 and body["by"] == ARN


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
        (
            event({"decision": "approve", "reason": "x", "principal": "root"}),
            422,
            "invalid_request",
            "unknown field(s) 'principal'",
        ),
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
