"""Lambda's error payloads, shaped like the AWS Python runtime's, so callers (Step Functions
Retry/Catch, SDK users reading ``FunctionError``) see locally what they would see in AWS.

Standard library only: the worker process imports it before any handler code.
"""

from __future__ import annotations

import json
import traceback
from types import TracebackType
from typing import Any

# errorType values the AWS runtime and sandbox use for failures outside the handler's own code.
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
MALFORMED_HANDLER = "Runtime.MalformedHandlerName"
SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
EXIT_ERROR = "Runtime.ExitError"
TIMEOUT_ERROR = "Sandbox.Timedout"


def error_payload(
    error_type: str, message: str, request_id: str = "", stack_trace: list[str] | None = None
) -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack_trace or [],
    }


def exception_payload(exc: BaseException, request_id: str, skip_frames: int = 0) -> dict[str, Any]:
    """The payload for an exception raised by the handler: type name, message and formatted frames.

    ``skip_frames`` drops the runtime's own frames so the trace starts in user code, as in AWS.
    """
    tb: TracebackType | None = exc.__traceback__
    for _ in range(skip_frames):
        if tb is None:
            break
        tb = tb.tb_next
    frames = traceback.format_list(traceback.extract_tb(tb)) if tb is not None else []
    return error_payload(type(exc).__name__, str(exc), request_id, frames)


def timeout_payload(request_id: str, timeout_s: float) -> dict[str, Any]:
    return error_payload(
        TIMEOUT_ERROR,
        f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
        request_id,
    )


def exit_payload(request_id: str, returncode: int | None) -> dict[str, Any]:
    if returncode is not None and returncode < 0:
        import signal

        try:
            how = f"signal: {signal.Signals(-returncode).name.removeprefix('SIG').lower()}"
        except ValueError:
            how = f"signal: {-returncode}"
    else:
        how = f"exit status {returncode if returncode is not None else 'unknown'}"
    return error_payload(EXIT_ERROR, f"RequestId: {request_id} Error: Runtime exited with error: {how}", request_id)


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))
