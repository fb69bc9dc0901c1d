"""AWS clients shared by handlers, CLI and local runtime.

Endpoints come from the standard ``AWS_ENDPOINT_URL`` variables, so the same code talks to AWS,
LocalStack or the local moto platform without a code change. Clients are cached per process
because creating one costs milliseconds that a warm Lambda should not pay twice. All clients come
from one session, so botocore parses its endpoint and partition data once per process rather than
once per client (~0.1-0.3 s of cold start per extra client); creation is locked because sessions are
not thread-safe (the serving capture thread creates its Firehose client in the background).

Clients come from a plain botocore session: they are the very objects boto3 would return, without
importing boto3, whose import pulls in s3transfer (~0.1-0.2 s of the serving cold start). The only
boto3 additions lost are the managed-transfer methods (``upload_file``, ``copy``...): :func:`s3_copy`
and :func:`s3_upload_file` do the same through s3transfer, imported only by the callers that need it.

botocore's service models (endpoints.json alone is 1.2 MB; S3's model 1.4 MB) are parsed with orjson
instead of ``json`` with an ``OrderedDict`` hook: creating the DynamoDB and S3 clients, most of a
serving cold start's first request, gets ~0.1 s faster. The loader is botocore's own, given a file
loader through its ``file_loader`` parameter; search paths (``AWS_DATA_PATH``) are unchanged.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from typing import Any

import botocore.loaders
import botocore.session
import orjson
from botocore.config import Config

_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=3, read_timeout=30)


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


_LOCK = threading.RLock()


class _OrjsonFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's JSON model loader (plain and .json.gz files), parsing with orjson."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            return orjson.loads(fp.read())


@cache
def _session() -> botocore.session.Session:
    session = botocore.session.get_session()
    loader = botocore.loaders.create_loader(session.get_config_variable("data_path"))
    loader.file_loader = _OrjsonFileLoader()
    session.register_component("data_loader", loader)
    return session


@cache
def client(service: str) -> Any:
    """A cached low-level client for ``service`` in the current region."""
    with _LOCK:
        return _session().create_client(service, region_name=region(), config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients and the session (tests that switch endpoints or credentials call this)."""
    with _LOCK:
        client.cache_clear()
        _session.cache_clear()


def s3_copy(s3: Any, source: dict[str, str], bucket: str, key: str) -> None:
    """Server-side copy, multipart when the object is over 5 GB (what boto3's ``client.copy`` does)."""
    from s3transfer.manager import TransferManager

    with TransferManager(s3) as manager:
        manager.copy(copy_source=source, bucket=bucket, key=key).result()


def s3_upload_file(s3: Any, path: str, bucket: str, key: str) -> None:
    """Upload a file, multipart for large ones (what boto3's ``client.upload_file`` does)."""
    from s3transfer.manager import TransferManager

    with TransferManager(s3) as manager:
        manager.upload(path, bucket, key).result()


def env(name: str) -> str:
    """A required environment variable, with a message that says which function is misconfigured."""
    try:
        return os.environ[name]
    except KeyError:
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", "this process")
        raise RuntimeError(f"environment variable {name} is not set for {service}; "
                           f"it comes from the platform definition (driftline/platform.py)") from None
