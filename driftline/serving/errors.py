"""Errors the endpoint answers with: an HTTP status, a stable code and a message for a person.

Every client mistake is a :class:`ServingError` with a 4xx status; the handler turns it into a JSON
error body. Anything else that escapes is a bug and becomes a 500 without internals in the body.
"""

from __future__ import annotations

from typing import Any

MAX_DETAILS = 100
"""At most this many per-field problems are returned (the rest are counted, not listed)."""


class ServingError(Exception):
    """A request that cannot be answered as asked; ``status`` is the HTTP status to return."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details[:MAX_DETAILS]
            if len(self.details) > MAX_DETAILS:
                err["details_truncated"] = len(self.details) - MAX_DETAILS
        out: dict[str, Any] = {"error": err}
        if request_id:
            out["request_id"] = request_id
        return out


def bad_request(message: str, code: str = "bad_request") -> ServingError:
    return ServingError(400, code, message)


def not_found(message: str, code: str = "not_found") -> ServingError:
    return ServingError(404, code, message)


def unprocessable(
    message: str, details: list[dict[str, Any]] | None = None, code: str = "invalid_request"
) -> ServingError:
    return ServingError(422, code, message, details=details)


def unavailable(message: str, code: str = "unavailable", retry_after_s: int | None = None) -> ServingError:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s else None
    return ServingError(503, code, message, headers=headers)
