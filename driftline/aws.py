"""boto3 clients shared by handlers, CLI and local runtime.

Endpoints come from the standard ``AWS_ENDPOINT_URL`` variables, so the same code talks to AWS,
LocalStack or the local moto platform without a code change. Clients are cached per process
because creating one costs milliseconds that a warm Lambda should not pay twice. All clients come
from one session, so botocore parses its endpoint and partition data once per process rather than
once per client (~0.1-0.3 s of cold start per extra client); creation is locked because sessions are
not thread-safe (the serving capture thread creates its Firehose client in the background).
"""

from __future__ import annotations

import os
import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=3, read_timeout=30)


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


_LOCK = threading.RLock()


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    """A cached low-level client for ``service`` in the current region."""
    with _LOCK:
        return _session().client(service, region_name=region(), config=_CONFIG)  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    with _LOCK:
        return _session().resource(service, region_name=region(), config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients and the session (tests that switch endpoints or credentials call this)."""
    with _LOCK:
        client.cache_clear()
        resource.cache_clear()
        _session.cache_clear()


def env(name: str) -> str:
    """A required environment variable, with a message that says which function is misconfigured."""
    try:
        return os.environ[name]
    except KeyError:
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", "this process")
        raise RuntimeError(f"environment variable {name} is not set for {service}; "
                           f"it comes from the platform definition (driftline/platform.py)") from None
