"""Finding and stopping the local platform without moto: the checkout's registry of running instances,
`down`/`status` without --state-dir, `status --json` when nothing runs, start-up progress, the ready
message's commands. A sleeping child process stands in for the platform process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.local import instances, supervisor
from driftline.local import state as st
from driftline.local.launcher import StartupProgress

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout as the working directory, with its own registry and no state dir from the shell."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "cdk.json").write_text("{}")
    monkeypatch.chdir(root)
    monkeypatch.delenv("DRIFTLINE_STATE_DIR", raising=False)
    monkeypatch.delenv(instances.INSTANCES_ENV, raising=False)
    return root


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _fake_platform(
    procs: list[subprocess.Popen[bytes]], checkout: Path, directory: Path, *, register: bool = True
) -> st.PlatformState:
    """A process recorded in ``directory`` (and registered) as a running platform."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    procs.append(proc)
    deadline = time.monotonic() + 5
    while st.process_start_time(proc.pid) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    state = st.PlatformState(
        pid=proc.pid,
        pgid=proc.pid,
        host="127.0.0.1",
        port=9,
        api_port=10,
        started_at=time.time(),
        status="ready",
        env="dev",
        config=str(checkout / "cdk.json"),
        region="us-east-1",
        account="123456789012",
        prefix="dev-driftline",
        start_time=st.process_start_time(proc.pid),
        token="t",
    )
    st.write_state(directory, state)
    if register:
        instances.register(checkout, state, directory)
    return state


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _quiet(_message: str) -> None:
    pass


def test_the_registry_lives_in_the_checkout_found_from_any_subdirectory(checkout: Path) -> None:
    sub = checkout / "notebooks" / "deep"
    sub.mkdir(parents=True)
    assert instances.checkout_root(sub) == checkout
    assert instances.registry_dir(checkout) == checkout / ".driftline" / "instances"


def test_a_platform_started_with_another_state_dir_is_found_and_stopped_by_plain_down(
    checkout: Path, spawn: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    from driftline.cli.local import app

    elsewhere = tmp_path / "elsewhere"
    state = _fake_platform(spawn, checkout, elsewhere)
    assert (checkout / ".driftline" / "instances").is_dir()
    status = CliRunner().invoke(app, ["status", "--json"])
    assert status.exit_code == 0, status.output
    # the platform does not answer (a sleeping process): status still names it and where it is
    doc = json.loads(status.stdout)
    assert doc["running"] is True and doc["state_dir"] == str(elsewhere) and doc["state"]["pid"] == state.pid
    result = CliRunner().invoke(app, ["down", "--timeout", "5"])
    assert result.exit_code == 0, result.output
    assert "Nothing to stop" not in result.output and f"--state-dir {elsewhere}" in result.output
    assert "stopped cleanly" in result.output
    assert spawn[0].wait(timeout=5) is not None
    assert st.read_state(elsewhere) is None and instances.entries(checkout) == []


def test_two_running_platforms_are_listed_with_their_flags_and_neither_is_stopped(
    checkout: Path, spawn: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    from driftline.cli.local import app

    first, second = tmp_path / "one", tmp_path / "two"
    _fake_platform(spawn, checkout, first)
    _fake_platform(spawn, checkout, second)
    result = CliRunner().invoke(app, ["down"])
    assert result.exit_code == 2
    assert f"driftline local down --state-dir {first}" in result.output
    assert f"driftline local down --state-dir {second}" in result.output
    assert all(p.poll() is None for p in spawn)
    status = CliRunner().invoke(app, ["status", "--json"])
    assert status.exit_code == 2
    doc = json.loads(status.stdout)
    assert {o["state_dir"] for o in doc["others"]} == {str(first), str(second)}
    with pytest.raises(supervisor.AmbiguousPlatformError):
        supervisor.find_platform(None, _quiet, command="status")
    # naming one reaches exactly that one
    found = supervisor.find_platform(second, _quiet, command="down")
    assert found.directory == second and found.state is not None and found.state.pid == spawn[1].pid


def test_the_default_state_dir_wins_over_the_registry(
    checkout: Path, spawn: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    default = _fake_platform(spawn, checkout, checkout / ".driftline")
    _fake_platform(spawn, checkout, tmp_path / "other")
    found = supervisor.find_platform(None, _quiet, command="status")
    assert found.state is not None and found.state.pid == default.pid and not found.via_registry


def test_a_named_state_dir_with_nothing_running_lists_the_running_ones(
    checkout: Path, spawn: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    from driftline.cli.local import app

    running = tmp_path / "running"
    _fake_platform(spawn, checkout, running)
    result = CliRunner().invoke(app, ["down", "--state-dir", str(tmp_path / "empty")])
    assert result.exit_code == 0 and "Nothing to stop" not in result.output
    assert f"--state-dir {running}" in result.output and spawn[0].poll() is None


def test_dead_and_reused_entries_are_not_running_and_stale_ones_are_cleaned(
    checkout: Path, spawn: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    killed = tmp_path / "killed"
    state = _fake_platform(spawn, checkout, killed)
    spawn[0].kill()
    spawn[0].wait()
    # a live process whose start time differs from the recorded one (the pid was reused): not ours
    reused = tmp_path / "reused"
    other = _fake_platform(spawn, checkout, reused, register=False)
    forged = st.PlatformState(**{**other.__dict__, "start_time": "ticks:1"})
    instances.register(checkout, forged, reused)
    notices: list[str] = []
    assert supervisor.running_instances(notices.append, checkout) == []
    assert any("stale state" in n and str(state.pid) in n for n in notices)
    assert st.read_state(killed) is None
    assert [e.directory for e in instances.entries(checkout)] == []
    assert spawn[1].poll() is None  # never signalled
    (instances.registry_dir(checkout) / "junk.json").write_text("{not json")
    assert instances.entries(checkout) == [] and not (instances.registry_dir(checkout) / "junk.json").exists()


def test_an_entry_is_forgotten_only_by_its_own_run(checkout: Path, tmp_path: Path) -> None:
    directory = tmp_path / "d"
    state = st.PlatformState(
        pid=_dead_pid(), pgid=1, host="127.0.0.1", port=1, api_port=2, started_at=0.0, status="ready",
        env="dev", config=str(checkout / "cdk.json"), region="us-east-1", account="1", prefix="p",
    )  # fmt: skip
    instances.register(checkout, state, directory)
    instances.forget(checkout, directory, pid=state.pid + 1)
    assert len(instances.entries(checkout)) == 1
    instances.forget(checkout, directory, pid=state.pid)
    assert instances.entries(checkout) == []


def test_status_json_when_nothing_runs_is_json(checkout: Path) -> None:
    from driftline.cli.local import app

    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc == {"running": False, "state_dir": str(checkout / ".driftline"), "others": []}


def test_progress_reports_each_phase_once_in_order() -> None:
    seen: list[str] = []
    progress = StartupProgress(seen.append)
    state = st.PlatformState(
        pid=42, pgid=42, host="127.0.0.1", port=1, api_port=2, started_at=0.0, status="starting", env="dev",
        config="cdk.json", region="us-east-1", account="1", prefix="p",
    )  # fmt: skip
    progress.observe(None, 42)
    progress.observe(state, 41)  # another run's state
    assert seen == []
    progress.observe(state, 42)
    progress.observe(state, 42)
    assert seen == ["starting the AWS emulator (moto) on http://127.0.0.1:1"]


def test_the_ready_message_names_the_state_dir_of_this_instance(checkout: Path, tmp_path: Path) -> None:
    from driftline import config
    from driftline.local.summary import ready_summary
    from driftline.platform import build_platform

    platform = build_platform(config.load(ROOT / "cdk.json"))
    state = st.PlatformState(
        pid=1, pgid=1, host="127.0.0.1", port=1, api_port=2, started_at=0.0, status="ready", env="dev",
        config="cdk.json", region="us-east-1", account="123456789012", prefix="dev-driftline", log_file="x.log",
    )  # fmt: skip
    other = tmp_path / "x y"
    text = ready_summary(platform, state, detached=True, flags=supervisor.state_dir_flag(other))
    assert f"driftline local down --state-dir '{other}'" in text
    assert f"driftline local status --state-dir '{other}'" in text
    plain = ready_summary(platform, state, detached=True, flags=supervisor.state_dir_flag(checkout / ".driftline"))
    assert "Stop it with: driftline local down\n" in plain + "\n" and "--state-dir" not in plain
