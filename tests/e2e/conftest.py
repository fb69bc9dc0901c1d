"""The local platform for end-to-end tests: started once per session, over real HTTP.

``driftline local up --detach`` runs in a subprocess on free ports with its own state directory,
so tests exercise the same moto server, executor and API gateway a user gets. The real handlers
are replaced by tiny fixture handlers (``tests/fixtures/lambda_handlers.py``) through
``--handler-override``; tests that need the real ones build on this fixture with no overrides.
Teardown runs ``driftline local down`` and kills anything of the run that is still alive.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = "tests.fixtures.lambda_handlers"
OVERRIDES = {
    "ingest": f"{FIXTURES}.record_or_fail",
    "serve": f"{FIXTURES}.api",
    "drift": f"{FIXTURES}.record",
    "retrain-trigger": f"{FIXTURES}.record",
    "train": f"{FIXTURES}.train_step",
    "workflow": f"{FIXTURES}.workflow_step",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, state_dir: Path, timeout: float = 180.0, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``driftline local <args> --state-dir <dir>`` the way a user would."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("AWS_ENDPOINT_URL", None)
    # Cache bytecode (outside the tree) so each CLI call does not recompile its imports.
    env.setdefault("PYTHONPYCACHEPREFIX", str(ROOT / ".driftline" / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return subprocess.run(
        [sys.executable, "-m", "driftline.cli.main", "local", *args, "--state-dir", str(state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **kwargs,
    )


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def group_processes(pgid: int) -> list[int]:
    from driftline.local.state import group_members

    return group_members(pgid)


@dataclass
class LocalPlatformHandle:
    state_dir: Path
    endpoint: str
    api_url: str
    pid: int
    pgid: int
    platform: Any
    account: str = "123456789012"
    region: str = "us-east-1"
    token: str | None = None
    """The platform's token (state file): tests create throw-away functions, which outsiders may not."""
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str, *, trusted: bool = True) -> Any:
        """A client of the emulator; ``trusted`` ones send the platform's token like its own calls."""
        key = f"{service}:{trusted}"
        if key not in self._clients:
            import boto3
            from botocore.config import Config

            c = boto3.session.Session().client(
                service,
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id="test",
                aws_secret_access_key="test",
                config=Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=120),
            )
            if trusted and self.token:
                from driftline.local.access import INTERNAL_HEADER

                token = self.token

                def mark(request: Any, **_: Any) -> None:
                    request.headers[INTERNAL_HEADER] = token

                c.meta.events.register("before-sign.*.*", mark)
            self._clients[key] = c
        return self._clients[key]

    def name(self, logical: str) -> str:
        return str(self.platform.name(logical))

    def bucket(self, logical: str) -> str:
        return str(self.platform.bucket_name(logical, self.account, self.region))

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, state_dir=self.state_dir, timeout=timeout)

    def log_lines(self, logical_or_physical: str) -> list[str]:
        """Every log line of a function in the emulator's CloudWatch Logs group."""
        logical = {f.logical for f in self.platform.functions}
        name = self.name(logical_or_physical) if logical_or_physical in logical else logical_or_physical
        logs = self.client("logs")
        try:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        except logs.exceptions.ResourceNotFoundException:
            return []
        return [str(e["message"]) for e in events]

    def records(self, logical_or_physical: str) -> list[dict[str, Any]]:
        """What the ``record`` fixture handler logged: one dict per invocation."""
        return [
            json.loads(line[len("RECORD ") :])
            for line in self.log_lines(logical_or_physical)
            if line.startswith("RECORD ")
        ]


def start_platform(state_dir: Path, overrides: dict[str, str] | None = None, *extra: str) -> LocalPlatformHandle:
    from driftline import config
    from driftline.local.state import read_state
    from driftline.platform import build_platform

    port, api_port = free_port(), free_port()
    args = [
        "up",
        "--detach",
        "--port",
        str(port),
        "--api-port",
        str(api_port),
        "--config",
        str(ROOT / "cdk.json"),
        *extra,
    ]
    for logical, handler in (overrides or {}).items():
        args += ["--handler-override", f"{logical}={handler}"]
    result = run_cli(*args, state_dir=state_dir)
    log = (state_dir / "local.log").read_text() if (state_dir / "local.log").exists() else ""
    assert result.returncode == 0, f"driftline local up failed:\n{result.stdout}\n{result.stderr}\n{log[-3000:]}"
    state = read_state(state_dir)
    assert state is not None and state.status == "ready"
    platform = build_platform(config.load(ROOT / "cdk.json"))
    return LocalPlatformHandle(
        state_dir,
        state.endpoint,
        state.api_url,
        state.pid,
        state.pgid,
        platform,
        state.account,
        state.region,
        state.token,
    )


def stop_platform(handle: LocalPlatformHandle) -> None:
    """``down``, then make sure nothing of the run survives even if ``down`` misbehaved."""
    run_cli("down", state_dir=handle.state_dir, timeout=60)
    left = group_processes(handle.pgid)
    if left:
        from driftline.local.state import end_processes

        end_processes(left)


@pytest.fixture(scope="session")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatformHandle]:
    handle = start_platform(tmp_path_factory.mktemp("driftline-local"), OVERRIDES)
    try:
        yield handle
    finally:
        stop_platform(handle)
