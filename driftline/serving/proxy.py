"""API Gateway REST (v1) proxy events in and proxy responses out, and the route table between them.

Why not Powertools' ``APIGatewayRestResolver``: on this endpoint its per-request work (event data
classes, middleware stack, response building) and its cold-start imports
(``aws_lambda_powertools.event_handler`` imports every resolver, AppSync and Bedrock included) each
exceeded the whole 1-row prediction's budget (figures in docs/performance.md). What the endpoint
used from it is small: match five
routes (with path parameters and an optional trailing slash), read a few case-insensitive headers,
build a JSON response. That is this module, which needs only the standard library and orjson.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import orjson

from driftline.serving.labels import caller_of

JSON = "application/json"
H = TypeVar("H")


class ProxyRequest:
    """The parts of a proxy event the routes read (headers keyed in lower case, like HTTP)."""

    __slots__ = ("body", "caller", "gateway_request_id", "headers", "is_base64", "method", "path", "query", "stage")

    def __init__(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        body: str | None,
        is_base64: bool,
        gateway_request_id: str | None,
        stage: str | None,
        caller: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.query = query
        self.body = body
        self.is_base64 = is_base64
        self.gateway_request_id = gateway_request_id
        self.stage = stage
        self.caller = caller
        """Who API Gateway authenticated (:func:`driftline.serving.labels.caller_of`); None if unauthenticated."""

    @classmethod
    def from_event(cls, event: Any) -> ProxyRequest | None:
        """``None`` when ``event`` is not a REST proxy event (no string ``httpMethod`` and ``path``)."""
        if type(event) is not dict:
            return None
        method, path = event.get("httpMethod"), event.get("path")
        if type(method) is not str or type(path) is not str:
            return None
        headers = _headers(event)
        query = event.get("queryStringParameters")
        ctx = event.get("requestContext")
        rid = stage = None
        if type(ctx) is dict:
            rid, stage = ctx.get("requestId"), ctx.get("stage")
        body = event.get("body")
        return cls(
            method.upper(),
            path,
            headers,
            query if type(query) is dict else {},
            body if type(body) is str else None,
            event.get("isBase64Encoded") is True,
            rid if type(rid) is str else None,
            stage if type(stage) is str else None,
            caller_of(ctx),
        )


def _headers(event: dict[str, Any]) -> dict[str, str]:
    """Headers keyed in lower case. A header sent more than once with different values (API Gateway puts
    only the last in ``headers``, all in ``multiValueHeaders``; or under two letter cases) reads as their
    comma-joined list, as HTTP defines it: a route then refuses the list precisely instead of acting on
    whichever came last."""
    seen: dict[str, dict[str, None]] = {}
    raw, multi = event.get("headers"), event.get("multiValueHeaders")
    # multiValueHeaders first: its values are in the order sent (headers holds only the last)
    for k, values in multi.items() if type(multi) is dict else ():
        for v in values if type(values) is list else ():
            if isinstance(v, str):
                seen.setdefault(str(k).lower(), {})[v] = None
    for k, v in raw.items() if type(raw) is dict else ():
        if isinstance(v, str):
            seen.setdefault(str(k).lower(), {})[v] = None
    return {k: ", ".join(vs) for k, vs in seen.items()}


def respond(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A proxy response with a JSON body (header values as lists, as API Gateway REST accepts them)."""
    multi = {"Content-Type": [JSON]}
    if headers:
        for k, v in headers.items():
            multi[k] = [v]
    try:
        body = orjson.dumps(payload).decode()
    except TypeError:  # e.g. a lone surrogate echoed from a request: escape it rather than fail the answer
        body = json.dumps(payload, default=str)
    return {"statusCode": status, "body": body, "isBase64Encoded": False, "multiValueHeaders": multi}


def template_pattern(template: str, *, trailing_slash: bool = True) -> re.Pattern[str]:
    """A path template (``{name}`` = one path segment) as a regex with one named group per parameter."""
    body = re.sub(r"\{([^/}]+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile("^" + body + ("/?$" if trailing_slash else "$"))


class Router(Generic[H]):
    """(method, path template) -> handler; templates use ``{name}`` for one path segment."""

    def __init__(self, routes: Sequence[tuple[str, str, H]]) -> None:
        self.routes = [(m.upper(), tpl, template_pattern(tpl), h) for m, tpl, h in routes]

    def match(self, method: str, path: str) -> tuple[H, dict[str, str]] | list[str]:
        """The handler and path parameters, or (no route for this method) the methods the path allows
        (empty: no such path)."""
        allowed: list[str] = []
        for m, _, rx, h in self.routes:
            found = rx.match(path)
            if found is None:
                continue
            if m == method:
                return h, found.groupdict()
            allowed.append(m)
        return sorted(set(allowed))

    @property
    def templates(self) -> list[tuple[str, str]]:
        return [(m, tpl) for m, tpl, _, _ in self.routes]


RouteHandler = Callable[[ProxyRequest, dict[str, str]], dict[str, Any]]
