"""The registry of running local platforms of a checkout, so ``status`` and ``down`` find one whatever
its ``--state-dir``.

Each running platform adds one small file to ``<checkout>/.driftline/instances/`` (the checkout is the
directory of the ``cdk.json`` it was started with) that points at its state directory, with the pid and
start time of its process. An entry counts only while that process (pid *and* start time, see
:func:`driftline.local.state.is_platform_process`) runs and its state directory still names it, so a
killed run, a reused pid or a state directory reused by another run is never taken for a running one.
``DRIFTLINE_LOCAL_INSTANCES_DIR`` puts the registry elsewhere (tests use their own).
Standard library only, like :mod:`driftline.local.state`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from driftline.local import state as st

__all__ = [
    "INSTANCES_ENV",
    "Instance",
    "checkout_root",
    "entries",
    "forget",
    "register",
    "registry_dir",
]

INSTANCES_ENV = "DRIFTLINE_LOCAL_INSTANCES_DIR"
CONFIG_FILE = "cdk.json"


@dataclass(frozen=True)
class Instance:
    """One registered platform: where its state is and which process it is."""

    state_dir: str
    pid: int
    start_time: str | None
    config: str
    started_at: float

    @property
    def directory(self) -> Path:
        return Path(self.state_dir)

    def is_running(self) -> bool:
        """Its process runs (same pid and start time) and its state directory still records it."""
        if not st.is_platform_process(self.pid, self.start_time):
            return False
        try:
            current = st.read_state(self.directory)
        except ValueError:
            return False
        return current is not None and current.pid == self.pid


def checkout_root(start: Path | None = None) -> Path:
    """The checkout a command run from ``start`` (default: the working directory) belongs to: the nearest
    directory holding a ``cdk.json``, else ``start`` itself."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return here


def registry_dir(checkout: Path) -> Path:
    override = os.environ.get(INSTANCES_ENV)
    return Path(override).resolve() if override else checkout / ".driftline" / "instances"


def _entry_path(registry: Path, state_dir: Path) -> Path:
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    return registry / f"{digest}.json"


def register(checkout: Path, state: st.PlatformState, state_dir: Path) -> Path:
    """Record the platform of ``state_dir`` (called by the platform process once its state is written)."""
    registry = registry_dir(checkout)
    registry.mkdir(parents=True, exist_ok=True)
    entry = Instance(str(state_dir.resolve()), state.pid, state.start_time, state.config, state.started_at)
    path = _entry_path(registry, state_dir)
    tmp = registry / f".{path.name}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(asdict(entry), indent=2))
    tmp.replace(path)
    return path


def forget(checkout: Path, state_dir: Path, pid: int | None = None) -> None:
    """Remove the entry of ``state_dir`` (only while it still names ``pid``, when given)."""
    path = _entry_path(registry_dir(checkout), state_dir)
    if pid is not None:
        entry = _read(path)
        if entry is not None and entry.pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _read(path: Path) -> Instance | None:
    try:
        doc = json.loads(path.read_text())
        return Instance(
            state_dir=str(doc["state_dir"]),
            pid=int(doc["pid"]),
            start_time=None if doc.get("start_time") is None else str(doc["start_time"]),
            config=str(doc.get("config", "")),
            started_at=float(doc.get("started_at", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def entries(checkout: Path) -> list[Instance]:
    """Every readable entry of the checkout's registry, oldest first; unreadable files are removed.
    Callers keep the running ones (:meth:`Instance.is_running`) and clean up after the others."""
    registry = registry_dir(checkout)
    if not registry.is_dir():
        return []
    found: list[Instance] = []
    for path in sorted(registry.glob("*.json")):
        entry = _read(path)
        if entry is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        found.append(entry)
    return sorted(found, key=lambda e: e.started_at)
