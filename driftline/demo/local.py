"""Start, use and stop the local platform for the demo, the way a user would: ``driftline local up
--detach`` in a subprocess (so ``--keep`` can leave it running for ``driftline local status|down``),
boto3 clients pointed at its emulator, and its control endpoints (status, fire a schedule).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.local import state as st
from driftline.platform import Platform

ENDPOINT_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION")


class DemoError(RuntimeError):
    """A demo step that did not happen; the message says what was expected and what was seen."""


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str, preferred: int) -> int:
    """``preferred`` when it is free (so the usual AWS_ENDPOINT_URL works), else any free port."""
    if preferred and port_free(host, preferred):
        return preferred
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalRun:
    """A running local platform started by (or found by) the demo."""

    state_dir: Path
    state: st.PlatformState
    platform: Platform
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, platform: Platform, *, config: Path, env: str, state_dir: Path, port: int, api_port: int,
              timeout_s: float = 120.0, host: str = "127.0.0.1") -> LocalRun:
        existing = _live_state(state_dir)
        if existing is not None:
            raise DemoError(f"a local platform is already running from {state_dir} (pid {existing.pid}, "
                            f"{existing.endpoint}); stop it with `driftline local down` or pass another "
                            f"--state-dir")
        cmd = [sys.executable, "-m", "driftline.cli.main", "local", "up", "--detach", "--env", env,
               "--config", str(config.resolve()), "--state-dir", str(state_dir), "--host", host,
               "--port", str(pick_port(host, port)), "--api-port", str(pick_port(host, api_port)),
               "--ready-timeout", str(timeout_s)]
        env_vars = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 30, env=env_vars,
                              check=False)
        state = _live_state(state_dir)
        if proc.returncode != 0 or state is None:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
            raise DemoError(f"`driftline local up` failed (exit {proc.returncode}): {tail}")
        return cls(state_dir=state_dir, state=state, platform=platform)

    # ---- AWS access ----
    def activate(self) -> None:
        """Point this process's AWS clients (``driftline.aws``) at the emulator."""
        from driftline import aws

        values = {"AWS_ENDPOINT_URL": self.state.endpoint, "AWS_ACCESS_KEY_ID": "test",
                  "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": self.state.region,
                  "AWS_DEFAULT_REGION": self.state.region}
        for k in ENDPOINT_ENV:
            self._saved_env.setdefault(k, os.environ.get(k))
            os.environ.pop(k, None)
        os.environ.update(values)
        aws.reset_clients()

    def deactivate(self) -> None:
        from driftline import aws

        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env.clear()
        aws.reset_clients()

    def client(self, service: str) -> Any:
        from driftline import aws

        return aws.client(service)

    def bucket(self, logical: str) -> str:
        return self.platform.bucket_name(logical, self.state.account, self.state.region)

    # ---- control endpoints ----
    def _control(self, method: str, path: str, body: dict[str, Any] | None = None,
                 timeout: float = 10.0) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.state.endpoint}/_driftline/{path}", data=data, method=method,  # noqa: S310
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our own local endpoint
                doc: dict[str, Any] = json.loads(resp.read() or b"{}")
                return doc
        except urllib.error.HTTPError as e:
            raise DemoError(f"the local platform refused {method} /_driftline/{path}: "
                            f"{e.read().decode(errors='replace')[:300]}") from None

    def status(self) -> dict[str, Any]:
        return self._control("GET", "status")

    def fire(self, rule: str, wait_s: float) -> dict[str, Any]:
        """Fire a schedule rule now (as the scheduler would) and wait for its targets."""
        return self._control("POST", "fire", {"rule": rule, "wait_s": wait_s}, timeout=wait_s + 15)

    def worker_pids(self, logical: str) -> list[int]:
        stats = self.status().get("functions", {})
        entry = stats.get(self.platform.name(logical)) or stats.get(logical) or {}
        return sorted(int(p) for p in entry.get("pids", []))

    def stop(self) -> str:
        """``driftline local down``, then end anything of the run that survived."""
        proc = subprocess.run([sys.executable, "-m", "driftline.cli.main", "local", "down", "--state-dir",
                               str(self.state_dir)], capture_output=True, text=True, timeout=60, check=False)
        left = [p for p in st.group_members(self.state.pgid) if p != os.getpid()] if self.state.pgid > 1 else []
        if left:
            st.end_processes(left)
        return (proc.stdout + proc.stderr).strip()


def _live_state(directory: Path) -> st.PlatformState | None:
    try:
        state = st.read_state(directory)
    except ValueError:
        return None
    if state is None or not st.is_platform_process(state.pid):
        return None
    return state
