"""The local API gateway's HTTP server with a stand-in for the executor (no emulator needed)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from driftline.local import apigw
from driftline.local.executor import InvocationResult


def answer(payload: Any, error: bool = False) -> InvocationResult:
    return InvocationResult("req", json.dumps(payload), error, 1.0, False)


class FakeFunctions:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.delay = 0.0

    def __call__(self, function: str, event_json: str) -> InvocationResult | None:
        event = json.loads(event_json)
        self.events.append(event)
        time.sleep(self.delay)
        if function == "missing":
            return None
        return answer({"statusCode": 200, "body": json.dumps({"fn": function, "body": event["body"]})})


@pytest.fixture
def gateway() -> Iterator[tuple[apigw.ApiGateway, FakeFunctions]]:
    fns = FakeFunctions()
    routes = apigw.RouteTable([("POST", "/echo", "serve"), ("GET", "/gone", "missing")])
    gw = apigw.ApiGateway(routes, fns, port=0, stage="v1", cors_origins=("https://app.example",), log=lambda _: None)
    gw.start()
    yield gw, fns
    gw.stop()


def raw_request(port: int, data: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := s.recv(65536)):
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        length = int(re.search(r"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(data) - len(head) - 4 < length and (chunk := s.recv(65536)):  # body may come separately
            data += chunk
        return data.decode()


def test_answers_503_until_opened(gateway: Any) -> None:
    gw, fns = gateway
    url = f"http://127.0.0.1:{gw.port}/echo"
    r = requests.post(url, data=b"x", timeout=10)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1" and fns.events == []
    gw.open()
    assert requests.post(url, data=b"x", timeout=10).json() == {"fn": "serve", "body": "x"}


def test_chunked_body_and_malformed_length(gateway: Any) -> None:
    gw, fns = gateway
    gw.open()
    reply = raw_request(
        gw.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert reply.startswith("HTTP/1.1 200") and fns.events[-1]["body"] == "abcde"
    reply = raw_request(gw.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n")
    assert reply.startswith("HTTP/1.1 400") and "malformed Content-Length" in reply


def test_missing_function_is_502_and_slow_one_is_504(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    gw, fns = gateway
    gw.open()
    r = requests.get(f"http://127.0.0.1:{gw.port}/gone", timeout=10)
    assert r.status_code == 502 and r.json() == {"message": "Internal server error"}
    monkeypatch.setattr(apigw, "INTEGRATION_TIMEOUT_S", 0.2)
    fns.delay = 1.0
    r = requests.post(f"http://127.0.0.1:{gw.port}/echo", data=b"x", timeout=10)
    assert r.status_code == 504 and r.json() == {"message": "Endpoint request timed out"}


def test_cors_preflight_and_origin(gateway: Any) -> None:
    gw, _ = gateway
    gw.open()
    url = f"http://127.0.0.1:{gw.port}/echo"
    r = requests.options(url, headers={"Origin": "https://app.example"}, timeout=10)
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert r.headers["Access-Control-Allow-Methods"] == "POST"
    assert requests.options(url, headers={"Origin": "https://evil.example"}, timeout=10).status_code == 403
    r = requests.post(url, data=b"x", headers={"Origin": "https://app.example"}, timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_busy_port_fails_in_the_constructor() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            apigw.ApiGateway(apigw.RouteTable([]), lambda f, e: None, port=busy.getsockname()[1])


def test_hostile_chunking_and_methods(gateway: Any) -> None:
    """Chunk size -1 once read a 60 MB body past the 10 MB limit; unknown methods got the stdlib's 501."""
    gw, fns = gateway
    gw.open()
    for size in (b"-1", b"0x10", b"+5", b"zz", b"1" * 20):
        reply = raw_request(
            gw.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + size
            + b"\r\n"
            + b"a" * 64
            + b"\r\n0\r\n\r\n",
        )
        assert reply.startswith("HTTP/1.1 400"), (size, reply)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:  # announced, then half-closed
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(65536).startswith(b"HTTP/1.1 400")
    for method in (b"FOO", b"TRACE", b"CONNECT"):
        reply = raw_request(gw.port, method + b" /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert reply.startswith("HTTP/1.1 405") and "Allow: POST" in reply, reply
    assert gw._server.request_queue_size == apigw.LISTEN_BACKLOG >= 128
    assert fns.events == []


def test_a_burst_of_simultaneous_connections_is_queued_not_refused(gateway: Any) -> None:
    gw, _ = gateway
    gw.open()
    socks = [socket.create_connection(("127.0.0.1", gw.port), timeout=10) for _ in range(200)]
    try:
        for s in socks:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
        answered = sum(s.recv(12).startswith(b"HTTP/1.1 200") for s in socks)
    finally:
        for s in socks:
            s.close()
    assert answered == 200


def test_static_route_is_answered_by_the_gateway_and_throttled_on_its_own() -> None:
    """GET /health as API Gateway's MOCK integration: no invocation; its own rate/burst, 429 beyond."""
    from driftline.platform import HEALTH_RESPONSE

    fns = FakeFunctions()
    routes = apigw.RouteTable(
        [
            ("GET", "/health", "", HEALTH_RESPONSE, (2.0, 3)),
            ("POST", "/echo", "serve"),
        ]
    )
    gw = apigw.ApiGateway(routes, fns, port=0, stage="v1", cors_origins=("https://app.example",), log=lambda _: None)
    gw.start()
    gw.open()
    try:
        url = f"http://127.0.0.1:{gw.port}"
        first = requests.get(f"{url}/health", headers={"Origin": "https://app.example"}, timeout=10)
        assert first.status_code == 200 and first.json() == json.loads(HEALTH_RESPONSE)
        assert first.headers["Access-Control-Allow-Origin"] == "https://app.example"
        statuses = [requests.get(f"{url}/health", timeout=10).status_code for _ in range(6)]
        assert statuses[:2] == [200, 200] and statuses.count(429) >= 3  # burst 3, 2/s refill
        r = requests.get(f"{url}/health", timeout=10)
        assert r.status_code == 429 and r.json() == {"message": "Too Many Requests"}
        assert all(requests.post(f"{url}/echo", data=b"x", timeout=10).status_code == 200 for _ in range(8))
        time.sleep(0.6)  # one token back
        assert requests.get(f"{url}/health", timeout=10).status_code == 200
        assert fns.events and all(e["resource"] == "/echo" for e in fns.events)  # /health invoked nothing
    finally:
        gw.stop()
