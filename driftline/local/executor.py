"""The local Lambda executor: runs real handler code in warm worker processes.

Each function gets a small pool of :mod:`driftline.local.worker` processes. A worker is reused
between invocations (warm start), a second one is started only when invocations overlap (Lambda
scales out the same way), and the pool is bounded so a burst cannot fork-bomb a laptop: further
invocations wait for a free worker instead of being throttled. A worker that times out, crashes
or fails its init is killed and the next invocation gets a fresh one, as in AWS.

No moto imports here: the executor is driven by :mod:`driftline.local.moto_hooks` (emulator
invocations) and by the API gateway, and is tested on its own.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftline.local import lambda_errors as errs
from driftline.local.framing import readable, recv_frame, send_frame

# Init may take up to this long before the function's own timeout starts counting (AWS: 10 s).
INIT_ALLOWANCE_S = 10.0
LOG_TAIL_BYTES = 4096
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "test"}
# Host variables a worker keeps; everything else comes from the function's configuration.
INHERITED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SYSTEMROOT",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "COVERAGE_PROCESS_START",
    "PYTHONPYCACHEPREFIX",
)

LineCallback = Callable[["FunctionSpec", str], None]
LogsCallback = Callable[["FunctionSpec", str, list[tuple[int, str]]], None]


@dataclass(frozen=True)
class FunctionSpec:
    """Everything the executor needs to run a function; built from the emulator's function record."""

    name: str
    arn: str
    handler: str
    timeout_s: float
    memory_mb: int
    env: Mapping[str, str]
    code_paths: tuple[str, ...]
    """sys.path entries in order; the first is LAMBDA_TASK_ROOT and the worker's working directory."""
    region: str = "us-east-1"
    version: str = "$LATEST"
    runtime: str = "python3.12"
    label: str = ""
    """Short name for terminal output (the logical name for platform functions)."""
    credentials: tuple[tuple[str, str], ...] = ()
    """The function role's session (``AWS_ACCESS_KEY_ID``, ...: see ``driftline.local.iam_enforcement``);
    empty: the emulator's unchecked test credentials."""

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    @property
    def display(self) -> str:
        return self.label or self.name


@dataclass
class InvocationResult:
    request_id: str
    payload: str
    error: bool
    duration_ms: float
    cold: bool
    log_lines: list[str] = field(default_factory=list)

    @property
    def log_tail(self) -> str:
        """What ``LogType=Tail`` returns: the last 4 KB of the invocation's log."""
        data = "\n".join(self.log_lines).encode()[-LOG_TAIL_BYTES:]
        return data.decode(errors="ignore")

    @property
    def error_type(self) -> str | None:
        if not self.error:
            return None
        try:
            doc = json.loads(self.payload)
        except ValueError:
            return "Unhandled"
        return str(doc.get("errorType", "Unhandled")) if isinstance(doc, dict) else "Unhandled"


@dataclass
class _Outcome:
    payload: str
    error: bool
    healthy: bool
    lines: list[tuple[int, str]]
    init_ms: float | None
    duration_ms: float


class _Worker:
    """One worker process and its socket."""

    def __init__(self, spec: FunctionSpec, python: str) -> None:
        self.spec = spec
        now = datetime.now(UTC)
        self.stream = f"{now:%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        ours, theirs = socket.socketpair()
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        env.update(spec.env)
        env.update(FAKE_CREDENTIALS)
        env.update(dict(spec.credentials))
        env.update(
            {
                "_HANDLER": spec.handler,
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": self.stream,
                "LAMBDA_TASK_ROOT": spec.code_paths[0] if spec.code_paths else os.getcwd(),
                "TZ": ":UTC",
                "PYTHONIOENCODING": "utf-8",
                "DRIFTLINE_LOCAL_CODE_PATHS": os.pathsep.join(spec.code_paths),
            }
        )
        try:
            self.proc = subprocess.Popen(
                [python, "-m", "driftline.local.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                cwd=env["LAMBDA_TASK_ROOT"],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.sock = ours
        self.spawned_at = time.monotonic()
        self.ready = False
        self.invocations = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def invoke(self, request_id: str, event_json: str, on_line: LineCallback | None) -> _Outcome:
        spec = self.spec
        lines: list[tuple[int, str]] = []
        init_ms: float | None = None
        request = {
            "request_id": request_id,
            "event": event_json,
            "timeout_ms": int(spec.timeout_s * 1000),
            "invoked_arn": spec.arn,
        }
        try:
            send_frame(self.sock, json.dumps(request, separators=(",", ":")).encode())
        except OSError:
            return self._crashed(request_id, lines, init_ms)
        started = time.monotonic()
        deadline = started + spec.timeout_s + (0.0 if self.ready else INIT_ALLOWANCE_S)
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or not readable(self.sock, remaining):
                    if time.monotonic() < deadline:
                        continue
                    return self._timed_out(request_id, lines, init_ms, started)
                frame = json.loads(recv_frame(self.sock))
            except (EOFError, OSError, ValueError):
                return self._crashed(request_id, lines, init_ms, started)
            kind = frame.get("t")
            if kind == "log":
                line = str(frame["line"])
                lines.append((int(time.time() * 1000), line))
                if on_line is not None:
                    on_line(spec, line)
            elif kind == "ready":
                self.ready = True
                started = time.monotonic()
                init_ms = (started - self.spawned_at) * 1000.0
                deadline = started + spec.timeout_s
            elif kind == "done":
                self.invocations += 1
                return _Outcome(
                    str(frame["payload"]),
                    bool(frame["error"]),
                    not frame.get("fatal", False),
                    lines,
                    init_ms,
                    (time.monotonic() - started) * 1000.0,
                )

    def _timed_out(
        self, request_id: str, lines: list[tuple[int, str]], init_ms: float | None, started: float
    ) -> _Outcome:
        self.kill()
        payload = errs.timeout_payload(request_id, self.spec.timeout_s)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        lines.append(
            (
                int(time.time() * 1000),
                f"{now} {request_id} Task timed out after {self.spec.timeout_s:.2f} seconds",
            )
        )
        return _Outcome(errs.dumps(payload), True, False, lines, init_ms, (time.monotonic() - started) * 1000.0)

    def _crashed(
        self,
        request_id: str,
        lines: list[tuple[int, str]],
        init_ms: float | None,
        started: float | None = None,
    ) -> _Outcome:
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        payload = errs.exit_payload(request_id, code)
        lines.append((int(time.time() * 1000), f"{payload['errorType']}: {payload['errorMessage']}"))
        elapsed = (time.monotonic() - started) * 1000.0 if started is not None else 0.0
        return _Outcome(errs.dumps(payload), True, False, lines, init_ms, elapsed)

    def max_rss_mb(self) -> int | None:
        try:
            for row in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if row.startswith("VmHWM:"):
                    return int(row.split()[1]) // 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    def close(self) -> None:
        """Ask the worker to end (EOF on its socket) without waiting."""
        with contextlib.suppress(OSError):
            self.sock.close()

    def end_in_background(self, grace_s: float = 10.0) -> None:
        """Ask the worker to end and reap it from a daemon thread (killed after ``grace_s``): no zombie,
        and nobody waits for it."""
        self.close()

        def reap() -> None:
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()

        threading.Thread(target=reap, name=f"reap-{self.proc.pid}", daemon=True).start()

    def kill(self) -> None:
        self.close()
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5.0)


class _Pool:
    """Workers of one function configuration; LIFO reuse keeps the most recent worker warm."""

    def __init__(self, spec: FunctionSpec, max_workers: int, python: str) -> None:
        self.spec = spec
        self.max_workers = max_workers
        self.python = python
        self.idle: list[_Worker] = []
        self.live: set[_Worker] = set()
        self.starting = 0
        self.retired = False
        self.invocations = 0
        self.cond = threading.Condition()

    def acquire(self) -> tuple[_Worker, bool]:
        with self.cond:
            while True:
                if self.retired:
                    raise RuntimeError(f"function {self.spec.name} was reconfigured or the platform is stopping")
                while self.idle:
                    w = self.idle.pop()
                    if w.alive():
                        return w, False
                    self.live.discard(w)
                if len(self.live) + self.starting < self.max_workers:
                    self.starting += 1
                    break
                self.cond.wait()
        try:
            worker = _Worker(self.spec, self.python)
        finally:
            with self.cond:
                self.starting -= 1
                self.cond.notify_all()
        with self.cond:
            self.live.add(worker)
        return worker, True

    def release(self, worker: _Worker, healthy: bool) -> None:
        with self.cond:
            self.invocations += 1
            keep = healthy and not self.retired and worker.alive()
            if keep:
                self.idle.append(worker)
            else:
                self.live.discard(worker)
            self.cond.notify_all()
        if not keep:
            worker.kill()

    def retire(self) -> tuple[list[_Worker], list[_Worker]]:
        """Stop handing out workers; returns (idle, busy) workers for the caller to end.

        Busy workers of a retired pool are killed when released, so in-flight invocations finish.
        """
        with self.cond:
            self.retired = True
            idle = list(self.idle)
            busy = [w for w in self.live if w not in idle]
            self.live.difference_update(idle)
            self.idle.clear()
            self.cond.notify_all()
        return idle, busy


class LambdaExecutor:
    """Runs invocations on warm worker pools, one pool per function configuration."""

    def __init__(
        self,
        *,
        on_line: LineCallback | None = None,
        on_logs: LogsCallback | None = None,
        max_workers_per_function: int = 4,
        python: str = sys.executable,
    ) -> None:
        if max_workers_per_function < 1:
            raise ValueError("max_workers_per_function must be at least 1")
        self.on_line = on_line
        self.on_logs = on_logs
        self.max_workers = max_workers_per_function
        self.python = python
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _pool(self, spec: FunctionSpec) -> _Pool:
        stale: list[_Worker] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the local Lambda executor is shut down")
            pool = self._pools.get(spec.name)
            if pool is None or pool.spec != spec:
                if pool is not None:  # configuration changed: new environments, like a Lambda update
                    stale = pool.retire()[0]
                pool = self._pools[spec.name] = _Pool(spec, self.max_workers, self.python)
        for w in stale:
            w.end_in_background()
        return pool

    def invoke(self, spec: FunctionSpec, event_json: str, request_id: str | None = None) -> InvocationResult:
        """Run one invocation synchronously and return Lambda's answer (payload and error flag)."""
        request_id = request_id or str(uuid.uuid4())
        pool = self._pool(spec)
        worker, cold = pool.acquire()
        outcome = worker.invoke(request_id, event_json, self.on_line)
        duration_ms = outcome.duration_ms
        rss = worker.max_rss_mb()
        pool.release(worker, outcome.healthy)
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {max(math.ceil(duration_ms), 1)} ms\tMemory Size: {spec.memory_mb} MB"
        )
        if rss is not None:
            report += f"\tMax Memory Used: {rss} MB"
        if outcome.init_ms is not None:
            report += f"\tInit Duration: {outcome.init_ms:.2f} ms"
        now_ms = int(time.time() * 1000)
        start_ms = outcome.lines[0][0] if outcome.lines else now_ms
        events = [
            (start_ms, f"START RequestId: {request_id} Version: {spec.version}"),
            *outcome.lines,
            (now_ms, f"END RequestId: {request_id}"),
            (now_ms, report),
        ]
        if self.on_logs is not None:
            self.on_logs(spec, worker.stream, events)
        return InvocationResult(
            request_id, outcome.payload, outcome.error, duration_ms, cold, [line for _, line in events]
        )

    def stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            pools = dict(self._pools)
        return {
            name: {
                "workers": len(p.live),
                "idle": len(p.idle),
                "invocations": p.invocations,
                "pids": sorted(w.pid for w in p.live),
            }
            for name, p in pools.items()
        }

    def worker_pids(self) -> list[int]:
        return [pid for s in self.stats().values() for pid in s["pids"]]

    def shutdown(self, grace_s: float = 2.0) -> None:
        """End every worker: EOF first (they exit on their own), then kill what is left."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
        idle: list[_Worker] = []
        for p in pools:
            pool_idle, pool_busy = p.retire()
            idle += pool_idle
            for w in pool_busy:  # its invoking thread sees EOF and reports Runtime.ExitError
                if w.alive():
                    w.proc.kill()
        for w in idle:
            w.close()
        deadline = time.monotonic() + grace_s
        for w in idle:
            try:
                w.proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                w.kill()
