"""Local IAM enforcement: each function runs with credentials of its own role, whose policy is the
expansion of the function's declared ``access`` (``Platform.policy``, the same statements CDK deploys),
and the emulator (moto 5.2.5) checks the calls made with those credentials.

Only requests signed with a key this module issued (an ``sts:AssumeRole`` session of a function role) are
checked; the platform's own provisioning, the CLI and the gateway keep using the emulator's root
credentials unchecked. What moto can check (see :data:`RESOURCE_CHECKED` and :func:`local_policy`):

- S3: action and real object/bucket ARN (moto's own check).
- DynamoDB, SNS, Firehose: action and real table/topic/stream ARN (this module gives moto's response
  classes a ``_determine_resource``; a batch naming several tables is checked against the first).
- EventBridge ``PutEvents``: action and each entry's bus; Step Functions: action and the state machine or
  execution the request names, except ``SendTaskSuccess``/``SendTaskFailure`` (a task token only): action.
- CloudWatch and the rest: the action only (moto authorizes them against ``*``, so their statements are
  widened to ``*`` locally).
- Conditions: moto evaluates none (an unmet one counts as a deny), so conditional denies are left out of
  the emulator's policy and conditional allows lose their condition. The control table's
  ``dynamodb:LeadingKeys`` deny (approval items) is checked here instead, from the partition keys the
  request names (Key, Item, batch items, transaction items, a Query's key condition). The metrics
  namespace condition is not enforced.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from driftline.platform import Platform, Statement

RESOURCE_CHECKED = frozenset({"s3", "dynamodb", "sns", "firehose"})
"""Services whose requests moto authorizes against the real resource ARN (with the hooks below)."""
RESOURCE_CHECKED_ACTIONS = frozenset(
    {
        "events:PutEvents",
        "states:StartExecution",
        "states:ListExecutions",
        "states:DescribeExecution",
        "states:DescribeStateMachine",
    }
)
"""Actions of other services checked against the real ARN too (the bus of each entry, the state machine or
execution named in the request). ``states:SendTaskSuccess``/``SendTaskFailure`` name only a task token:
checked by action."""
ROLE_SUFFIX = "-fn-role"


def local_policy(statements: list[Statement]) -> dict[str, Any]:
    """The role policy document moto evaluates: the declared statements, minus what moto cannot evaluate."""
    out = []
    for st in statements:
        if st.condition and st.effect == "Deny":
            continue  # conditions are not evaluated by moto: a conditional deny would deny everything
        checked = all(a.split(":", 1)[0] in RESOURCE_CHECKED or a in RESOURCE_CHECKED_ACTIONS for a in st.actions)
        resources = st.resources if checked else ("*",)
        out.append(replace(st, resources=resources, condition=()).document())
    return {"Version": "2012-10-17", "Statement": out}


class LocalIam:
    """Roles and sessions of the platform's functions in the emulator's IAM/STS backends (in-process)."""

    def __init__(self, platform: Platform, account: str, region: str) -> None:
        self.platform = platform
        self.account = account
        self.region = region
        self._lock = threading.Lock()
        self._sessions: dict[str, dict[str, str]] = {}
        self.enforced_keys: set[str] = set()
        self.functions: dict[str, str] = {}
        self._key_denies: dict[str, list[tuple[tuple[str, ...], tuple[str, ...], list[str]]]] = {}
        """Access key of a session -> the function whose role it is."""

    def role_name(self, logical: str) -> str:
        return f"{self.platform.name(logical)}{ROLE_SUFFIX}"

    def ensure_role(self, logical: str) -> str:
        """Create (or update) the function's role with its expanded inline policy; returns its ARN."""
        from moto.iam.models import iam_backends

        iam = iam_backends[self.account]["aws"]
        name = self.role_name(logical)
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        # moto's trust check needs an AWS principal (a Service principal alone fails inside moto)
                        "Principal": {"Service": "lambda.amazonaws.com", "AWS": f"arn:aws:iam::{self.account}:root"},
                    }
                ],
            }
        )
        try:
            role = iam.get_role(name)
        except Exception:  # moto's NoSuchEntity
            role = iam.create_role(name, trust, "/", None, f"Driftline {logical} (local)", [], None)
        policy = local_policy(self.platform.policy(logical, self.account, self.region))
        iam.put_role_policy(name, "declared-access", json.dumps(policy))
        return str(role.arn)

    def credentials(self, logical: str) -> dict[str, str]:
        """Environment credentials of a session of the function's role (created once, then reused)."""
        from moto.sts.models import sts_backends

        with self._lock:
            if logical not in self._sessions:
                arn = self.ensure_role(logical)
                sts = sts_backends[self.account]["aws"]
                session = sts.assume_role(
                    region_name=self.region,
                    role_session_name=logical,
                    role_arn=arn,
                    policy="",
                    duration=43200,
                    external_id="",
                )
                self.enforced_keys.add(session.access_key_id)
                self.functions[session.access_key_id] = logical
                self._sessions[logical] = {
                    "AWS_ACCESS_KEY_ID": session.access_key_id,
                    "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
                    "AWS_SESSION_TOKEN": session.session_token,
                }
            return dict(self._sessions[logical])

    def leading_keys_denied(self, access_key: str, action: str, resource: str, spec: Any) -> bool:
        """Whether a declared ``dynamodb:LeadingKeys`` deny (the approval items of the control table)
        applies to this item request: moto does not evaluate conditions, so this is checked here."""
        logical = self.functions.get(access_key)
        if logical is None or not action.startswith("dynamodb:"):
            return False
        if logical not in self._key_denies:
            self._key_denies[logical] = [
                (st.actions, st.resources, patterns)
                for st in self.platform.policy(logical, self.account, self.region)
                if (
                    patterns := [
                        v
                        for op, key, values in st.condition
                        if st.effect == "Deny" and op == "ForAnyValue:StringLike" and key == "dynamodb:LeadingKeys"
                        for v in values
                    ]
                )
            ]
        for actions, resources, patterns in self._key_denies[logical]:
            if action not in actions or resource not in resources:
                continue
            table = next(
                (t for t in self.platform.tables if resource.endswith(f":table/{self.platform.name(t.logical)}")), None
            )
            keys = _leading_keys(action, spec, table.partition_key) if table else []
            if any(fnmatch.fnmatchcase(k, pattern) for k in keys for pattern in patterns):
                return True
        return False

    def refresh_policies(self) -> None:
        """Re-put every known role's policy (after a config reload changed the declaration)."""
        with self._lock:
            self._key_denies.clear()
            for logical in self._sessions:
                self.ensure_role(logical)


def _access_key(headers: Any) -> str:
    auth = headers.get("Authorization") or headers.get("authorization") or ""
    _, _, rest = str(auth).partition("Credential=")
    return rest.split("/", 1)[0]


def _first(value: Any) -> str | None:
    return str(value) if value else None


def _dynamodb_resource(self: Any) -> str:
    body = getattr(self, "body", None)
    if not isinstance(body, dict):
        return "*"
    table = body.get("TableName") or next(iter(body.get("RequestItems") or {}), None)
    if not table:
        items = body.get("TransactItems") or []
        for item in items:
            for op in item.values():
                table = table or op.get("TableName")
    if not table:
        return "*"
    if str(table).startswith("arn:"):
        return str(table)
    return f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{table}"


def _sns_resource(self: Any) -> str:
    return _first(self._get_param("TopicArn")) or "*"


def _firehose_resource(self: Any) -> str:
    try:
        name = json.loads(self.body or "{}").get("DeliveryStreamName")
    except (TypeError, ValueError):
        name = None
    return f"arn:aws:firehose:{self.region}:{self.current_account}:deliverystream/{name}" if name else "*"


def _leading_keys(action: str, spec: Any, pk: str) -> list[str]:
    """The partition key values an item request names (IAM's ``dynamodb:LeadingKeys``)."""
    if not isinstance(spec, dict):
        return []

    def value(item: Any) -> list[str]:
        v = item.get(pk) if isinstance(item, dict) else None
        return [str(next(iter(v.values())))] if isinstance(v, dict) and v else []

    out: list[str] = []
    out += value(spec.get("Key")) + value(spec.get("Item"))
    for table_requests in (spec.get("RequestItems") or {}).values():
        if isinstance(table_requests, dict):  # BatchGetItem
            for key in table_requests.get("Keys") or []:
                out += value(key)
        else:  # BatchWriteItem
            for r in table_requests:
                out += value((r.get("PutRequest") or {}).get("Item")) + value((r.get("DeleteRequest") or {}).get("Key"))
    condition = spec.get("KeyConditionExpression")
    if action == "dynamodb:Query" and condition:
        names = spec.get("ExpressionAttributeNames") or {}
        values = spec.get("ExpressionAttributeValues") or {}
        for name, placeholder in re.findall(r"([#\w.]+)\s*=\s*(:\w+)", str(condition)):
            if names.get(name, name) == pk and placeholder in values:
                out += value({pk: values[placeholder]})
    return out


_IAM_PREFIX = {"monitoring": "cloudwatch"}
"""Signing names (moto takes the action's service from the credential scope) whose IAM prefix differs."""

_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _transaction_checks(self: Any, action: str) -> list[tuple[str, str, Any]]:
    """IAM has no TransactWriteItems/TransactGetItems permission: AWS checks each item's own action
    (PutItem, UpdateItem, DeleteItem, ConditionCheckItem, GetItem) on its table. moto would ask for
    ``dynamodb:TransactWriteItems``; this gives the per-item checks instead."""
    if action == "PutEvents":  # each entry names its bus (default: the account's default bus)
        entries = self._get_param("Entries") or []
        buses = dict.fromkeys(str(e.get("EventBusName") or "default") for e in entries if isinstance(e, dict))
        return [
            (
                "PutEvents",
                bus
                if bus.startswith("arn:")
                else f"arn:aws:events:{self.region}:{self.current_account}:event-bus/{bus}",
                None,
            )
            for bus in buses
        ]
    if action not in ("TransactWriteItems", "TransactGetItems"):
        return []
    body = getattr(self, "body", None)
    checks = []
    for item in (body.get("TransactItems") or []) if isinstance(body, dict) else []:
        for op, spec in item.items():
            table = spec.get("TableName", "*")
            arn = (
                table
                if table.startswith("arn:") or table == "*"
                else (f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{table}")
            )
            checks.append((_TRANSACT_ITEM_ACTIONS.get(op, action), arn, spec))
    return checks


def _states_resource(self: Any) -> str:
    return _first(self._get_param("stateMachineArn")) or _first(self._get_param("executionArn")) or "*"


@contextmanager
def enforced(iam: LocalIam) -> Iterator[None]:
    """Install the hooks for as long as the block runs (the runtime holds it for the platform's life).

    Requests signed with one of ``iam.enforced_keys`` are authenticated and authorized as on AWS; every
    other request is not checked (moto's own INITIAL_NO_AUTH_ACTION_COUNT logic is bypassed for them)."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import AccessDeniedError, JsonRESTError
    from moto.dynamodb.responses import DynamoHandler
    from moto.firehose.responses import FirehoseResponse
    from moto.sns.responses import SNSResponse
    from moto.stepfunctions.responses import StepFunctionResponse

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action
    if not callable(original):  # pragma: no cover - moto changed: refuse rather than enforce nothing
        raise RuntimeError("moto's ActionAuthenticatorMixin changed; local IAM enforcement needs moto 5.2.5")

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        if _access_key(self.headers) not in iam.enforced_keys:
            return
        from urllib.parse import urlparse

        parsed = urlparse(self.uri)
        path = self.raw_path + (f"?{parsed.query}" if parsed.query else "")
        action = self._get_action()
        checks = _transaction_checks(self, action) or [(action, resource, getattr(self, "body", None))]
        try:
            for i, (checked_action, checked_resource, spec) in enumerate(checks):
                request = iam_request_cls(
                    account_id=self.current_account,
                    method=self.method,
                    path=path,
                    data=self.data,
                    body=self.raw_body,
                    headers=self.headers,
                    action=checked_action,
                )
                service, _, name = request._action.partition(":")
                request._action = f"{_IAM_PREFIX.get(service, service)}:{name}"
                if i == 0:
                    request.check_signature()
                request.check_action_permitted(checked_resource)
                if iam.leading_keys_denied(_access_key(self.headers), request._action, checked_resource, spec):
                    raise AccessDeniedError(user_arn=request._access_key.arn, action=request._action)
        except AccessDeniedError as e:
            if not self.headers.get("X-Amz-Target"):
                raise
            # JSON-protocol services (DynamoDB, Firehose, ...) answer AccessDeniedException as JSON, as AWS does
            denied = JsonRESTError("AccessDeniedException", e.message)
            denied.code = 400
            raise denied from e

    patched: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, value: Any) -> None:
        patched.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, value)

    patch(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authorize)
    patch(DynamoHandler, "_determine_resource", _dynamodb_resource)
    patch(SNSResponse, "_determine_resource", _sns_resource)
    patch(FirehoseResponse, "_determine_resource", _firehose_resource)
    patch(StepFunctionResponse, "_determine_resource", _states_resource)
    try:
        yield
    finally:
        for owner, name, old in reversed(patched):
            if old is None:
                delattr(owner, name)
            else:
                setattr(owner, name, old)
