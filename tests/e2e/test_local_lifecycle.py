"""Starting and stopping the local platform: no orphans after `down` or Ctrl-C, stale state,
busy ports, an upload made while the platform is still starting, and `down`/`status` without
--state-dir finding a platform started with one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from driftline.local import instances
from driftline.local import state as st
from tests.e2e.conftest import (
    FIXTURES,
    ROOT,
    LocalPlatformHandle,
    free_port,
    group_processes,
    run_cli,
    start_platform,
    stop_platform,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def own_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's platforms register in a registry of their own, so platforms that other test runs
    start from this checkout at the same time are neither found nor listed."""
    registry = tmp_path_factory.mktemp("instances")
    monkeypatch.setenv(instances.INSTANCES_ENV, str(registry))
    return registry


def _plain(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``driftline local <args>`` without --state-dir, run from ``cwd`` (a directory with no platform)."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("DRIFTLINE_STATE_DIR", None)
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "driftline.cli.main", "local", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _worker_pids(lp: LocalPlatformHandle) -> list[int]:
    status = lp.cli("status", "--json")
    assert status.returncode == 0, status.stderr
    return list(json.loads(status.stdout)["live"]["worker_pids"])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_down_and_status_when_nothing_runs(tmp_path: Path) -> None:
    down = run_cli("down", state_dir=tmp_path)
    assert down.returncode == 0 and "Nothing to stop" in down.stderr
    status = run_cli("status", state_dir=tmp_path)
    assert status.returncode == 1 and "Not running" in status.stderr


def test_stale_state_from_a_killed_run_is_reported_and_removed(tmp_path: Path) -> None:
    st.write_state(
        tmp_path,
        st.PlatformState(
            pid=_dead_pid(),
            pgid=_dead_pid(),
            host="127.0.0.1",
            port=1,
            api_port=2,
            started_at=time.time(),
            status="ready",
            env="dev",
            config="cdk.json",
            region="us-east-1",
            account="123456789012",
            prefix="dev-driftline",
        ),
    )
    result = run_cli("down", state_dir=tmp_path)
    assert result.returncode == 0 and "stale state" in result.stderr and "did not stop cleanly" in result.stderr
    assert st.read_state(tmp_path) is None
    (tmp_path / st.STATE_FILE).write_text("{not json")
    result = run_cli("status", state_dir=tmp_path)
    assert result.returncode == 1 and "unreadable state" in result.stderr
    assert not (tmp_path / st.STATE_FILE).exists()


def test_busy_port_gives_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("up", "--detach", "--port", str(port), "--api-port", str(free_port()), state_dir=tmp_path)
        assert result.returncode == 1
        assert f"emulator port {port} on 127.0.0.1 is not available" in result.stderr and "--port" in result.stderr
        result = run_cli("up", "--detach", "--port", str(free_port()), "--api-port", str(port), state_dir=tmp_path)
        assert result.returncode == 1 and f"API port {port}" in result.stderr and "--api-port" in result.stderr
    assert st.read_state(tmp_path) is None


def test_detached_platform_stops_with_down_leaving_no_process(tmp_path: Path) -> None:
    lp = start_platform(tmp_path, {"serve": f"{FIXTURES}.api"})
    try:
        assert requests.get(f"{lp.api_url}/openapi.json", timeout=60).status_code == 200
        workers = _worker_pids(lp)
        assert workers and set(workers) <= set(group_processes(lp.pgid))
        down = lp.cli("down")
        assert down.returncode == 0 and "stopped cleanly" in down.stderr
        assert group_processes(lp.pgid) == []
        assert not any(st.pid_alive(p) for p in [lp.pid, *workers])
        assert st.read_state(tmp_path) is None
    finally:
        stop_platform(lp)


def test_ctrl_c_stops_the_foreground_platform_and_an_early_upload_is_not_lost(tmp_path: Path) -> None:
    port, api_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "driftline.cli.main",
            "local",
            "up",
            "--port",
            str(port),
            "--api-port",
            str(api_port),
            "--state-dir",
            str(tmp_path),
            "--handler-override",
            f"ingest={FIXTURES}.record",
            "--handler-override",
            f"serve={FIXTURES}.api",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        import boto3
        from botocore.config import Config

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=120, what="the emulator port")
        state = st.read_state(tmp_path)
        early = state is not None and state.status == "starting"
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 20, "mode": "standard"}),
        )
        bucket = "dev-driftline-features-123456789012-us-east-1"
        s3.put_object(Bucket=bucket, Key="incoming/credit_default/early.csv", Body=b"a\n1\n")
        state = wait_for(
            lambda: (s := st.read_state(tmp_path)) is not None and s.status == "ready" and s, timeout=120, what="ready"
        )
        lp = LocalPlatformHandle(tmp_path, state.endpoint, state.api_url, state.pid, state.pgid, None)
        logs = lp.client("logs")

        def recorded() -> bool:
            try:
                events = logs.filter_log_events(logGroupName="/aws/lambda/dev-driftline-ingest")["events"]
            except logs.exceptions.ResourceNotFoundException:
                return False
            return any("early.csv" in e["message"] for e in events)

        wait_for(recorded, timeout=60, what="the upload made during start-up to reach ingest")
        assert requests.get(f"{state.api_url}/openapi.json", timeout=60).status_code == 200
        workers = _worker_pids(lp)
        assert workers
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "Stopped" in out
        assert group_processes(proc.pid) == [] and not any(st.pid_alive(p) for p in workers)
        assert st.read_state(tmp_path) is None
        if not early:
            pytest.skip("the platform was ready before the upload; the start-up gate was not exercised")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_killed_platform_leaves_stale_state_that_is_cleaned(tmp_path: Path) -> None:
    lp = start_platform(tmp_path, {"serve": f"{FIXTURES}.api"})
    try:
        assert requests.get(f"{lp.api_url}/openapi.json", timeout=60).status_code == 200
        workers = _worker_pids(lp)
        os.kill(lp.pid, signal.SIGKILL)
        wait_for(lambda: not st.pid_alive(lp.pid), timeout=10, what="the kill")
        result = lp.cli("status")
        assert result.returncode == 1 and "stale state" in result.stderr
        wait_for(lambda: not any(st.pid_alive(p) for p in workers), timeout=10, what="orphaned workers to end")
        assert group_processes(lp.pgid) == []
        assert st.read_state(tmp_path) is None
    finally:
        stop_platform(lp)


def test_plain_down_stops_a_platform_started_with_another_state_dir(tmp_path: Path) -> None:
    elsewhere, shell = tmp_path / "x", tmp_path / "shell"
    shell.mkdir()
    lp = start_platform(elsewhere, {"serve": f"{FIXTURES}.api"})
    try:
        workers = _worker_pids(lp)
        status = _plain("status", "--json", cwd=shell)
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["running"] and doc["state_dir"] == str(elsewhere) and doc["state"]["pid"] == lp.pid
        down = _plain("down", cwd=shell)
        assert down.returncode == 0, down.stderr
        assert "Nothing to stop" not in down.stderr and "stopped cleanly" in down.stderr
        assert f"--state-dir {elsewhere}" in down.stderr
        assert group_processes(lp.pgid) == [] and not any(st.pid_alive(p) for p in [lp.pid, *workers])
        assert st.read_state(elsewhere) is None
        after = _plain("status", "--json", cwd=shell)
        assert after.returncode == 1 and json.loads(after.stdout)["running"] is False
    finally:
        stop_platform(lp)


def test_two_running_platforms_are_listed_with_the_flag_for_each(tmp_path: Path) -> None:
    shell = tmp_path / "shell"
    shell.mkdir()
    first = start_platform(tmp_path / "one")
    try:
        second = start_platform(tmp_path / "two")
        try:
            down = _plain("down", cwd=shell)
            assert down.returncode == 2, down.stderr
            assert "2 local platforms are running" in down.stderr
            for lp in (first, second):
                assert f"driftline local down --state-dir {lp.state_dir}" in down.stderr
                assert st.is_platform_process(lp.pid)
            status = _plain("status", cwd=shell)
            assert status.returncode == 2 and f"driftline local status --state-dir {second.state_dir}" in status.stderr
            stopped = run_cli("down", state_dir=second.state_dir)
            assert stopped.returncode == 0 and "stopped cleanly" in stopped.stderr
            assert st.is_platform_process(first.pid)
        finally:
            stop_platform(second)
    finally:
        stop_platform(first)
