"""What the local emulator lets an outside caller do, and how it tells its own calls apart.

The emulator's AWS API has no authentication (any credentials are accepted), and the executor runs
Lambda code as host processes. So code reaching the executor must come from the platform itself:

- **Lambda code and configuration** (CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration,
  layers, aliases, ...: every non-GET call on the Lambda API except invocations) are refused with 403
  ``AccessDeniedException`` unless the request carries the platform's token in ``X-Driftline-Internal``.
  The platform's own provisioning carries it; so may a test or benchmark that reads it from the state
  file (``local.json``, readable by its owner only). Invocations and reads stay open.
- **Browsers**: a request with an ``Origin`` header (which web pages' requests carry and the AWS SDKs
  and CLI never send) is refused, and moto's global CORS is off: a page on another site cannot drive
  the emulator, even with "simple" requests whose answer it cannot read.

The executor checks the same thing again (:meth:`driftline.local.moto_hooks.MotoBridge.trust`): it
runs only function configurations recorded when a trusted request made them, so a function created
some other way (CloudFormation through moto, ...) is never run.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

INTERNAL_HEADER = "x-driftline-internal"
INTERNAL_ENVIRON = "HTTP_X_DRIFTLINE_INTERNAL"
"""The WSGI name of :data:`INTERNAL_HEADER`."""

_LAMBDA_PATH = re.compile(r"^/\d{4}-\d{2}-\d{2}/(functions|layers|event-source-mappings|tags)(/|$)")
_INVOCATION = re.compile(
    r"^/\d{4}-\d{2}-\d{2}/functions/[^/]+/(invocations|invoke-async|response-streaming-invocations)/?$"
)
_FUNCTION_IN_PATH = re.compile(r"^/\d{4}-\d{2}-\d{2}/functions/([^/]+)")


def signed_service(authorization: str | None) -> str | None:
    """The service a SigV4 ``Authorization`` header is scoped to (``.../us-east-1/lambda/aws4_request``)."""
    if not authorization:
        return None
    m = re.search(r"Credential=[^/,]+/\d{8}/[^/,]+/([^/,]+)/aws4_request", authorization)
    return m.group(1).lower() if m else None


def is_lambda_change(method: str, path: str, authorization: str | None) -> bool:
    """A Lambda API call that creates or changes what runs (anything but reads and invocations).

    Requests signed for another service (an S3 bucket named like a date, say) are not Lambda's.
    """
    if method.upper() in ("GET", "HEAD", "OPTIONS") or not _LAMBDA_PATH.match(path):
        return False
    service = signed_service(authorization)
    if service is not None and service != "lambda":
        return False
    return not _INVOCATION.match(path)


def changed_function(path: str, body: bytes) -> str | None:
    """The function a Lambda change names (path segment, or ``FunctionName`` of a CreateFunction)."""
    m = _FUNCTION_IN_PATH.match(path)
    if m:
        return unquote(m.group(1))
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return None
    name = doc.get("FunctionName") if isinstance(doc, dict) else None
    return str(name) if name else None


def refusal(what: str) -> tuple[str, bytes]:
    """(HTTP status line, JSON body) of a refusal, shaped like AWS's AccessDeniedException."""
    body = json.dumps({"__type": "AccessDeniedException", "Type": "User", "message": what}).encode()
    return "403 Forbidden", body


LAMBDA_CHANGE_REFUSED = (
    "the local platform refuses to create or change Lambda functions through its API: the executor would run "
    "their code as processes on this machine, and the emulator has no authentication. Functions come from the "
    "platform definition (driftline/platform.py); tests and benchmarks send the X-Driftline-Internal token "
    "from the state file (.driftline/local.json)"
)
BROWSER_REFUSED = (
    "the local emulator refuses requests from web pages (an Origin header): it has no authentication, so a "
    "page on any site could otherwise drive it. Use an AWS SDK or the AWS CLI, which send no Origin"
)
