"""The local emulator's access rules: no Lambda code changes without the platform's token, no web
pages, --host beyond loopback only on request, and `down` never signals a process that reused the pid."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from driftline.local import access
from driftline.local import state as st
from driftline.local.runtime import _Gate

TOKEN = "s3cr3t"
LAMBDA_AUTH = "AWS4-HMAC-SHA256 Credential=test/20261203/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=x"
S3_AUTH = LAMBDA_AUTH.replace("/lambda/", "/s3/")


@pytest.mark.parametrize(
    ("method", "path", "auth", "change"),
    [
        ("POST", "/2015-03-31/functions", LAMBDA_AUTH, True),  # CreateFunction
        ("POST", "/2015-03-31/functions", None, True),  # unsigned, as a web page would send it
        ("PUT", "/2015-03-31/functions/dev-driftline-serve/code", LAMBDA_AUTH, True),
        ("PUT", "/2015-03-31/functions/dev-driftline-serve/configuration", LAMBDA_AUTH, True),
        ("POST", "/2018-10-31/layers/x/versions", LAMBDA_AUTH, True),
        ("DELETE", "/2015-03-31/functions/dev-driftline-serve", LAMBDA_AUTH, True),
        ("POST", "/2015-03-31/functions/dev-driftline-serve/invocations", LAMBDA_AUTH, False),
        ("POST", "/2014-11-13/functions/f/invoke-async/", LAMBDA_AUTH, False),
        ("GET", "/2015-03-31/functions/", LAMBDA_AUTH, False),
        ("PUT", "/2015-03-31/functions", S3_AUTH, False),  # an object of a bucket named like a date
        ("PUT", "/my-bucket/functions/x", None, False),
    ],
)
def test_which_requests_change_lambda(method: str, path: str, auth: str | None, change: bool) -> None:
    assert access.is_lambda_change(method, path, auth) is change


class _App:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.calls.append((environ["PATH_INFO"], body))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]


def _call(gate: _Gate, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_AUTHORIZATION": LAMBDA_AUTH,
        **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }
    seen: list[str] = []
    out = b"".join(gate(environ, lambda status, _headers: seen.append(status)))
    return seen[0], out


def test_gate_refuses_lambda_changes_without_the_token_and_trusts_them_with_it() -> None:
    app, trusted = _App(), list[Any]()
    gate = _Gate(app, TOKEN, lambda m, p, b: (404, {}))
    gate.ready.set()
    gate.on_trusted_change = trusted.append
    create = json.dumps({"FunctionName": "evil", "Handler": "x.handler"}).encode()
    status, out = _call(gate, "POST", "/2015-03-31/functions", create)
    assert status.startswith("403") and json.loads(out)["__type"] == "AccessDeniedException"
    assert "refuses to create or change Lambda functions" in json.loads(out)["message"]
    status, _ = _call(gate, "POST", "/2015-03-31/functions", create, X_DRIFTLINE_INTERNAL="wrong")
    assert status.startswith("403") and app.calls == [] and trusted == []
    status, _ = _call(gate, "POST", "/2015-03-31/functions", create, X_DRIFTLINE_INTERNAL=TOKEN)
    assert status == "200 OK" and app.calls == [("/2015-03-31/functions", create)] and trusted == ["evil"]
    _call(
        gate,
        "PUT",
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/code",
        b"{}",
        X_DRIFTLINE_INTERNAL=TOKEN,
    )
    assert trusted[-1] == "arn:aws:lambda:us-east-1:1:function:f"
    status, _ = _call(gate, "POST", "/2015-03-31/functions/serve/invocations", b"{}")  # invoking stays open
    assert status == "200 OK"


def test_gate_refuses_web_pages() -> None:
    app = _App()
    gate = _Gate(app, TOKEN, lambda m, p, b: (200, {"ok": True}))
    gate.ready.set()
    for path in ("/2015-03-31/functions/serve/invocations", "/my-bucket/key", "/_driftline/fire"):
        status, out = _call(gate, "POST", path, b"{}", ORIGIN="https://evil.example")
        assert status.startswith("403") and "web pages" in json.loads(out)["message"]
    assert app.calls == []


def test_a_reused_pid_is_not_the_platform_and_down_leaves_it_alone(tmp_path: Path) -> None:
    # a process whose command line names driftline (the old check) but that is not the recorded one
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "driftline"])
    try:
        time.sleep(0.2)
        real = st.process_start_time(other.pid)
        assert real and st.is_platform_process(other.pid, real)
        assert st.is_platform_process(other.pid)  # without a recorded start time: taken for ours
        recorded = "ticks:1" if real.startswith("ticks:") else "lstart:Thu Jan  1 00:00:00 1970"
        assert not st.is_platform_process(other.pid, recorded)
        state = st.PlatformState(
            pid=other.pid,
            pgid=other.pid,
            host="127.0.0.1",
            port=1,
            api_port=2,
            started_at=0.0,
            status="ready",
            env="dev",
            config="cdk.json",
            region="us-east-1",
            account="123456789012",
            prefix="dev-driftline",
            start_time=recorded,
            token="t",
        )
        st.write_state(tmp_path, state)
        assert (tmp_path / st.STATE_FILE).stat().st_mode & 0o777 == 0o600
        from driftline.cli.local import app

        result = CliRunner().invoke(app, ["down", "--state-dir", str(tmp_path)])
        assert result.exit_code == 0 and "stale state" in result.output
        assert other.poll() is None  # never signalled
        assert st.read_state(tmp_path) is None
    finally:
        other.kill()
        other.wait()


def test_host_beyond_loopback_needs_allow_remote(tmp_path: Path) -> None:
    from driftline.cli.local import app

    result = CliRunner().invoke(app, ["up", "--host", "0.0.0.0", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no authentication" in result.output and "--allow-remote" in result.output
    from driftline.local.ports import is_loopback

    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert is_loopback(host)
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
