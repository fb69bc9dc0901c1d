"""The approval route: an API Gateway (REST, Lambda proxy) request → :func:`resolve_approval`.

``POST /v1/models/{model}/versions/{version}/approval`` with ``{"decision": "approve"|"reject",
"reason": "..."}``. The route is always IAM (SigV4) authorized, so API Gateway has already
authenticated the caller; the approver is that caller's principal from
``requestContext.identity.userArn``, never anything in the body. The decision itself is
:func:`driftline.retraining.approvals.resolve_approval`, the same path ``driftline models approve|reject``
takes, so the approvers restriction, the audit entry and the resume/reject of the run are defined once.

Only API Gateway's own event is accepted (:func:`check_origin`). The Lambda resource policy lets only
this API's ``execute-api`` source ARN for the approval route invoke the function, so on AWS the event
comes from API Gateway after SigV4 authentication. What AWS cannot prevent: any principal of the
account allowed ``lambda:InvokeFunction`` on the function (an administrator, a role with
``lambda:*``) can invoke it directly with an event it wrote itself, naming any ``userArn``; the event
then looks exactly like API Gateway's. The mitigation is that no role of the platform has that
permission (asserted over the synthesized templates) and that operators deny it to everyone else with
an SCP or permissions boundary (docs/retraining.md, "Who can approve"). :func:`check_origin` refuses
everything that is not shaped like the route's IAM-authorized proxy event, which stops a misrouted or
hand-made event, not a determined forger holding that permission.

Every client mistake is a 4xx with a message saying what, where and how to fix it; nothing is changed
unless the answer is 200. Standard library only (plus the approvals module), for the ``base`` layer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftline.config import PlatformConfig
from driftline.registry.store import RegistryError
from driftline.retraining.approvals import ApprovalError, resolve_approval
from driftline.serving.errors import ServingError

ROUTE = "/v1/models/{model}/versions/{version}/approval"
DECISIONS = {"approve": True, "reject": False}
MAX_REASON_CHARS = 2000
"""A reason goes to the registry's audit trail; longer text belongs in a linked document."""
METHOD = "POST"
API_ID_ENV = "APPROVAL_API_ID"
"""The approve function's variable naming the REST API id whose events it accepts (empty: not checked)."""
LOCAL_PRINCIPAL_HEADER = "X-Driftline-Local-Principal"
"""Only the local gateway reads it (to simulate SigV4 identity); on AWS it is ignored."""

Resolver = Callable[..., dict[str, Any]]


class ApprovalRequestError(ServingError):
    """A request answered with ``status`` before anything was looked up or changed (same error body
    as the prediction endpoint's)."""


@dataclass(frozen=True)
class ApprovalRequest:
    model: str
    version: int
    approve: bool
    reason: str
    principal: str


def check_origin(event: dict[str, Any], api_id: str | None = None) -> None:
    """Refuse an event that is not API Gateway's proxy event for the approval route (403 ``not_api_gateway``).

    Checked: a ``requestContext`` whose ``resourcePath`` and ``httpMethod`` (and the event's ``resource``
    and ``httpMethod``) are this route's, and, when ``api_id`` is known (``APPROVAL_API_ID``), the
    ``apiId`` of this platform's REST API. These fields are not secret, so this stops events from the
    wrong source (another trigger, a test harness, another API), not a forger who may invoke the function
    directly: that permission must not exist (see the module docstring).
    """
    ctx = event.get("requestContext")
    if not isinstance(ctx, dict):
        raise ApprovalRequestError(
            403,
            "not_api_gateway",
            "the event has no requestContext: the approval "
            "function answers only API Gateway's proxy event for POST " + ROUTE,
        )
    problems: list[str] = []
    if ctx.get("resourcePath") != ROUTE or event.get("resource") != ROUTE:
        problems.append(f"resource {ctx.get('resourcePath')!r} is not {ROUTE!r}")
    if ctx.get("httpMethod") != METHOD or event.get("httpMethod") != METHOD:
        problems.append(f"method {ctx.get('httpMethod')!r} is not {METHOD!r}")
    if api_id and ctx.get("apiId") != api_id:
        problems.append(f"API {ctx.get('apiId')!r} is not this platform's ({api_id!r})")
    if problems:
        raise ApprovalRequestError(
            403,
            "not_api_gateway",
            f"the event is not API Gateway's proxy event for POST {ROUTE}: " + "; ".join(problems),
        )


def principal_of(event: dict[str, Any]) -> str:
    """The authenticated IAM principal API Gateway put in the event (``requestContext.identity.userArn``).

    Only ``userArn``: API Gateway fills it for every SigV4-authorized IAM user or assumed role, and an
    event without it was not IAM-authorized (``caller`` alone is an access-key id, not an ARN to audit).
    """
    identity = (event.get("requestContext") or {}).get("identity") or {}
    principal = identity.get("userArn") if isinstance(identity, dict) else None
    if not isinstance(principal, str) or not principal.strip():
        raise ApprovalRequestError(
            403,
            "no_principal",
            "the request carries no IAM principal (requestContext.identity.userArn): this route is IAM "
            "authorized; sign the request with SigV4 (e.g. awscurl --service execute-api). On the local "
            f"platform, name the principal with the {LOCAL_PRINCIPAL_HEADER} header.",
        )
    return principal.strip()


def _path_params(event: dict[str, Any]) -> tuple[str, int]:
    params = event.get("pathParameters") or {}
    model = params.get("model")
    raw_version = params.get("version")
    if not isinstance(model, str) or not model:
        raise ApprovalRequestError(400, "bad_path", f"the path must be {ROUTE} with a model name")
    version_text = raw_version.strip().lower().removeprefix("v") if isinstance(raw_version, str) else ""
    if not version_text.isdigit() or int(version_text) < 1:
        raise ApprovalRequestError(
            400,
            "bad_version",
            f"version {raw_version!r} in the path is not a version number: use a positive integer, e.g. "
            f"/v1/models/{model}/versions/3/approval (list versions with `driftline models list --model {model}`)",
        )
    return model, int(version_text)


def _body(event: dict[str, Any]) -> dict[str, Any]:
    raw = event.get("body")
    if raw is None or raw == "":
        raise ApprovalRequestError(
            400,
            "missing_body",
            'the request has no body: send JSON {"decision": "approve" or "reject", "reason": "why"}',
        )
    text: str | bytes = raw
    if event.get("isBase64Encoded"):
        try:
            text = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ApprovalRequestError(400, "invalid_body", "the body is marked base64 but is not base64") from None
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApprovalRequestError(
            400,
            "invalid_json",
            f'the body is not valid JSON ({e}); send {{"decision": "approve", "reason": "why"}} with '
            f"Content-Type: application/json",
        ) from None
    if not isinstance(doc, dict):
        raise ApprovalRequestError(
            400,
            "invalid_body",
            f'the body must be a JSON object, got {type(doc).__name__}: {{"decision": "approve", "reason": "why"}}',
        )
    return doc


def _fields(doc: dict[str, Any]) -> tuple[bool, str]:
    problems: list[str] = []
    extra = sorted(set(doc) - {"decision", "reason"})
    if extra:
        problems.append(
            f"unknown field(s) {', '.join(repr(k) for k in extra)} in the body: only 'decision' and "
            f"'reason' are accepted (the approver is the signed caller, never a body field)"
        )
    decision = doc.get("decision")
    if decision not in DECISIONS:
        got = "missing" if "decision" not in doc else repr(decision)
        problems.append(f'body field \'decision\' is {got}: set it to "approve" or "reject"')
    reason = doc.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        got = (
            "missing" if "reason" not in doc else ("empty" if isinstance(reason, str) else f"a {type(reason).__name__}")
        )
        problems.append(
            f"body field 'reason' is {got}: give a non-empty string saying why (it goes to the registry's audit trail)"
        )
    elif len(reason) > MAX_REASON_CHARS:
        problems.append(
            f"body field 'reason' has {len(reason)} characters: at most {MAX_REASON_CHARS}; link to "
            f"a longer write-up instead"
        )
    if problems:
        raise ApprovalRequestError(422, "invalid_request", "; ".join(problems))
    return DECISIONS[str(decision)], str(reason).strip()


def parse_request(event: dict[str, Any], api_id: str | None = None) -> ApprovalRequest:
    """Origin, path, principal and body of an approval request; raises :class:`ApprovalRequestError`."""
    check_origin(event, api_id)
    model, version = _path_params(event)
    principal = principal_of(event)
    approve, reason = _fields(_body(event))
    return ApprovalRequest(model=model, version=version, approve=approve, reason=reason, principal=principal)


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps(body),
    }


def _error(status: int, code: str, message: str, request_id: str | None) -> dict[str, Any]:
    return _response(status, ServingError(status, code, message).body(request_id))


def _code(e: Exception) -> str:
    """A stable machine-readable code from the exception class, e.g. ``approval_not_waiting``."""
    name = type(e).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def handle(
    event: dict[str, Any],
    config: PlatformConfig,
    *,
    api_id: str | None = None,
    resolve: Resolver = resolve_approval,
    log: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Answer one proxy event (``api_id``: the REST API whose events are accepted, when known).
    Infrastructure errors (AWS API failures) propagate: those are 5xx."""
    context = event.get("requestContext")
    request_id = context.get("requestId") if isinstance(context, dict) else None
    try:
        req = parse_request(event, api_id)
    except ApprovalRequestError as e:
        if log:
            log("approval request refused", {"status": e.status, "code": e.code, "why": e.message})
        return _error(e.status, e.code, e.message, request_id)
    try:
        out = resolve(req.model, req.version, req.approve, req.principal, req.reason, config=config)
    except (ApprovalError, RegistryError) as e:
        status = int(e.status_code)
        if log:
            log(
                "approval refused",
                {
                    "status": status,
                    "model": req.model,
                    "version": req.version,
                    "principal": req.principal,
                    "why": str(e),
                },
            )
        return _error(status, _code(e), str(e), request_id)
    if log:
        log("approval decided", {k: out.get(k) for k in ("model", "version", "decision", "by", "execution_arn")})
    return _response(200, {**out, **({"request_id": request_id} if request_id else {})})
