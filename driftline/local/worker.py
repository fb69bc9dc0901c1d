"""One Lambda execution environment: a process that imports one handler once and runs it for
every invocation it is given, so module-level state (clients, loaded models) survives between
invocations exactly as in a warm Lambda.

Started by :mod:`driftline.local.executor` as ``python -m driftline.local.worker FD``, where FD is
one end of a socket pair. Frames are JSON: the supervisor sends ``{"request_id", "event",
"timeout_ms", "invoked_arn"}``; the worker answers with ``{"t": "ready"}`` once after init,
``{"t": "log", "line"}`` for each line the code prints or logs, and ``{"t": "done", "error",
"payload", "fatal"}`` per invocation. Only the standard library is imported before the handler, so
the handler's own imports decide the cold start, as in AWS.
"""

from __future__ import annotations

import decimal
import importlib
import io
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from driftline.local import lambda_errors as errs
from driftline.local.framing import recv_frame, send_frame


class _Channel:
    """The worker's end of the socket; a lock keeps frames from handler threads whole."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, frame: dict[str, Any]) -> None:
        data = json.dumps(frame, separators=(",", ":")).encode()
        with self._lock:
            send_frame(self._sock, data)

    def recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(recv_frame(self._sock))
        return frame


class _LineWriter(io.TextIOBase):
    """Replaces sys.stdout/sys.stderr: every complete line becomes a log frame.

    Loggers created at import time (Powertools, logging.StreamHandler) keep a reference to this
    object, so their output is captured too.
    """

    def __init__(self, channel: _Channel, fd: int) -> None:
        super().__init__()
        self._channel = channel
        self._fd = fd
        self._buf = ""
        self._lock = threading.Lock()

    encoding = "utf-8"  # type: ignore[assignment]

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, s: str) -> int:
        with self._lock:
            self._buf += s
            if "\n" not in self._buf:
                return len(s)
            *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._channel.send({"t": "log", "line": line})
        return len(s)

    def flush(self) -> None:
        with self._lock:
            rest, self._buf = self._buf, ""
        if rest:
            self._channel.send({"t": "log", "line": rest})


class LambdaContext:
    """The context object of the AWS Python runtime (same attribute names and types)."""

    def __init__(self, request_id: str, invoked_arn: str, timeout_ms: int) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)

    def __repr__(self) -> str:
        return f"LambdaContext(aws_request_id={self.aws_request_id!r}, function_name={self.function_name!r})"


def _json_default(o: object) -> object:
    # The AWS runtime serialises Decimal (common from DynamoDB) as a number.
    if isinstance(o, decimal.Decimal):
        return float(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def load_handler(spec: str) -> tuple[Callable[[Any, Any], Any] | None, dict[str, Any] | None]:
    """Import ``module.function`` the way the AWS runtime does; errors come back as Lambda payloads."""
    module_name, _, func_name = spec.rpartition(".")
    if not module_name or not func_name:
        return None, errs.error_payload(
            errs.MALFORMED_HANDLER, f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)"
        )
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as e:
        return None, errs.error_payload(
            errs.SYNTAX_ERROR,
            f"Syntax error in module '{module_name}': {e}",
            stack_trace=[f'  File "{e.filename}" Line {e.lineno}\n        {(e.text or "").strip()}\n'],
        )
    except ImportError as e:
        return None, errs.error_payload(errs.IMPORT_MODULE_ERROR, f"Unable to import module '{module_name}': {e}")
    except Exception as e:  # an import-time failure in user code is still an init error
        payload = errs.exception_payload(e, "")
        payload["errorMessage"] = f"Unable to import module '{module_name}': {e}"
        payload["errorType"] = errs.IMPORT_MODULE_ERROR
        return None, payload
    func = getattr(module, func_name, None)
    if not callable(func):
        return None, errs.error_payload(
            errs.HANDLER_NOT_FOUND, f"Handler '{func_name}' missing on module '{module_name}'"
        )
    return func, None


def run(channel: _Channel) -> int:
    init_start = time.perf_counter()
    handler, init_error = load_handler(os.environ.get("_HANDLER", ""))
    if init_error is not None:
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    channel.send(
        {
            "t": "ready",
            "init_ms": (time.perf_counter() - init_start) * 1000.0,
            "error": init_error is not None,
        }
    )
    while True:
        try:
            req = channel.recv()
        except (EOFError, OSError):
            return 0  # the supervisor went away: end quietly, never orphaned
        request_id = str(req["request_id"])
        if init_error is not None:
            payload = dict(init_error, requestId=request_id)
            channel.send({"t": "done", "error": True, "payload": errs.dumps(payload), "fatal": True})
            continue
        assert handler is not None
        context = LambdaContext(request_id, str(req.get("invoked_arn", "")), int(req["timeout_ms"]))
        os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{int(time.time()):08x}-{request_id.replace('-', '')[:24]}"
        try:
            event = json.loads(req["event"])
        except ValueError as e:
            payload = errs.error_payload(errs.UNMARSHAL_ERROR, f"Unable to unmarshal input: {e}", request_id)
            channel.send({"t": "done", "error": True, "payload": errs.dumps(payload), "fatal": False})
            continue
        error = False
        try:
            result = handler(event, context)
            try:
                out = json.dumps(result, default=_json_default)
            except (TypeError, ValueError) as e:
                error = True
                out = errs.dumps(errs.error_payload(errs.MARSHAL_ERROR, f"Unable to marshal response: {e}", request_id))
        except Exception as e:
            error = True
            payload = errs.exception_payload(e, request_id, skip_frames=1)
            print(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}", file=sys.stderr)
            for frame in payload["stackTrace"]:
                sys.stderr.write(frame)
            out = errs.dumps(payload)
        sys.stdout.flush()
        sys.stderr.flush()
        channel.send({"t": "done", "error": error, "payload": out, "fatal": False})


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print(
            "usage: python -m driftline.local.worker FD (started by the local Lambda executor)",
            file=sys.stderr,
        )
        return 2
    # Ctrl-C in a terminal reaches the whole process group; the supervisor decides when workers end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = _Channel(socket.socket(fileno=int(argv[1])))
    for path in reversed([p for p in os.environ.get("DRIFTLINE_LOCAL_CODE_PATHS", "").split(os.pathsep) if p]):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    sys.stdout = _LineWriter(channel, 1)
    sys.stderr = _LineWriter(channel, 2)
    return run(channel)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
