"""Start, use and stop the local platform for the demo, the way a user would: the same detached start
as ``driftline local up --detach`` (so ``--keep`` can leave it running for ``driftline local status|down``),
boto3 clients pointed at its emulator, and its control endpoints (status, fire a schedule).
Starting, finding and stopping are :mod:`driftline.local.launcher` and :mod:`driftline.local.supervisor`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.local import state as st
from driftline.local.control import control_request
from driftline.local.launcher import StartOptions, start_detached
from driftline.local.ports import pick_port
from driftline.local.supervisor import SupervisorError, current_state, live_state, state_dir_flag, stop_platform
from driftline.platform import Platform

__all__ = ["ENDPOINT_ENV", "DemoError", "LocalRun"]

ENDPOINT_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


class DemoError(RuntimeError):
    """A demo step that did not happen; the message says what was expected and what was seen."""


def _quiet(_message: str) -> None:
    """The demo shows its own steps; the supervisor's notices are not part of them."""


@dataclass
class LocalRun:
    """A running local platform started by (or found by) the demo."""

    state_dir: Path
    state: st.PlatformState
    platform: Platform
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        platform: Platform,
        *,
        config: Path,
        env: str,
        state_dir: Path,
        port: int,
        api_port: int,
        timeout_s: float = 120.0,
        host: str = "127.0.0.1",
    ) -> LocalRun:
        directory = state_dir.resolve()
        existing = live_state(directory)
        if existing is not None:
            raise DemoError(
                f"a local platform is already running from {state_dir} (pid {existing.pid}, "
                f"{existing.endpoint}); stop it with `driftline local down{state_dir_flag(directory)}` or pass "
                "another --state-dir"
            )
        opts = StartOptions(
            state_dir=directory,
            config=config,
            env=env,
            host=host,
            port=pick_port(host, port),
            api_port=pick_port(host, api_port),
            ready_timeout_s=timeout_s,
        )
        environ = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
        try:
            state, _ = start_detached(opts, progress=_quiet, while_starting=lambda: None, environ=environ)
        except SupervisorError as e:
            raise DemoError(f"the local platform did not start: {e}") from None
        return cls(state_dir=directory, state=state, platform=platform)

    # ---- AWS access ----
    def activate(self) -> None:
        """Point this process's AWS clients (``driftline.aws``) at the emulator."""
        from driftline import aws

        values = {
            "AWS_ENDPOINT_URL": self.state.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": self.state.region,
            "AWS_DEFAULT_REGION": self.state.region,
        }
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
    def _control(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        code, doc = control_request(self.state.endpoint, method, path, body, timeout=timeout)
        if code >= 400:
            raise DemoError(f"the local platform refused {method} /_driftline/{path}: {str(doc)[:300]}")
        return doc

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
        """What ``driftline local down`` does (the same supervisor), then end anything of the run that
        survived."""
        current = current_state(self.state_dir, _quiet)  # a run that died is cleaned up as stale
        message = f"Nothing to stop: no local platform is running (no live state in {self.state_dir})."
        if current is not None and current.pid == self.state.pid:
            try:
                message = stop_platform(self.state_dir, current).describe(15.0)
            except SupervisorError as e:
                message = str(e)
        left = [p for p in st.group_members(self.state.pgid) if p != os.getpid()] if self.state.pgid > 1 else []
        if left:
            st.end_processes(left)
        return message
