"""The local platform process: moto server + executor + triggers + API gateway, provisioned from
the platform definition.

Start-up order matters: both ports are bound first (a busy port fails before anything else
happens), the emulator then answers 503 "starting" (which the AWS SDKs and CLI retry) to every
outside request while the runtime provisions everything through the emulator's own API, and
only then opens the doors. So an upload made during start-up is retried by the client and
reaches its handler instead of landing before the S3 notification exists.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import io
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.features.schema import FeatureSetCatalog
from driftline.local import access
from driftline.local.apigw import ApiGateway, RouteTable
from driftline.local.executor import FunctionSpec, InvocationResult, LambdaExecutor
from driftline.local.gateway_auth import ApiCallers, GatewayAuthorizer, provision_api_callers
from driftline.local.moto_hooks import (
    SUPPORTED_MOTO_VERSION,
    FireError,
    MotoBridge,
    check_moto,
    defer_batch_import,
)
from driftline.local.provision import (
    LOCAL_ACCOUNT,
    ProvisionedNames,
    dead_letter_queue,
    provision_catalog,
    provision_platform,
)
from driftline.local.schedules import ScheduleError, Scheduler, parse_schedule
from driftline.platform import API_STAGE, Platform, route_auth

if TYPE_CHECKING:  # DuckDB and pyarrow load when the platform starts, not when the CLI imports this module
    from driftline.local.athena import AthenaEngine

INTERNAL_HEADER = access.INTERNAL_HEADER


class LocalStartError(RuntimeError):
    """The platform cannot start; the message says why and what to do."""


class PortInUseError(LocalStartError):
    pass


@dataclass
class LocalOptions:
    config_path: Path = Path("cdk.json")
    host: str = "127.0.0.1"
    port: int = 4566
    api_port: int = 3000
    state_dir: Path = Path(".driftline")
    handler_overrides: dict[str, str] = field(default_factory=dict)
    max_workers_per_function: int = 4
    retry_delays_s: tuple[float, ...] = (1.0, 2.0)
    echo_function_logs: bool = True
    persist: bool = True
    """Keep the emulator's data under ``state_dir/data`` and restore it on start
    (:mod:`driftline.local.persistence`)."""
    fresh: bool = False
    """With ``persist``: empty the kept state before starting."""
    env: str | None = None
    """The cdk.json environment (``--env``); a reload loads the same one."""
    prune: bool = False
    """At start: delete buckets and tables the config no longer has although they hold data."""
    require_auth: bool = False
    """SigV4 and ``execute-api:Invoke`` on the API's IAM routes, as the deployed API (``--require-auth``)."""


class Printer:
    """Terminal output shared by threads: whole lines, flushed, never interleaved."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed terminal must not take the platform down


def _bind_error(what: str, host: str, port: int, e: OSError) -> LocalStartError:
    if e.errno in (errno.EADDRINUSE, errno.EACCES):
        reason = "already in use" if e.errno == errno.EADDRINUSE else "not allowed for this user"
        flag = "--port" if what == "emulator" else "--api-port"
        return PortInUseError(
            f"{what} port {port} on {host} is {reason} (another `driftline local up`, "
            f"LocalStack or moto_server?); stop it or choose another port with {flag}"
        )
    return LocalStartError(f"cannot listen on {host}:{port} for the {what}: {e}")


class _Gate:
    """WSGI middleware in front of moto: control endpoints under /_driftline/, 503 for outsiders while
    starting, and the access rules of :mod:`driftline.local.access` (no Lambda code or configuration
    changes without the platform's token, no requests from web pages)."""

    def __init__(self, app: Any, token: str, control: Callable[[str, str, bytes], tuple[int, dict[str, Any]]]) -> None:
        self.app = app
        self.token = token
        self.control = control
        self.ready = threading.Event()
        self.on_trusted_change: Callable[[str], None] | None = None
        """Called with a function's name after a token-bearing request created or changed it."""

    def _internal(self, environ: dict[str, Any]) -> bool:
        given = str(environ.get(access.INTERNAL_ENVIRON) or "")
        return bool(given) and hmac.compare_digest(given, self.token)

    @staticmethod
    def _answer(start_response: Any, status: str, data: bytes, content_type: str = "application/json") -> list[bytes]:
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
        return [data]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        method = str(environ.get("REQUEST_METHOD", "GET"))
        internal = self._internal(environ)
        if environ.get("HTTP_ORIGIN") is not None and not internal:
            return self._answer(start_response, *access.refusal(access.BROWSER_REFUSED))
        if path.startswith("/_driftline/"):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            status, doc = self.control(method, path, body)
            data = json.dumps(doc, default=str).encode()
            return self._answer(start_response, f"{status} {'OK' if status < 400 else 'Error'}", data)
        if not self.ready.is_set() and not internal:
            data = (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code>"
                b"<Message>The Driftline local platform is starting; retry in a moment</Message></Error>"
            )
            start_response(
                "503 Service Unavailable",
                [
                    ("Content-Type", "application/xml"),
                    ("Retry-After", "1"),
                    ("Content-Length", str(len(data))),
                ],
            )
            return [data]
        if access.is_lambda_change(method, path, environ.get("HTTP_AUTHORIZATION")):
            if not internal:
                return self._answer(start_response, *access.refusal(access.LAMBDA_CHANGE_REFUSED))
            return self._trusted_change(environ, start_response, path)
        result: Iterable[bytes] = self.app(environ, start_response)
        return result

    def _trusted_change(self, environ: dict[str, Any], start_response: Any, path: str) -> list[bytes]:
        """Run a token-bearing Lambda change, then tell the executor which function it may now run."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        answer = list(self.app(environ, start_response))  # the backend has applied the change once this returns
        name = access.changed_function(path, body)
        if name and self.on_trusted_change is not None:
            self.on_trusted_change(name)
        return answer


def _route_table(platform: Platform) -> RouteTable:
    serving = platform.config.serving
    public = (serving.public_throttle_rate, serving.public_throttle_burst)
    return RouteTable(
        (
            r.method,
            r.path,
            platform.name(r.function) if r.function else "",
            r.static_response,
            None if r.authorized else public,
            route_auth(r, serving.auth) == "IAM",
        )
        for r in platform.routes
    )


class LocalPlatform:
    def __init__(self, platform: Platform, options: LocalOptions, out: Callable[[str], None] | None = None) -> None:
        self.platform = platform
        self.options = options
        self.out = out or Printer()
        self.region = platform.config.region or "us-east-1"
        self.account = LOCAL_ACCOUNT
        self.project_root = options.config_path.resolve().parent
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.names: ProvisionedNames | None = None
        self._token = secrets.token_hex(16)
        self._moto_server: Any = None
        self._process_settings: tuple[str | None, Any] | None = None
        """``MOTO_PORT`` and moto's Step Functions config before this platform set them (see stop)."""
        self._moto_thread: threading.Thread | None = None
        self._gate: _Gate | None = None
        self.api: ApiGateway | None = None
        self.api_callers: ApiCallers | None = None
        """The local client and approver of the API (``require_auth``)."""
        self.executor: LambdaExecutor | None = None
        self.bridge: MotoBridge | None = None
        self._athena: contextlib.ExitStack | None = None
        self.scheduler: Scheduler | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._session: Any = None
        self.persistence: Any = None
        self._moto_app: Any = None
        """The :class:`~driftline.local.persistence.Persistence` of the state dir, when ``options.persist``."""
        self._reload_lock = threading.Lock()
        self._feature_sets: dict[str, str] = {}
        """The feature set files (name -> digest) the functions were last provisioned with."""

    # ---- endpoints ----
    @property
    def token(self) -> str:
        """The secret that marks the platform's own requests (recorded in the owner-only state file)."""
        return self._token

    @property
    def port(self) -> int:
        return int(self._moto_server.server_address[1]) if self._moto_server else self.options.port

    @property
    def api_port(self) -> int:
        return self.api.port if self.api else self.options.api_port

    @property
    def endpoint(self) -> str:
        return f"http://{self.options.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.options.host}:{self.api_port}"

    def client(self, service: str) -> Any:
        """A boto3 client for the emulator, marked as internal so it passes the start-up gate."""
        with self._clients_lock:
            if service not in self._clients:
                import boto3
                from botocore.config import Config

                if self._session is None:  # one session: endpoint and model data are loaded once
                    self._session = boto3.session.Session(
                        aws_access_key_id="test",
                        aws_secret_access_key="test",  # noqa: S106 - the emulator accepts any credentials
                        region_name=self.region,
                    )
                c = self._session.client(
                    service,
                    endpoint_url=self.endpoint,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                )
                token = self._token

                def mark(request: Any, **_: Any) -> None:
                    request.headers[INTERNAL_HEADER] = token

                c.meta.events.register("before-sign.*.*", mark)
                self._clients[service] = c
            return self._clients[service]

    # ---- lifecycle ----
    def _validate(self, platform: Platform | None = None) -> None:
        platform = platform or self.platform
        for s in platform.schedules:
            try:
                parse_schedule(s.expression)
            except ScheduleError as e:
                raise LocalStartError(
                    f"schedule of rule {s.logical} (model config drift/retrain.schedule): {e}"
                ) from None
        for route in platform.routes:
            if route.function is not None:
                platform.function(route.function)

    def start(self) -> None:
        defer_batch_import()
        check_moto()
        self._validate()
        self._open_state()
        self._bind()
        try:
            self._start_services()
        except BaseException:
            self.stop()
            raise

    def _bind(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):  # type: ignore[misc]
            def setup(self) -> None:
                super().setup()
                # Without this, headers and body go out in two segments and Nagle + delayed ACK
                # add ~40 ms to every keep-alive request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_request(self, code: Any = "-", size: Any = "-") -> None:
                pass

        import moto.moto_server.werkzeug_app as moto_app

        # moto answers every origin's CORS preflight unless told not to (MOTO_DISABLE_GLOBAL_CORS): a web
        # page could then read what it asks the emulator. The module reads the setting when imported.
        os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"
        if hasattr(moto_app, "DISABLE_GLOBAL_CORS"):
            moto_app.DISABLE_GLOBAL_CORS = True
        opts = self.options
        authorizer = self._authorizer()  # refuses (LocalStartError) before a port is taken
        app = DomainDispatcherApplication(create_backend_app)
        self._moto_app = app
        if self.persistence is not None:
            app = self.persistence.middleware(app)
        self._gate = _Gate(app, self._token, self._control)
        try:
            self._moto_server = make_server(
                opts.host, opts.port, self._gate, threaded=True, request_handler=QuietHandler
            )
        except OSError as e:
            raise _bind_error("emulator", opts.host, opts.port, e) from None
        self._moto_server.daemon_threads = True
        try:
            self.api = ApiGateway(
                _route_table(self.platform),
                self._invoke_by_name,
                host=opts.host,
                port=opts.api_port,
                stage=API_STAGE,
                account=self.account,
                cors_origins=self.platform.config.serving.cors_origins,
                log=self.out,
                authorizer=authorizer,
            )
        except OSError as e:
            self._moto_server.server_close()
            self._moto_server = None
            raise _bind_error("API", opts.host, opts.api_port, e) from None

    def _authorizer(self) -> GatewayAuthorizer | None:
        """The gateway's SigV4 check with ``require_auth``: keys and policies from the emulator's IAM/STS."""
        if not self.options.require_auth:
            return None
        from driftline.local import moto_state

        missing = moto_state.check_key_store()
        if missing:
            raise LocalStartError(
                f"--require-auth reads the emulator's access keys from moto internals this moto lacks "
                f"({', '.join(missing)}); it needs moto {SUPPORTED_MOTO_VERSION}"
            )
        account = self.account
        return GatewayAuthorizer(
            region=self.region,
            account=account,
            lookup=lambda key: moto_state.emulator_key(account, key),
            decide=moto_state.invoke_decision,
        )

    def _open_state(self) -> None:
        """Lock and check the kept state before anything listens (a foreign, corrupt or busy state dir is
        refused before a port is taken)."""
        if not self.options.persist:
            return
        from driftline.local.journal import StateDirError
        from driftline.local.persistence import Persistence

        self.persistence = Persistence(self.options.state_dir.resolve(), warn=self.out)
        try:
            self.persistence.open(fresh=self.options.fresh)
        except (StateDirError, OSError) as e:
            self.persistence = None
            raise LocalStartError(str(e)) from None

    def _restore_state(self) -> None:
        """Put the kept state into the fresh emulator, before provisioning and before anyone is let in."""
        if self.persistence is None:
            return
        from driftline.local.journal import StateDirError

        try:
            summary = self.persistence.restore(self._moto_app)
        except StateDirError as e:
            raise LocalStartError(str(e)) from None
        if summary.records:
            self.out(f"[local] {summary.describe()}")
        for execution in summary.interrupted:
            self.out(
                f"[local] warning: Step Functions execution {execution['arn']} was running when the platform stopped; "
                "it was interrupted: `driftline local status` lists it, `driftline local resume` asks again for "
                "an approval it was waiting for, `driftline local dismiss` lets it go"
            )

    def _start_services(self) -> None:
        from moto.core.config import default_user_config

        self._restore_state()

        if self.options.host not in ("127.0.0.1", "0.0.0.0", "localhost", "::1"):  # noqa: S104
            self.out(
                f"warning: moto's Step Functions interpreter calls Lambda at localhost:{self.port}; with "
                f"--host {self.options.host} the workflow's Lambda tasks cannot reach the emulator"
            )

        # The Step Functions interpreter calls Lambda over HTTP at localhost:$MOTO_PORT. Both settings are
        # process-wide: what they were is put back by stop(), so a platform run inside a test (or a
        # notebook) leaves no executing interpreter behind for the next in-process moto user.
        if self._process_settings is None:
            self._process_settings = (os.environ.get("MOTO_PORT"), default_user_config.get("stepfunctions"))
        os.environ["MOTO_PORT"] = str(self.port)
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        opts = self.options
        labels = {self.platform.name(f.logical): f.logical for f in self.platform.functions}
        self.executor = LambdaExecutor(
            on_line=self._echo_line if opts.echo_function_logs else None,
            on_logs=self._write_logs,
            max_workers_per_function=opts.max_workers_per_function,
        )
        self.bridge = MotoBridge(
            self.executor,
            project_root=self.project_root,
            code_cache=opts.state_dir.resolve() / "code",
            clients=self.client,
            labels=labels,
            retry_delays_s=opts.retry_delays_s,
            region=self.region,
            warn=self.out,
        )
        self.bridge.install()
        from driftline.local.athena_hook import install_athena

        self._athena = contextlib.ExitStack()  # Athena queries run on DuckDB (driftline.local.athena)
        self._athena.enter_context(install_athena(self._athena_engine))
        from driftline.local.s3_hook import install_s3

        self._athena.enter_context(install_s3())  # ranged GETs and multipart uploads stay on disk
        from driftline.local.sagemaker_hook import install_sagemaker

        self._athena.enter_context(  # training jobs run the entry point in a worker process
            install_sagemaker(
                lambda: self.client("s3"),
                image_env={
                    "FEATURE_SETS_DIR": str((self.project_root / self.platform.config.feature_sets_dir).resolve()),
                    "TRAINERS_DIR": str((self.project_root / self.platform.config.trainers_dir).resolve()),
                },
            )
        )
        self.bridge.enforce_iam(lambda: self.platform, self.account, self.region)  # each function's own role
        self.bridge.seal()  # from now on only functions the platform (or a token holder) made are run
        assert self._gate is not None
        self._gate.on_trusted_change = self.bridge.trust
        self._moto_thread = threading.Thread(
            target=self._moto_server.serve_forever, kwargs={"poll_interval": 0.05}, name="driftline-moto", daemon=True
        )
        self._moto_thread.start()
        assert self.api is not None
        self.api.start()

        try:
            self._remove_since_last_run()
            self._provision(self.platform)
        except ValueError as e:
            raise LocalStartError(str(e)) from None
        self._record_applied(self.platform)
        if self.options.require_auth:
            self.api_callers = provision_api_callers(
                self.platform,
                self.client("iam"),
                account=self.account,
                region=self.region,
                state_dir=self.options.state_dir.resolve(),
            )
        self.scheduler = Scheduler(self.bridge.schedule_rules, self.bridge.fire_scheduled, warn=self.out)
        self.scheduler.start()
        self.api.open()
        assert self._gate is not None
        self._gate.ready.set()
        self.ready_at = time.time()

    def _provision(self, platform: Platform) -> None:
        """Provision ``platform`` (idempotent) and point the bridge's labels and dead letters at it."""
        from driftline.local.reload import feature_set_files, feature_sets_digest

        cfg = platform.config
        feature_sets = (self.project_root / cfg.feature_sets_dir).resolve()
        self._feature_sets = feature_set_files(feature_sets)
        local_env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "OMP_NUM_THREADS": "1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "DRIFTLINE_LOCAL": "1",
            # a changed feature set changes every function's configuration: new workers read it
            "DRIFTLINE_FEATURE_SETS_DIGEST": feature_sets_digest(feature_sets),
        }
        self.names = provision_platform(
            platform,
            self.client,
            self.region,
            self.account,
            local_env=local_env,
            feature_sets_dir=str(feature_sets),
            handler_overrides=self.options.handler_overrides,
            trainers_dir=str((self.project_root / cfg.trainers_dir).resolve()),
        )
        # the Glue tables and Athena workgroup the local Athena (driftline.local.athena) resolves
        provision_catalog(platform, self.client, self.region, self.account, FeatureSetCatalog(feature_sets))
        assert self.bridge is not None
        self.bridge.labels.update({platform.name(f.logical): f.logical for f in platform.functions})
        for f in platform.functions:
            dlq = dead_letter_queue(self.names, f.stack)
            if dlq:
                self.bridge.dead_letters[platform.name(f.logical)] = dlq

    def _applied_path(self) -> Path | None:
        """Where the config of the last provisioned definition is kept (with the data: --fresh and reset
        remove it too); None without persistence."""
        return self.persistence.directory / ".applied-config.json" if self.persistence is not None else None

    def _record_applied(self, platform: Platform) -> None:
        path = self._applied_path()
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(platform.config.model_dump_json())
        tmp.replace(path)

    def _remove_since_last_run(self) -> None:
        """``up`` on a kept state: delete what the last run's config had and this one does not (the
        kept buckets, tables, queues and streams; a non-empty bucket or table only with ``prune``)."""
        from driftline.config import PlatformConfig
        from driftline.local import reload as rl
        from driftline.platform import build_platform

        path = self._applied_path()
        if path is None or not path.exists():
            return
        try:
            previous = build_platform(PlatformConfig.model_validate_json(path.read_text()))
        except (OSError, ValueError) as e:
            self.out(f"[local] warning: the last run's configuration cannot be read ({e}); nothing it had is removed")
            return
        diff = rl.diff_platforms(previous, self.platform, self.account, self.region)
        if diff.empty:
            return
        counts = ", ".join(
            f"{sum(map(len, part.values()))} {what}"
            for what, part in (("added", diff.added), ("changed", diff.changed), ("removed", diff.removed))
        )
        self.out(f"[local] the configuration changed since the last run: {counts}")
        try:
            rl.check_removals(diff, self.client, prune=self.options.prune, retry="start with `local up --prune`")
        except rl.ReloadRefusedError as e:
            raise LocalStartError(str(e)) from None
        rl.remove_resources(diff, self.client, event_bus=previous.event_bus, region=self.region, account=self.account)

    def reload(self, prune: bool = False) -> dict[str, Any]:
        """Apply the config file's current content: load and check it (a bad one raises ReloadError and
        changes nothing), provision the new definition, remove what it no longer has (non-empty buckets
        and tables only with ``prune``), then run with it. Returns what changed."""
        from driftline.local import reload as rl

        with self._reload_lock:
            new = rl.load_checked(self.options.config_path, self.options.env, self.project_root)
            if (new.config.region or "us-east-1") != self.region:
                raise rl.ReloadError(
                    f"region changes from {self.region} to {new.config.region or 'us-east-1'}: "
                    "a reload keeps the region (stop and start the platform for another one)"
                )
            try:
                self._validate(new)
            except (LocalStartError, KeyError) as e:
                raise rl.ReloadError(str(e)) from None
            old = self.platform
            diff = rl.diff_platforms(old, new, self.account, self.region)
            files = rl.feature_set_files((self.project_root / new.config.feature_sets_dir).resolve())
            rl.add_feature_set_changes(diff, self._feature_sets, files)
            rl.check_removals(diff, self.client, prune=prune)
            try:
                self._provision(new)
                rl.remove_resources(
                    diff, self.client, event_bus=old.event_bus, region=self.region, account=self.account
                )
            except ValueError as e:
                raise rl.ReloadError(str(e)) from None
            except Exception as e:  # an emulator call failed part way: what was applied stays applied
                raise rl.ReloadFailedError(
                    f"reload failed part way ({type(e).__name__}: {e}); fix the cause and reload again"
                ) from e
            for name in diff.removed.get("function", []):
                if self.bridge is not None:
                    self.bridge.labels.pop(name, None)
                    self.bridge.dead_letters.pop(name, None)
            self.platform = new
            if self.api is not None:  # the functions' names follow env_name; throttle and CORS the config
                self.api.routes = _route_table(new)
                self.api.cors_origins = new.config.serving.cors_origins
            self._record_applied(new)
            return {"diff": diff.as_dict(), "lines": diff.lines()}

    def stop(self) -> None:
        """Stop everything this process started; safe to call twice and after a failed start."""
        if self._gate is not None:
            self._gate.ready.clear()
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self.api is not None:
            with contextlib.suppress(OSError):
                self.api.stop()
            self.api = None
        if self.persistence is not None and self._moto_thread is not None and self._moto_thread.is_alive():
            self.persistence.settle_executions(self._execution_status)
        if self.bridge is not None:
            self.bridge.shutdown()
            self.bridge = None
        if self.executor is not None:
            self.executor.shutdown()
            self.executor = None
        if self._athena is not None:
            self._athena.close()
            self._athena = None
        if self._moto_server is not None:
            if self._moto_thread is not None and self._moto_thread.is_alive():
                self._moto_server.shutdown()
                self._moto_thread.join(timeout=5.0)
            self._moto_server.server_close()
            self._moto_server = None
        if self.persistence is not None:
            self.persistence.close()
            self.persistence = None
        self._restore_process_settings()

    def _restore_process_settings(self) -> None:
        if self._process_settings is None:
            return
        from moto.core.config import default_user_config

        port, sfn = self._process_settings
        self._process_settings = None
        if port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = port
        if sfn is None:
            default_user_config.pop("stepfunctions", None)
        else:
            default_user_config["stepfunctions"] = sfn

    # ---- glue ----
    def _athena_engine(self, account: str, region: str) -> AthenaEngine:
        """The local Athena of one account and region: Glue and S3 of this emulator (any credentials do)."""
        from driftline.local.athena import AthenaEngine, EngineOptions, GlueCatalog, s3_filesystem

        fs = s3_filesystem(self.endpoint, "test", "test", region)
        return AthenaEngine(GlueCatalog(self.client("glue")), fs, EngineOptions.from_env(os.environ))

    def _execution_status(self, arn: str) -> str | None:
        try:
            return str(self.client("stepfunctions").describe_execution(executionArn=arn)["status"])
        except Exception:  # the emulator no longer knows it, or is going down
            return None

    def _echo_line(self, spec: FunctionSpec, line: str) -> None:
        self.out(f"[{spec.display}] {line}")

    def _write_logs(self, spec: FunctionSpec, stream: str, events: list[tuple[int, str]]) -> None:
        if self.bridge is not None:
            self.bridge.write_logs(spec, stream, events)
        if self.options.echo_function_logs:
            self.out(f"[{spec.display}] {events[-1][1]}")

    def _invoke_by_name(self, function: str, event_json: str) -> InvocationResult | None:
        if self.bridge is None:
            return None
        return self.bridge.run_function(function, event_json)

    def _resolve_rule(self, name: str) -> str:
        prefixed = self.platform.name(name)
        assert self.bridge is not None
        try:
            self.bridge.find_rule(name)
            return name
        except FireError:
            self.bridge.find_rule(prefixed)
            return prefixed

    def fire(self, name: str, wait_s: float = 0.0) -> dict[str, Any]:
        """Fire a schedule rule now (logical or physical name); optionally wait for its targets."""
        if self.bridge is None:
            raise FireError("the platform is not running")
        rule = self._resolve_rule(name)
        dispatches = self.bridge.fire(rule)
        out = []
        for d in dispatches:
            item: dict[str, Any] = {"target": d.target, "kind": d.kind}
            if wait_s > 0 and d.future is not None:
                try:
                    outcome = d.future.result(timeout=wait_s)
                except Exception as e:
                    item["error"] = str(e)
                else:
                    if isinstance(outcome, str):
                        item["execution_arn"] = outcome
                    else:
                        item.update(
                            attempts=outcome.attempts,
                            succeeded=outcome.succeeded,
                            dead_lettered=outcome.dead_lettered,
                            payload=outcome.result.payload if outcome.result else None,
                        )
            out.append(item)
        return {"rule": rule, "dispatches": out}

    def status(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready_at else "starting",
            "pid": os.getpid(),
            "endpoint": self.endpoint,
            "api": self.api_url,
            "started_at": self.started_at,
            "ready_at": self.ready_at,
            "moto": SUPPORTED_MOTO_VERSION,
            "functions": self.executor.stats() if self.executor else {},
            "worker_pids": self.executor.worker_pids() if self.executor else [],
            "next_schedules": {
                k: v.isoformat() for k, v in (self.scheduler.next_fire_times() if self.scheduler else {}).items()
            },
            "interrupted": self.persistence.interrupted() if self.persistence is not None else [],
        }

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if path == "/_driftline/status" and method == "GET":
            return 200, self.status()
        if path == "/_driftline/fire" and method == "POST":
            try:
                req = json.loads(body or b"{}")
                return 200, self.fire(str(req["rule"]), float(req.get("wait_s", 0.0)))
            except (ValueError, KeyError, TypeError) as e:
                return 400, {"error": f"expected a JSON body with 'rule' (and optional 'wait_s'): {e}"}
            except FireError as e:
                return 404, {"error": str(e)}
        if path == "/_driftline/reload" and method == "POST":
            return self._control_reload(body)
        if path == "/_driftline/interrupted" and method == "POST":
            return self._control_resolve(body)
        return 404, {"error": f"unknown control endpoint {method} {path}"}

    def _control_resolve(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Stop listing an interrupted execution: ``{"arn", "resolution": "resumed"|"dismissed", "detail"}``."""
        from driftline.local.journal import JournalWriteError
        from driftline.local.persistence import UnknownExecutionError

        if self.persistence is None:
            return 409, {"error": "this platform keeps no state (--in-memory): it has no interrupted executions"}
        try:
            req = json.loads(body or b"{}")
            arn, resolution, detail = str(req["arn"]), str(req["resolution"]), str(req.get("detail", ""))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return 400, {"error": f"expected a JSON body with 'arn', 'resolution' (and optional 'detail'): {e!r}"}
        try:
            return 200, self.persistence.resolve(arn, resolution, detail)
        except UnknownExecutionError as e:
            return 404, {"error": str(e.args[0])}
        except ValueError as e:
            return 400, {"error": str(e)}
        except JournalWriteError as e:
            return 507, {"error": str(e)}

    def _control_reload(self, body: bytes) -> tuple[int, dict[str, Any]]:
        from driftline.local.reload import ReloadError, ReloadFailedError, ReloadRefusedError

        try:
            prune = bool(json.loads(body or b"{}").get("prune", False))
        except (ValueError, AttributeError) as e:
            return 400, {"error": f"expected a JSON body with optional 'prune': {e}"}
        try:
            return 200, self.reload(prune=prune)
        except ReloadError as e:
            return 400, {"error": str(e)}
        except ReloadRefusedError as e:
            return 409, {"error": str(e)}
        except ReloadFailedError as e:
            return 500, {"error": str(e)}
