"""Client of a running platform's control endpoints (``/_driftline/status``, ``/_driftline/fire``,
``/_driftline/reload``), shared by the CLI and the demo. Standard library only: callers need not
import moto or boto3."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["control_request"]


def control_request(
    endpoint: str, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, Any]]:
    """``method /_driftline/<path>`` on the emulator at ``endpoint``: the HTTP status and the JSON answer.
    An HTTP error status is returned, not raised; a connection failure raises OSError."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 - http to our own local endpoint
        f"{endpoint}/_driftline/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our own local endpoint
            doc: dict[str, Any] = json.loads(resp.read() or b"{}")
            return int(resp.status), doc
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            err: dict[str, Any] = json.loads(raw or b"{}")
        except ValueError:
            err = {"error": raw.decode(errors="replace")[:300]}
        return int(e.code), err
