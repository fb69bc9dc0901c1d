"""SigV4 at the local API gateway (``driftline local up --require-auth``): what API Gateway does for a
route whose method has ``AWS_IAM`` authorization.

The routes checked are those the deployed API authorizes with IAM (:func:`driftline.platform.route_auth`,
the serving stack's own decision). For each request to one of them:

1. **Authenticate**: parse the ``Authorization`` header, check the credential scope (this region,
   service ``execute-api``, ``aws4_request``), the request time (within 5 minutes of now, as AWS), that
   ``host`` is signed, then look the access key up in the emulator (its IAM users' keys and its
   ``sts:AssumeRole`` sessions, :func:`driftline.local.moto_state.emulator_key`) and recompute the
   signature with botocore's signer from the key's secret.
2. **Authorize**: moto's evaluation of the caller's identity policies
   (:func:`driftline.local.moto_state.invoke_decision`) must allow ``execute-api:Invoke`` on the
   request's execute-api ARN (``arn:aws:execute-api:<region>:<account>:local/live/<METHOD>/<path>``).
3. **Identify**: the proved caller fills ``requestContext.identity`` (``userArn``, ``caller``, ``user``,
   ``accountId``, ``accessKey``) as API Gateway does, and only the proved caller: the local principal
   header that names a caller without the flag means nothing then.

Every refusal is 403 with API Gateway's message and ``x-amzn-ErrorType``; a malformed header of any
shape is a refusal, never an exception. Not emulated: query-string (presigned) SigV4, SigV4a, resource
policies of the API, and conditions in identity policies (moto evaluates none).

:func:`provision_api_callers` puts the deployed API's two managed policies (client and approver,
:func:`driftline.platform.api_policies`) into the emulator's IAM, attached to one local user each, and
writes those users' keys to an owner-only AWS credentials file in the state directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from driftline.local.moto_state import EmulatorKey
from driftline.platform import INVOKE_ACTION, Platform, api_policies, execute_api_arn

__all__ = [
    "ALGORITHM",
    "CREDENTIALS_FILE",
    "LOCAL_API_ID",
    "MAX_SKEW",
    "SERVICE",
    "ApiCallers",
    "Caller",
    "GatewayAuthError",
    "GatewayAuthorizer",
    "SignedRequest",
    "call_api",
    "credentials_hint",
    "local_credentials",
    "provision_api_callers",
    "sign_headers",
]

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)
"""How far a request's time may be from the gateway's clock, as on AWS."""
LOCAL_API_ID = "local"
"""The local REST API's id (``requestContext.apiId`` and the execute-api ARNs)."""
CREDENTIALS_FILE = "api-credentials"
"""AWS shared-credentials file (in the state dir, mode 0600) with the local client and approver keys."""
CALLERS = (("client", "driftline-local-client"), ("approver", "driftline-local-approver"))
"""(local user suffix, credentials profile) of the client and the approver, in :func:`api_policies` order."""
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_TERMINATOR = "aws4_request"

KeyLookup = Callable[[str], EmulatorKey | None]
"""access key id -> the emulator's key, None when it never issued it."""
Decide = Callable[[EmulatorKey, str, str], str]
"""(key, action, resource) -> "allow", "deny" or "implicit"."""


class GatewayAuthError(Exception):
    """A request API Gateway would refuse with 403: ``error_type`` goes to ``x-amzn-ErrorType``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _missing_token() -> GatewayAuthError:
    return GatewayAuthError("MissingAuthenticationTokenException", "Missing Authentication Token")


def _incomplete(message: str) -> GatewayAuthError:
    return GatewayAuthError("IncompleteSignatureException", message)


def _invalid_token() -> GatewayAuthError:
    return GatewayAuthError("UnrecognizedClientException", "The security token included in the request is invalid.")


@dataclass(frozen=True)
class SignedRequest:
    """What the gateway received: the raw (still percent-encoded) path and query, every header as sent."""

    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)

    def values(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]


@dataclass(frozen=True)
class Caller:
    """A caller the gateway authenticated and authorized."""

    arn: str
    user_id: str
    account: str
    access_key: str

    def identity(self) -> dict[str, str]:
        """The ``requestContext.identity`` fields API Gateway fills for a SigV4 (IAM) caller."""
        return {
            "userArn": self.arn,
            "caller": self.user_id,
            "user": self.user_id,
            "accountId": self.account,
            "accessKey": self.access_key,
        }


@dataclass(frozen=True)
class _Authorization:
    access_key: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def _hashed(value: str) -> str:
    return base64.b64encode(hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()).decode()


def _parse_authorization(value: str, has_date: bool) -> _Authorization:
    """The ``Authorization`` header's parts, or API Gateway's IncompleteSignature message."""
    scheme, _, rest = value.strip().partition(" ")
    pairs: dict[str, str] = {}
    for piece in rest.split(","):
        if not piece.strip():
            continue
        key, eq, val = piece.strip().partition("=")
        if not eq:
            raise _incomplete(
                "Invalid key=value pair (missing equal-sign) in Authorization header (hashed with SHA-256 and "
                f"encoded with Base64): '{_hashed(value)}'."
            )
        pairs.setdefault(key.strip(), val.strip())
    if scheme != ALGORITHM:
        pairs = {}  # another scheme (Bearer, Basic, a bare token): none of SigV4's parameters are there
    missing = [
        f"Authorization header requires '{p}' parameter."
        for p in ("Credential", "Signature", "SignedHeaders")
        if not pairs.get(p)
    ]
    if not has_date:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if missing:
        raise _incomplete(" ".join(missing) + f" Authorization={value}")
    parts = pairs["Credential"].split("/")
    parts += [""] * (5 - len(parts))
    access_key, date, region, service, terminator = parts[0], parts[1], parts[2], parts[3], "/".join(parts[4:])
    return _Authorization(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        signed_headers=tuple(h.strip().lower() for h in pairs["SignedHeaders"].split(";")),
        signature=pairs["Signature"],
    )


def _request_time(request: SignedRequest) -> tuple[str, datetime]:
    """(the timestamp as signed, as a datetime) from ``X-Amz-Date``, else ``Date``."""
    amz = request.header("X-Amz-Date")
    if amz is not None:
        try:
            return amz.strip(), datetime.strptime(amz.strip(), _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise _incomplete(
                f"Date must be in ISO-8601 'basic format'. Got '{amz}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ) from None
    date = request.header("Date") or ""
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise _incomplete(f"Date must be in RFC 1123 format. Got '{date}'.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime(_AMZ_DATE), when


class _Recompute:
    """botocore's SigV4 signer, fed exactly the headers the client says it signed."""

    def __init__(self, key: EmulatorKey, region: str, signed: tuple[str, ...], request: SignedRequest) -> None:
        from botocore.auth import SigV4Auth
        from botocore.compat import HTTPHeaders
        from botocore.credentials import Credentials

        class Signer(SigV4Auth):  # type: ignore[misc]
            def headers_to_sign(self, _request: Any) -> Any:
                out = HTTPHeaders()
                for name in dict.fromkeys(signed):
                    for value in request.values(name) or [""]:
                        out[name] = value
                return out

        self.signer = Signer(Credentials(key.access_key_id, key.secret_access_key, key.session_token), SERVICE, region)

    def signature(self, request: SignedRequest, timestamp: str, signed: tuple[str, ...]) -> tuple[str, str, str]:
        """(signature, canonical request, string to sign) of ``request`` as botocore computes them."""
        from botocore.awsrequest import AWSRequest

        host = request.header("Host") or "localhost"
        url = f"http://{host}{request.path}" + (f"?{request.query}" if request.query else "")
        headers = {name: request.header(name) or "" for name in signed}
        aws_request = AWSRequest(method=request.method.upper(), url=url, data=request.body, headers=headers)
        aws_request.context["timestamp"] = timestamp
        canonical = self.signer.canonical_request(aws_request)
        to_sign = self.signer.string_to_sign(aws_request, canonical)
        return str(self.signer.signature(to_sign, aws_request)), str(canonical), str(to_sign)


class GatewayAuthorizer:
    """Authenticates (SigV4) and authorizes (``execute-api:Invoke``) requests to IAM routes.

    ``lookup`` and ``decide`` are the emulator's key store and policy evaluation
    (:func:`~driftline.local.moto_state.emulator_key`, :func:`~driftline.local.moto_state.invoke_decision`);
    tests pass their own. ``clock`` is the gateway's time (UTC).
    """

    def __init__(
        self,
        *,
        region: str,
        account: str,
        lookup: KeyLookup,
        decide: Decide,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.region = region
        self.account = account
        self.lookup = lookup
        self.decide = decide
        self.clock = clock

    def resource_arn(self, method: str, path: str) -> str:
        return execute_api_arn(self.region, self.account, LOCAL_API_ID, method.upper(), unquote(path))

    def authorize(self, request: SignedRequest) -> Caller:
        """The proved caller of ``request``; raises :class:`GatewayAuthError` with API Gateway's refusal."""
        key = self.authenticate(request)
        caller = Caller(arn=key.arn, user_id=key.user_id, account=key.account, access_key=key.access_key_id)
        resource = self.resource_arn(request.method, request.path)
        decision = self.decide(key, INVOKE_ACTION, resource)
        if decision != "allow":
            suffix = " with an explicit deny" if decision == "deny" else ""
            raise GatewayAuthError(
                "AccessDeniedException",
                f"User: {key.arn} is not authorized to perform: {INVOKE_ACTION} on resource: {resource}{suffix}",
            )
        return caller

    def authenticate(self, request: SignedRequest) -> EmulatorKey:
        """The emulator key that signed ``request`` (the signature checked); raises :class:`GatewayAuthError`."""
        header = request.header("Authorization")
        if header is None or not header.strip():
            raise _missing_token()
        has_date = request.header("X-Amz-Date") is not None or request.header("Date") is not None
        auth = _parse_authorization(header, has_date)
        self._check_scope(auth)
        timestamp, when = _request_time(request)
        if auth.date != timestamp[:8]:
            raise _incomplete(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{auth.date}' != '{timestamp[:8]}', from '{timestamp}'."
            )
        self._check_time(when)
        if "host" not in auth.signed_headers and ":authority" not in auth.signed_headers:
            raise _incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        key = self._key(auth.access_key, request)
        self._check_signature(key, auth, timestamp, request)
        return key

    def _check_scope(self, auth: _Authorization) -> None:
        problems = []
        if auth.region != self.region:
            problems.append(f"Credential should be scoped to a valid region, not '{auth.region}'. ")
        if auth.service != SERVICE:
            problems.append(f"Credential should be scoped to correct service: '{SERVICE}'. ")
        if auth.terminator != _TERMINATOR:
            problems.append(
                f"Credential should be scoped with a valid terminator: '{_TERMINATOR}', not '{auth.terminator}'. "
            )
        if problems:
            raise _incomplete("".join(problems))

    def _check_time(self, when: datetime) -> None:
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        fmt = _AMZ_DATE
        if when < now - MAX_SKEW:
            raise GatewayAuthError(
                "InvalidSignatureException",
                f"Signature expired: {when.strftime(fmt)} is now earlier than {(now - MAX_SKEW).strftime(fmt)} "
                f"({now.strftime(fmt)} - 5 min.)",
            )
        if when > now + MAX_SKEW:
            raise GatewayAuthError(
                "InvalidSignatureException",
                f"Signature not yet current: {when.strftime(fmt)} is still later than "
                f"{(now + MAX_SKEW).strftime(fmt)} ({now.strftime(fmt)} + 5 min.)",
            )

    def _key(self, access_key: str, request: SignedRequest) -> EmulatorKey:
        key = self.lookup(access_key) if access_key else None
        token = request.header("X-Amz-Security-Token")
        if key is None or not key.active:
            raise _invalid_token()
        if key.session_token is None:
            if token is not None:
                raise _invalid_token()
        elif token is None or not hmac.compare_digest(token.encode(), key.session_token.encode()):
            raise _invalid_token()
        if key.expires_at is not None and key.expires_at.replace(tzinfo=key.expires_at.tzinfo or UTC) < self.clock():
            raise GatewayAuthError("ExpiredTokenException", "The security token included in the request is expired")
        return key

    def _check_signature(self, key: EmulatorKey, auth: _Authorization, timestamp: str, request: SignedRequest) -> None:
        declared = request.header("X-Amz-Content-SHA256")  # botocore signs this claim instead of hashing the body
        body_ok = declared is None or declared.strip().lower() == hashlib.sha256(request.body).hexdigest()
        try:
            recompute = _Recompute(key, self.region, auth.signed_headers, request)
            expected, canonical, to_sign = recompute.signature(request, timestamp, auth.signed_headers)
        except (ValueError, TypeError, UnicodeError, LookupError):  # a header or path botocore cannot canonicalize
            expected, canonical, to_sign = "", "", ""
        if body_ok and expected and hmac.compare_digest(expected.encode(), auth.signature.encode("utf-8", "replace")):
            return
        raise GatewayAuthError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.\n\n"
            f"The Canonical String for this request should have been\n'{canonical}'\n\n"
            f"The String-to-Sign should have been\n'{to_sign}'\n",
        )


def sign_headers(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    credentials: Any,
    region: str,
) -> dict[str, str]:
    """The headers of a SigV4 (``execute-api``) signed request with botocore's signer: what the CLI and tests
    send to the local gateway (and what awscurl or any AWS SDK sends to the deployed API).
    ``credentials`` is a botocore ``Credentials`` (e.g. ``boto3.Session().get_credentials()``)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method=method.upper(), url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}


@dataclass(frozen=True)
class ApiCallers:
    """The local API's two callers: ARNs and where their keys are."""

    client_arn: str
    approver_arn: str
    credentials_file: Path


def _put_policy(iam: Any, name: str, arn: str, document: dict[str, Any], description: str) -> None:
    text = json.dumps(document)
    try:
        iam.create_policy(PolicyName=name, PolicyDocument=text, Description=description)
    except iam.exceptions.EntityAlreadyExistsException:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=text, SetAsDefault=True)


def provision_api_callers(platform: Platform, iam: Any, *, account: str, region: str, state_dir: Path) -> ApiCallers:
    """Create the deployed API's client and approver managed policies in the emulator's IAM, a local user
    with each (fresh keys on every start: the emulator's IAM is not kept), and write the keys to
    ``<state_dir>/api-credentials`` (owner-only) as the profiles ``driftline-local-client`` and
    ``driftline-local-approver``. ``iam`` is a boto3 IAM client of the emulator."""
    arns: list[str] = []
    sections: list[str] = []
    for policy, (who, profile) in zip(api_policies(platform.routes), CALLERS, strict=True):
        statement = policy.statement(lambda method, path: execute_api_arn(region, account, LOCAL_API_ID, method, path))
        name = platform.name(policy.logical)
        policy_arn = f"arn:aws:iam::{account}:policy/{name}"
        _put_policy(
            iam, name, policy_arn, {"Version": "2012-10-17", "Statement": [statement.document()]}, policy.description
        )
        user = platform.name(f"api-{who}")
        try:
            arns.append(str(iam.create_user(UserName=user)["User"]["Arn"]))
        except iam.exceptions.EntityAlreadyExistsException:
            arns.append(str(iam.get_user(UserName=user)["User"]["Arn"]))
            for old in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
                iam.delete_access_key(UserName=user, AccessKeyId=old["AccessKeyId"])
        iam.attach_user_policy(UserName=user, PolicyArn=policy_arn)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        sections.append(
            f"[{profile}]\naws_access_key_id = {key['AccessKeyId']}\n"
            f"aws_secret_access_key = {key['SecretAccessKey']}\nregion = {region}\n"
        )
    path = state_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode otherwise
        f.write("# Keys of the local API's client and approver (driftline local up --require-auth); new on every up\n")
        f.write("\n".join(sections))
    return ApiCallers(client_arn=arns[0], approver_arn=arns[1], credentials_file=path)


def credentials_hint(state_dir: Path, api_url: str) -> str:
    """What ``local up --require-auth`` prints: how to sign requests to the local API."""
    path = state_dir.resolve() / CREDENTIALS_FILE
    (_, client), (_, approver) = CALLERS
    return (
        "SigV4 is required on the API's IAM routes (--require-auth). Signed credentials:\n"
        f"  export AWS_SHARED_CREDENTIALS_FILE={path}\n"
        f"  profiles {client} (prediction routes) and {approver} (approval route)\n"
        f"  e.g. awscurl --service execute-api --profile {client} -X POST -d @rows.json "
        f"{api_url}/v1/models/<model>/predict\n"
        f"  or:  driftline local call POST /v1/models/<model>/predict --as client --data @rows.json"
    )


def local_credentials(state_dir: Path, who: str) -> Any:
    """The botocore ``Credentials`` of the local ``client`` or ``approver`` from ``<state_dir>/api-credentials``;
    raises ValueError saying what to do when there are none."""
    import configparser

    from botocore.credentials import Credentials

    profiles = dict(CALLERS)
    if who not in profiles:
        raise ValueError(f"--as {who!r}: choose one of {', '.join(profiles)}")
    path = state_dir / CREDENTIALS_FILE
    parser = configparser.ConfigParser()
    try:
        found = parser.read(path)
    except configparser.Error as e:
        raise ValueError(
            f"{path} is not an AWS credentials file ({e}); restart with `driftline local up --require-auth`"
        ) from None
    section = profiles[who]
    if not found or not parser.has_section(section):
        raise ValueError(
            f"no local {who} credentials in {path}: they are written by `driftline local up --require-auth`"
        )
    return Credentials(parser[section].get("aws_access_key_id", ""), parser[section].get("aws_secret_access_key", ""))


def call_api(
    api_url: str,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    credentials: Any = None,
    region: str,
    timeout: float = 60.0,
) -> tuple[int, str]:
    """One request to the local API, SigV4-signed when ``credentials`` are given: (status, body text).
    An HTTP error status is an answer, not an exception; a connection failure raises OSError."""
    import urllib.error
    import urllib.request

    url = api_url.rstrip("/") + (path if path.startswith("/") else f"/{path}")
    headers = {"Content-Type": "application/json"} if body else {}
    if credentials is not None:
        headers = sign_headers(method, url, body=body, headers=headers, credentials=credentials, region=region)
    request = urllib.request.Request(url, data=body or None, method=method.upper(), headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - the local gateway's URL
            return int(answer.status), answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode("utf-8", "replace")
