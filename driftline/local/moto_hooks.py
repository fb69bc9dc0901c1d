"""Where the local runtime plugs into moto; with :mod:`driftline.local.moto_state` (the stored state that
persistence reads and restores), the only module that touches moto's internals.

moto 5.2.5 runs Lambda code only in Docker, never delivers EventBridge events to Lambda or Step
Functions targets and invokes S3-notified functions synchronously inside the upload request.
Four guarded replacements fix that:

- ``LambdaFunction._invoke_lambda`` (every synchronous execution: Invoke API, Step Functions tasks)
  runs the handler in the :class:`~driftline.local.executor.LambdaExecutor`;
- ``LambdaFunction.invoke`` queues ``InvocationType=Event`` calls instead of running them inline and
  reports handler errors as ``Unhandled`` as Lambda does;
- ``moto.s3.notifications._invoke_awslambda`` queues S3 notifications (async, retried, DLQ);
- ``moto.s3.notifications._get_s3_event`` adds the object's ``versionId``, as S3 does for versioned buckets;
- ``Rule.send_to_targets`` routes matching events to Lambda and Step Functions targets and leaves
  the targets moto supports (SQS, logs, buses) to moto.

The moto version is pinned; anything else refuses to start with a message naming the version.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import io
import json
import os
import sys
import threading
import time
import types
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from driftline.local import lambda_errors as errs
from driftline.local.async_invoke import AsyncInvoker, AsyncOutcome
from driftline.local.event_patterns import PatternError, matches, target_input
from driftline.local.executor import FunctionSpec, InvocationResult, LambdaExecutor
from driftline.local.iam_enforcement import LocalIam, enforced
from driftline.local.schedules import ScheduledRule
from driftline.platform import Platform

SUPPORTED_MOTO_VERSION = "5.2.5"
DEFAULT_ACCOUNT = "123456789012"

SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding ``driftline/`` and the handlers' ``lambdas/`` package."""


class UnsupportedMotoError(RuntimeError):
    """The installed moto is not the version whose internals the local runtime was written against."""


class FireError(ValueError):
    """``fire`` was asked for a rule that does not exist or has no schedule."""


def _hook_points() -> list[tuple[Any, str]]:
    import moto.s3.notifications as s3_notifications
    from moto.awslambda.models import LambdaFunction
    from moto.events.models import Rule

    from driftline.local.athena_hook import athena_hook_points
    from driftline.local.s3_hook import s3_hook_points
    from driftline.local.sagemaker_hook import sagemaker_hook_points

    return [
        (LambdaFunction, "_invoke_lambda"),
        (LambdaFunction, "invoke"),
        (s3_notifications, "_invoke_awslambda"),
        (s3_notifications, "_get_s3_event"),
        (Rule, "send_to_targets"),
        *athena_hook_points(),  # the local Athena (driftline.local.athena_hook)
        *sagemaker_hook_points(),  # training jobs run locally (driftline.local.sagemaker_hook)
        *s3_hook_points(),  # large objects stay on disk (driftline.local.s3_hook)
    ]


def _fingerprint(fn: Any) -> tuple[Any, ...]:
    """What decides which code runs and how: handler, code, runtime, environment (PYTHONPATH, ...)."""
    env = fn.environment_vars or {}
    return (
        str(fn.handler or ""),
        str(getattr(fn, "code_sha_256", "") or ""),
        str(getattr(fn, "run_time", "") or ""),
        tuple(sorted((str(k), str(v)) for k, v in env.items())),
    )


def check_moto() -> None:
    """Refuse to run on a moto whose internals may differ from the ones these hooks replace."""
    try:
        import moto
    except ImportError:
        raise UnsupportedMotoError(
            f"the local platform needs moto[server]=={SUPPORTED_MOTO_VERSION}; install the 'local' extra "
            "(uv sync --extra local)"
        ) from None
    if moto.__version__ != SUPPORTED_MOTO_VERSION:
        raise UnsupportedMotoError(
            f"the local platform supports moto {SUPPORTED_MOTO_VERSION} exactly (it replaces private moto "
            f"methods); installed: moto {moto.__version__}. Install moto[server]=={SUPPORTED_MOTO_VERSION}."
        )
    missing = [
        f"{getattr(owner, '__name__', owner)}.{name}" for owner, name in _hook_points() if not hasattr(owner, name)
    ]
    if missing:
        raise UnsupportedMotoError(
            f"moto {moto.__version__} lacks {', '.join(missing)}; the local platform supports moto "
            f"{SUPPORTED_MOTO_VERSION} exactly"
        )


def defer_batch_import() -> None:
    """Keep moto's Step Functions interpreter from importing all of EC2 at start-up.

    The interpreter imports ``moto.batch.utils`` for one enum, and ``moto/batch/__init__.py``
    imports Batch's models and with them EC2 (a large share of ``up``'s start-up CPU). Registering
    ``moto.batch`` as a package whose attributes load ``moto.batch.models`` on first use keeps the
    Batch API working (moto's backend registry reads ``moto.batch.batch_backends``) without paying
    for it unless it is used.
    """
    if "moto.batch" in sys.modules:
        return
    spec = importlib.util.find_spec("moto.batch")
    if spec is None or not spec.submodule_search_locations:
        return
    module = types.ModuleType("moto.batch")
    module.__path__ = list(spec.submodule_search_locations)
    module.__file__ = spec.origin

    def __getattr__(name: str) -> Any:  # noqa: N807 - a module-level __getattr__ (PEP 562)
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module("moto.batch.models"), name)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules["moto.batch"] = module


def _is_routed_here(arn: str) -> bool:
    return arn.startswith("arn:aws:lambda:") or arn.startswith("arn:aws:states:")


def _iso(t: Any) -> str:
    if isinstance(t, int | float):
        return datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(t, datetime):
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(t)


def _aws_key_encoding(event: Any) -> Any:
    """S3 notifications URL-encode object keys but keep '/' (``a b/c.csv`` -> ``a+b/c.csv``);
    moto also encodes '/' as %2F. Handlers decode with ``unquote_plus`` either way."""
    for record in event.get("Records", []) if isinstance(event, dict) else []:
        obj = record.get("s3", {}).get("object", {})
        if isinstance(obj.get("key"), str):
            obj["key"] = quote_plus(unquote_plus(obj["key"]), safe="/")
    return event


def _event_json(event: Any) -> str:
    # moto parses the request body before calling _invoke_lambda and substitutes the *string* "{}"
    # for an empty one; everything else arrives as parsed JSON.
    if event is None or (isinstance(event, str) and event == "{}"):
        return "{}"
    return json.dumps(event)


@dataclass
class Dispatch:
    """One delivery to a target, for ``fire`` and tests to observe."""

    target: str
    kind: str
    future: Future[AsyncOutcome] | Future[str] | None = None


class MotoBridge:
    """Connects moto's function, rule and notification records to the executor and the router."""

    def __init__(
        self,
        executor: LambdaExecutor,
        *,
        project_root: Path,
        code_cache: Path,
        clients: Callable[[str], Any],
        labels: dict[str, str] | None = None,
        dead_letters: dict[str, str] | None = None,
        retry_delays_s: tuple[float, ...] = (1.0, 2.0),
        region: str = "us-east-1",
        warn: Callable[[str], None] = print,
    ) -> None:
        self.executor = executor
        self.default_region = region
        self.project_root = project_root.resolve()
        self.code_cache = code_cache
        self.clients = clients
        self.labels = labels or {}
        self.dead_letters = dead_letters or {}
        self.warn = warn
        self.async_invoker = AsyncInvoker(
            self.run_function, self._dead_letter, retry_delays_s=retry_delays_s, warn=warn
        )
        self._sfn_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="driftline-sfn-start")
        self._originals: dict[tuple[Any, str], Any] = {}
        self._code_paths: dict[tuple[str, str], tuple[str, ...]] = {}
        self._code_lock = threading.Lock()
        self._logs_lock = threading.Lock()
        self._streams: set[tuple[str, str]] = set()
        self._raw = threading.local()
        self._trusted: dict[str, tuple[Any, ...]] | None = None
        self._trust_lock = threading.Lock()
        self.iam: LocalIam | None = None
        self._platform: Callable[[], Platform] | None = None
        self._iam_hooks = contextlib.ExitStack()

    # ---- local IAM enforcement ----
    def enforce_iam(self, platform: Callable[[], Platform], account: str, region: str) -> bool:
        """Run every platform function with a session of its own role and have the emulator check those
        sessions' calls (``driftline.local.iam_enforcement``). Off when ``DRIFTLINE_LOCAL_IAM`` is ``0``."""
        if os.environ.get("DRIFTLINE_LOCAL_IAM", "1") == "0":
            return False
        self._platform = platform
        self.iam = LocalIam(platform(), account, region)
        self._iam_hooks.enter_context(enforced(self.iam))
        return True

    def _credentials(self, label: str) -> tuple[tuple[str, str], ...]:
        if self.iam is None or self._platform is None or not label:
            return ()
        current = self._platform()
        if current is not self.iam.platform:  # reloaded: the declaration may have changed
            self.iam.platform = current
            self.iam.refresh_policies()
        if not any(f.logical == label for f in current.functions):
            return ()
        return tuple(sorted(self.iam.credentials(label).items()))

    # ---- which functions may run ----
    def seal(self) -> None:
        """Run only function configurations recorded by :meth:`trust` from now on (the local platform
        seals before provisioning; an unsealed bridge, as in in-process tests, runs every function)."""
        with self._trust_lock:
            if self._trusted is None:
                self._trusted = {}

    def trust(self, name_or_arn: str) -> None:
        """Record a function's current configuration as one the platform made (after a token-bearing
        create or change); a deleted function is forgotten."""
        fn = self.get_function(name_or_arn)
        with self._trust_lock:
            if self._trusted is None:
                return
            if fn is None:
                self._trusted.pop(name_or_arn.rsplit(":", 1)[-1], None)
            else:
                self._trusted[str(fn.function_name)] = _fingerprint(fn)

    def is_trusted(self, fn: Any) -> bool:
        with self._trust_lock:
            return self._trusted is None or self._trusted.get(str(fn.function_name)) == _fingerprint(fn)

    # ---- installation ----
    def install(self) -> None:  # noqa: C901 - one short closure per moto hook point, each over the bridge and the original it wraps
        check_moto()
        import moto.s3.notifications as s3_notifications
        from moto.awslambda.models import LambdaFunction
        from moto.events.models import Rule

        bridge = self
        orig_invoke = LambdaFunction.invoke
        orig_send = Rule.send_to_targets

        def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
            raw = getattr(bridge._raw, "body", None)
            result = bridge.run_moto_function(fn, raw if raw else _event_json(event))
            return result.payload, result.error, result.log_tail

        def invoke(fn: Any, body: Any, request_headers: Any, response_headers: Any) -> str | bytes:
            get = getattr(request_headers, "get", None)
            inv_type = (get("X-Amz-Invocation-Type") or get("x-amz-invocation-type")) if get else None
            raw = body.decode() if isinstance(body, bytes) else (body or "")
            if inv_type == "Event":
                bridge.async_invoker.submit(fn.function_arn, raw or "{}")
                return b""
            if inv_type == "DryRun":  # validates the call only; the function does not run
                return b""
            bridge._raw.body = raw
            try:
                out: str | bytes = orig_invoke(fn, body, request_headers, response_headers)
            finally:
                bridge._raw.body = None
            if response_headers.get("x-amz-function-error") == "Handled":
                response_headers["x-amz-function-error"] = "Unhandled"  # what Lambda reports for a raise
            return out

        def _invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
            bridge.async_invoker.submit(fn_arn, json.dumps(_aws_key_encoding(event_body)))

        orig_s3_event = s3_notifications._get_s3_event

        def _get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
            """S3 names the object version in the notification (versioned buckets); moto leaves it out,
            so back-to-back uploads to one key read 'the latest' twice and lose the first."""
            body: dict[str, Any] = orig_s3_event(event_name, bucket, key, notification_id)
            version = getattr(key, "version_id", None)
            if version and version != "null":
                for record in body.get("Records", []):
                    record.get("s3", {}).get("object", {})["versionId"] = str(version)
            return body

        def send_to_targets(rule: Any, original_event: Any, transform_input: bool = True) -> None:
            ours = [t for t in rule.targets if _is_routed_here(str(t.get("Arn", "")))]
            theirs = [t for t in rule.targets if t not in ours]
            pattern = rule.event_pattern.dump()
            if not pattern:  # schedule-only rules never match events (moto treats them as match-all)
                return
            if theirs:
                clone = copy.copy(rule)
                clone.targets = theirs
                orig_send(clone, original_event, transform_input)
            if ours and rule.state == "ENABLED":
                event = dict(original_event)
                event["time"] = _iso(event.get("time", time.time()))
                event.pop("ingestion-time", None)
                try:
                    hit = matches(pattern, event)
                except PatternError as e:
                    bridge.warn(f"rule {rule.name}: {e}")
                    return
                if hit:
                    bridge.deliver(rule, ours, event)

        self._patch(LambdaFunction, "_invoke_lambda", _invoke_lambda)
        self._patch(LambdaFunction, "invoke", invoke)
        self._patch(s3_notifications, "_invoke_awslambda", _invoke_awslambda)
        self._patch(s3_notifications, "_get_s3_event", _get_s3_event)
        self._patch(Rule, "send_to_targets", send_to_targets)

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._originals.setdefault((owner, name), getattr(owner, name))
        setattr(owner, name, replacement)

    def uninstall(self) -> None:
        self._iam_hooks.close()
        for (owner, name), original in self._originals.items():
            setattr(owner, name, original)
        self._originals.clear()

    def shutdown(self) -> None:
        self.async_invoker.shutdown()
        self._sfn_pool.shutdown(wait=False, cancel_futures=True)
        self.uninstall()

    # ---- functions ----
    def get_function(self, name_or_arn: str) -> Any | None:
        from moto.awslambda.utils import get_backend

        account, region = DEFAULT_ACCOUNT, self.default_region
        if name_or_arn.startswith("arn:"):
            parts = name_or_arn.split(":")
            region, account = parts[3], parts[4]
        try:
            return get_backend(account, region).get_function(name_or_arn)
        except Exception:  # moto raises UnknownFunctionException (and others for bad ARNs)
            return None

    def spec_for(self, fn: Any) -> FunctionSpec:
        name = str(fn.function_name)
        return FunctionSpec(
            name=name,
            arn=str(fn.function_arn),
            handler=str(fn.handler or ""),
            timeout_s=float(fn.timeout or 3),
            memory_mb=int(fn.memory_size or 128),
            env=dict(fn.environment_vars or {}),
            code_paths=self._code_paths_for(fn),
            region=str(fn.region),
            runtime=str(fn.run_time or "python3.12"),
            label=self.labels.get(name, ""),
            credentials=self._credentials(self.labels.get(name, "")),
        )

    def _roots(self) -> tuple[str, ...]:
        """The project (the config's folder) and the source tree holding ``lambdas/`` and ``driftline/``:
        the same folder for the repository's own cdk.json, two folders for a config elsewhere."""
        roots = [str(self.project_root)]
        if str(SOURCE_ROOT) not in roots:
            roots.append(str(SOURCE_ROOT))
        return tuple(roots)

    def _code_paths_for(self, fn: Any) -> tuple[str, ...]:
        """The function's own zip (if it holds Python code) ahead of the project root."""
        sha = str(getattr(fn, "code_sha_256", "") or "")
        key = (str(fn.function_name), sha)
        with self._code_lock:
            if key in self._code_paths:
                return self._code_paths[key]
            paths: tuple[str, ...] = self._roots()
            code = getattr(fn, "code_bytes", b"") or b""
            if code and sha:
                try:
                    with zipfile.ZipFile(io.BytesIO(code)) as zf:
                        if any(n.endswith((".py", ".so")) for n in zf.namelist()):
                            target = self.code_cache / sha.replace("/", "_")[:64]
                            if not target.exists():
                                tmp = target.with_name(target.name + f".tmp{uuid.uuid4().hex[:6]}")
                                zf.extractall(tmp)
                                tmp.rename(target)
                            paths = (str(target), *self._roots())
                except (zipfile.BadZipFile, OSError) as e:
                    self.warn(
                        f"function {fn.function_name}: cannot unpack its code zip ({e}); running from the project root"
                    )
            self._code_paths[key] = paths
            return paths

    def run_moto_function(self, fn: Any, event_json: str) -> InvocationResult:
        if not self.is_trusted(fn):
            request_id = str(uuid.uuid4())
            msg = (
                f"the local platform runs only the functions it provisioned (or that a client holding its token "
                f"created or changed); {fn.function_name} was created or changed some other way, so its code "
                "is not run on this machine"
            )
            self.warn(f"[local] refused to run {fn.function_name}: not created or changed by the platform")
            return InvocationResult(
                request_id,
                errs.dumps(errs.error_payload("Runtime.UntrustedFunction", msg, request_id)),
                True,
                0.0,
                False,
                [msg],
            )
        runtime = str(getattr(fn, "run_time", "") or "")
        if not fn.handler or (runtime and not runtime.startswith("python")):
            request_id = str(uuid.uuid4())
            msg = (
                f"the local platform runs zip-packaged Python functions; {fn.function_name} has runtime "
                f"{runtime or 'none'} and handler {fn.handler or 'none'}"
            )
            return InvocationResult(
                request_id,
                errs.dumps(errs.error_payload("Runtime.InvalidRuntime", msg, request_id)),
                True,
                0.0,
                False,
                [msg],
            )
        return self.executor.invoke(self.spec_for(fn), event_json)

    def run_function(self, name_or_arn: str, event_json: str) -> InvocationResult | None:
        fn = self.get_function(name_or_arn)
        if fn is None:
            return None
        return self.run_moto_function(fn, event_json)

    def write_logs(self, spec: FunctionSpec, stream: str, events: list[tuple[int, str]]) -> None:
        """Store an invocation's log lines in the emulator's CloudWatch Logs group of the function."""
        from moto.logs.models import logs_backends

        account = spec.arn.split(":")[4] if spec.arn.count(":") >= 5 else DEFAULT_ACCOUNT
        backend = logs_backends[account][spec.region]
        with self._logs_lock:
            backend.ensure_log_group(spec.log_group)
            if (spec.log_group, stream) not in self._streams:
                # It may exist already (a previous bridge over the same in-process backend made it).
                with contextlib.suppress(Exception):
                    backend.create_log_stream(spec.log_group, stream)
                self._streams.add((spec.log_group, stream))
            backend.put_log_events(spec.log_group, stream, [{"timestamp": ts, "message": line} for ts, line in events])

    def _dead_letter(self, function: str, event_json: str, result: InvocationResult) -> bool:
        fn = self.get_function(function)
        name = str(fn.function_name) if fn is not None else function
        queue_arn = self.dead_letters.get(name)
        label = self.labels.get(name, name)
        if not queue_arn:
            self.warn(f"[{label}] async event dropped after retries: no dead-letter queue is configured")
            return False
        try:
            message = str(json.loads(result.payload).get("errorMessage", ""))[:1024]
        except (ValueError, AttributeError):
            message = result.payload[:1024]
        sqs = self.clients("sqs")
        url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        sqs.send_message(
            QueueUrl=url,
            MessageBody=event_json,
            MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": result.request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {
                    "DataType": "String",
                    "StringValue": message or (result.error_type or "error"),
                },
            },
        )
        self.warn(
            f"[{label}] async event sent to dead-letter queue {queue_arn.rsplit(':', 1)[-1]} "
            f"after 3 attempts ({result.error_type})"
        )
        return True

    # ---- rules ----
    def deliver(self, rule: Any, targets: list[dict[str, Any]], event: dict[str, Any]) -> list[Dispatch]:
        out: list[Dispatch] = []
        for target in targets:
            arn = str(target["Arn"])
            try:
                payload = target_input(target, event, str(rule.name), str(rule.arn))
            except PatternError as e:
                self.warn(f"rule {rule.name} target {target.get('Id')}: {e}")
                continue
            if arn.startswith("arn:aws:lambda:"):
                out.append(Dispatch(arn, "lambda", self.async_invoker.submit(arn, payload)))
            elif arn.startswith("arn:aws:states:"):
                out.append(Dispatch(arn, "states", self._sfn_pool.submit(self._start_execution, arn, payload)))
        return out

    def _start_execution(self, state_machine_arn: str, input_json: str) -> str:
        try:
            arn: str = self.clients("stepfunctions").start_execution(
                stateMachineArn=state_machine_arn, name=str(uuid.uuid4()), input=input_json
            )["executionArn"]
        except Exception as e:
            self.warn(f"could not start {state_machine_arn}: {e}")
            raise
        return arn

    def _all_rules(self) -> list[Any]:
        from moto.events.models import events_backends

        rules: list[Any] = []
        for _account, regions in list(events_backends.items()):
            for backend in list(regions.values()):
                for bus in list(backend.event_buses.values()):
                    rules.extend(list(bus.rules.values()))
        return rules

    def schedule_rules(self) -> list[ScheduledRule]:
        return [
            ScheduledRule(str(r.name), str(r.arn), str(r.scheduled_expression))
            for r in self._all_rules()
            if r.scheduled_expression and r.state == "ENABLED"
        ]

    def find_rule(self, name_or_arn: str) -> Any:
        for rule in self._all_rules():
            if name_or_arn in (rule.name, rule.arn):
                return rule
        scheduled = sorted(str(r.name) for r in self._all_rules() if r.scheduled_expression)
        raise FireError(f"no rule named {name_or_arn!r}; schedule rules: {', '.join(scheduled) or 'none'}")

    def fire(self, name_or_arn: str) -> list[Dispatch]:
        """Deliver a rule's scheduled event to its targets now, as if its schedule had come round."""
        rule = self.find_rule(name_or_arn)
        if not rule.scheduled_expression:
            raise FireError(
                f"rule {rule.name} has no schedule (it matches events with the pattern "
                f"{rule.event_pattern.dump()}); put a matching event on its bus instead, "
                "e.g. aws events put-events"
            )
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": str(rule.account_id),
            "time": _iso(time.time()),
            "region": str(rule.region_name),
            "resources": [str(rule.arn)],
            "detail": {},
        }
        ours = [t for t in rule.targets if _is_routed_here(str(t.get("Arn", "")))]
        theirs = [t for t in rule.targets if t not in ours]
        if theirs:
            clone = copy.copy(rule)
            clone.targets = theirs
            self._originals.get((type(rule), "send_to_targets"), type(rule).send_to_targets)(clone, event)
        dispatches = self.deliver(rule, ours, event)
        dispatches += [Dispatch(str(t["Arn"]), "moto") for t in theirs]
        return dispatches

    def fire_scheduled(self, rule: ScheduledRule) -> None:
        self.fire(rule.arn)
