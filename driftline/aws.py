"""AWS clients shared by handlers, CLI and local runtime.

Endpoints come from the standard ``AWS_ENDPOINT_URL`` variables, so the same code talks to AWS,
LocalStack or the local moto platform without a code change. Clients are cached per process
because creating one costs milliseconds that a warm Lambda should not pay twice. All clients come
from one session, so botocore parses its endpoint and partition data once per process rather than
once per client (a cold-start cost per extra client); creation is locked because sessions are
not thread-safe (the serving capture thread creates its Firehose client in the background).

Clients come from a plain botocore session: they are the very objects boto3 would return, without
importing boto3, whose import pulls in s3transfer (a visible part of the serving cold start). The only
boto3 additions lost are the managed-transfer methods (``upload_file``, ``copy``...): :func:`s3_copy`
and :func:`s3_upload_file` do the same through s3transfer, imported only by the callers that need it.

botocore's service models (endpoints.json alone is 1.2 MB; S3's model 1.4 MB) are parsed with orjson
instead of ``json`` with an ``OrderedDict`` hook, which makes creating the DynamoDB and S3 clients
(most of a serving cold start's first request) faster. The loader is botocore's own, given a file
loader through its ``file_loader`` parameter; search paths (``AWS_DATA_PATH``) are unchanged. Before
loading a model botocore also lists every service it knows (a scan of every service directory per
model type, twice per cold start) just to reject unknown names; :class:`_ServiceNames` answers known
names from their own directory and falls back to that listing otherwise. The measured gains are in
docs/performance.md.

Both replace botocore internals, and Lambda runs the runtime's own botocore, not the locked one the
tests use. :func:`loader_hooks_intact` checks every hook point (names and signatures) before the
session is built; when one differs, the session keeps botocore's stock loader: slower clients, never
broken ones. ``tests/unit/test_aws_loader.py`` runs against the locked botocore and, through
``make test-botocore-latest`` (part of CI), against the newest release.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any, overload

import botocore
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


class _ServiceNames(Sequence[str]):
    """``Loader.list_available_services`` without the scan, unless something needs the whole list.

    botocore asks for that list before loading any service model, only to reject unknown names. Listing
    walks every service directory on the search path and checks its model files (hundreds of
    directories per model type, twice per cold start: service model and endpoint rules). A name whose own
    directory holds the model type is known without it; for anything else (an unknown name, iteration,
    ``len``) botocore's own scanning listing runs, so its answers and errors are unchanged.
    """

    def __init__(self, loader: _Loader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name

    def _all(self) -> list[str]:
        listed: list[str] = botocore.loaders.Loader.list_available_services(self._loader, self._type_name)
        return listed

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and self._loader.has_model(name, self._type_name):
            return True
        return name in self._all()

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self._all()[i]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())


class _Loader(botocore.loaders.Loader):
    """botocore's loader; only the pre-load check for known service names is cheaper (``_ServiceNames``)."""

    def list_available_services(self, type_name: str) -> Sequence[str]:  # type: ignore[override]
        return _ServiceNames(self, type_name)

    def has_model(self, service_name: str, type_name: str) -> bool:
        """Whether some API version of ``service_name`` on the search path has a ``type_name`` file
        (the test botocore's listing applies to each service directory)."""
        if not service_name or os.sep in service_name or service_name.startswith("."):
            return False
        try:  # public attributes only; anything unexpected falls back to botocore's own listing
            for root in self.search_paths:
                path = os.path.join(root, service_name)
                if os.path.isdir(path) and any(
                    self.file_loader.exists(os.path.join(path, v, type_name)) for v in os.listdir(path)
                ):
                    return True
        except Exception:
            return False
        return False


_HOOKS: dict[str, tuple[str, ...] | None] = {
    "JSONFileLoader._load_file": ("self", "full_path", "open_method"),
    "JSONFileLoader.exists": ("self", "file_path"),
    "Loader.__init__": ("self", "extra_search_paths"),
    "Loader.list_available_services": None,  # wrapped by botocore's instance cache: presence only
    "Loader.load_service_model": None,
}
"""The botocore members the cheaper loader overrides or calls, with the leading parameters it passes
(``None``: only called through botocore's own public call shape)."""


def loader_hooks_intact() -> list[str]:
    """What differs from the botocore this module was written against (empty: every hook point is there)."""
    problems = []
    for dotted, params in _HOOKS.items():
        owner, _, member = dotted.partition(".")
        fn = getattr(getattr(botocore.loaders, owner, None), member, None)
        if not callable(fn):
            problems.append(f"botocore.loaders.{dotted} is gone")
            continue
        if params is None:
            continue
        try:
            got = tuple(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            problems.append(f"botocore.loaders.{dotted} has no inspectable signature")
            continue
        if got[: len(params)] != params:
            problems.append(f"botocore.loaders.{dotted}{got} (expected {params} first)")
    probe = botocore.loaders.Loader()
    for attr in ("search_paths", "file_loader"):
        if not hasattr(probe, attr):
            problems.append(f"botocore.loaders.Loader has no {attr}")
    return problems


def _loader(search_path: str | None) -> _Loader:
    """What ``botocore.loaders.create_loader`` builds (``AWS_DATA_PATH`` directories first), as a
    :class:`_Loader` parsing with orjson."""
    paths = [os.path.expanduser(os.path.expandvars(p)) for p in (search_path or "").split(os.pathsep) if p]
    loader = _Loader(extra_search_paths=paths)
    loader.file_loader = _OrjsonFileLoader()
    return loader


@cache
def _session() -> botocore.session.Session:
    session = botocore.session.get_session()
    problems = loader_hooks_intact()
    if problems:  # botocore changed under us: its own loader, slower but correct
        logging.getLogger(__name__).warning(
            "botocore %s: using its stock model loader (%s)", botocore.__version__, "; ".join(problems)
        )
        return session
    session.register_component("data_loader", _loader(session.get_config_variable("data_path")))
    return session


@cache
def client(service: str) -> Any:
    """A cached low-level client for ``service`` in the current region."""
    with _LOCK:
        return _session().create_client(service, region_name=region(), config=_CONFIG)


def sync_invoke_client(read_timeout_s: float) -> Any:
    """A Lambda client for synchronous invocations that may run ``read_timeout_s`` (up to a function's timeout).

    The default 30 s read timeout would cut a long invocation off (and botocore would retry it,
    running the function twice); here the read waits the whole time and nothing is retried.
    """
    config = _CONFIG.merge(Config(read_timeout=int(read_timeout_s), retries={"max_attempts": 1, "mode": "standard"}))
    with _LOCK:
        return _session().create_client("lambda", region_name=region(), config=config)


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
        raise RuntimeError(
            f"environment variable {name} is not set for {service}; "
            f"it comes from the platform definition (driftline/platform.py)"
        ) from None
