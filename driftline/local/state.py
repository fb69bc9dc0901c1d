"""The ``.driftline/`` state of a running local platform, so ``status``/``down`` work from any shell.

The running process writes ``local.json`` (pid, process group, ports, times) when it starts and
removes it when it stops cleanly. A file whose pid is gone (the process was killed) is *stale*:
it is reported, any leftover worker of that run is ended, and the file is removed.
Standard library only: the CLI reads this without importing moto.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "local.json"
LOG_FILE = "local.log"


@dataclass
class PlatformState:
    pid: int
    pgid: int
    host: str
    port: int
    api_port: int
    started_at: float
    status: str  # "starting" | "ready"
    env: str
    config: str
    region: str
    account: str
    prefix: str
    ready_at: float | None = None
    log_file: str | None = None
    start_time: str | None = None
    """The platform process's start time (:func:`process_start_time`): with the pid it names the process,
    so a later process that got the same pid is never taken for it (and never signalled)."""
    token: str | None = None
    """The secret of the platform's own requests (:mod:`driftline.local.access`); the file is owner-only."""

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"


def state_dir(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("DRIFTLINE_STATE_DIR") or ".driftline").resolve()


def write_state(directory: Path, state: PlatformState) -> None:
    """Write the state owner-readable only (0600): it holds the token of the platform's own requests."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{STATE_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(asdict(state), indent=2))
    os.chmod(tmp, 0o600)  # an existing file keeps its mode through O_CREAT
    tmp.replace(directory / STATE_FILE)


def read_state(directory: Path) -> PlatformState | None:
    """The recorded state, or None. A corrupt file raises ValueError naming the file."""
    path = directory / STATE_FILE
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    try:
        return PlatformState(**doc)
    except TypeError as e:
        raise ValueError(f"{path} does not look like driftline local state ({e})") from None


def remove_state(directory: Path, pid: int | None = None) -> None:
    """Remove the state file (only if it still belongs to ``pid`` when given)."""
    path = directory / STATE_FILE
    if pid is not None:
        try:
            current = read_state(directory)
        except ValueError:
            current = None
        if current is not None and current.pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers signal 0; it is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started, as an opaque string that differs between two processes given the same pid:
    the start time in clock ticks since boot (``/proc/<pid>/stat`` field 22) on Linux, ``ps``'s
    ``lstart`` elsewhere; None when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return "ticks:" + stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        pass
    if Path("/proc/self/stat").exists():
        return None  # Linux, and the process is gone
    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"lstart:{out}" if out else None


def is_platform_process(pid: int, start_time: str | None = None) -> bool:
    """True when ``pid`` runs and is the recorded platform process.

    With ``start_time`` (recorded at start-up) the process must have started exactly then: a pid reused by
    any other process, driftline or not, is not ours. Without it (state written by an older version) the
    command line must name driftline.
    """
    if not pid_alive(pid):
        return False
    if start_time is not None:
        return process_start_time(pid) == start_time
    cmd = _cmdline(pid)
    return not cmd or "driftline" in cmd


def group_members(pgid: int) -> list[int]:
    """Live driftline processes of a process group (the platform and its workers)."""
    out: list[int] = []
    proc = Path("/proc")
    if not proc.exists():
        return out
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if os.getpgid(pid) != pgid:
                continue
        except OSError:
            continue
        if pid_alive(pid) and "driftline" in _cmdline(pid):
            out.append(pid)
    return sorted(out)


def end_processes(pids: list[int], grace_s: float = 3.0) -> list[int]:
    """SIGTERM, wait, then SIGKILL what is left. Returns the pids that were still alive at the end."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]
