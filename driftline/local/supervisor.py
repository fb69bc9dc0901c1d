"""Finding and stopping a running local platform: what ``status``, ``down``, ``invoke``, ``fire`` and
the demo share.

A platform is found from its state directory (:mod:`driftline.local.state`) or, when no directory was
named, through the checkout's registry (:mod:`driftline.local.instances`), so a platform started with
``--state-dir X`` is still found by a plain ``down``. A recorded run whose process is gone is *stale*:
it is reported, its leftover workers are ended and its records removed. Nothing here prints: notices go
to a ``say`` callback and failures are :class:`SupervisorError` with the exit code the CLI uses.
Standard library only (no moto), so the CLI stays quick.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from driftline.local import instances
from driftline.local import state as st

__all__ = [
    "AmbiguousPlatformError",
    "Found",
    "Say",
    "StopOutcome",
    "SupervisorError",
    "checkout_of",
    "clean_stale",
    "current_state",
    "default_state_dir",
    "find_platform",
    "live_state",
    "running_instances",
    "state_dir_flag",
    "stop_platform",
]

Say = Callable[[str], None]
"""Where notices go (the CLI: a line on stderr)."""

EXIT_AMBIGUOUS = 2


class SupervisorError(RuntimeError):
    """An operation on the platform that could not be done; ``exit_code`` is the CLI's."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class AmbiguousPlatformError(SupervisorError):
    """Several platforms of this checkout run and none was named: the message lists them with the flag
    that names each."""

    def __init__(self, command: str, running: list[tuple[Path, st.PlatformState]]) -> None:
        lines = [f"{len(running)} local platforms are running from this checkout; name one with --state-dir:"]
        lines += [
            f"  driftline local {command}{state_dir_flag(directory)}   (pid {state.pid}, {state.endpoint}, "
            f"API {state.api_url})"
            for directory, state in running
        ]
        super().__init__("\n".join(lines), EXIT_AMBIGUOUS)
        self.running = running


def default_state_dir() -> Path:
    """The state directory commands use when none is named: ``./.driftline`` of the working directory."""
    return (Path.cwd() / ".driftline").resolve()


def state_dir_flag(directory: Path) -> str:
    """The `` --state-dir X`` a command needs to reach the platform of ``directory`` (empty for the default)."""
    resolved = directory.resolve()
    return "" if resolved == default_state_dir() else f" --state-dir {shlex.quote(str(resolved))}"


def checkout_of(state: st.PlatformState) -> Path:
    """The checkout a platform was started from: the directory of its ``cdk.json``."""
    return Path(state.config).resolve().parent


def clean_stale(directory: Path, state: st.PlatformState, say: Say) -> None:
    """A recorded run whose process is gone: say so, end its leftover workers, forget it."""
    own_group = os.getpgid(0)
    leftovers = st.group_members(state.pgid) if state.pgid > 1 and state.pgid != own_group else []
    say(
        f"Found stale state in {directory} from a run that did not stop cleanly (pid {state.pid} is gone)"
        + (f"; ending {len(leftovers)} leftover process(es)" if leftovers else "")
        + "; cleaning up."
    )
    if leftovers:
        st.end_processes(leftovers)
    st.remove_state(directory, state.pid)
    instances.forget(checkout_of(state), directory, state.pid)


def live_state(directory: Path) -> st.PlatformState | None:
    """The state of the platform running from ``directory``, or None; never changes anything."""
    try:
        state = st.read_state(directory)
    except ValueError:
        return None
    if state is None or not st.is_platform_process(state.pid, state.start_time):
        return None
    return state


def current_state(directory: Path, say: Say) -> st.PlatformState | None:
    """The state of a live platform, after cleaning up stale or corrupt state (with a notice)."""
    try:
        state = st.read_state(directory)
    except ValueError as e:
        say(f"Ignoring unreadable state: {e}; removing it.")
        st.remove_state(directory)
        return None
    if state is None:
        return None
    if not st.is_platform_process(state.pid, state.start_time):
        clean_stale(directory, state, say)
        return None
    return state


def running_instances(say: Say, checkout: Path | None = None) -> list[tuple[Path, st.PlatformState]]:
    """The live platforms registered by this checkout (default: the working directory's), oldest first.

    Entries of runs that are gone are removed on the way, and their state directory cleaned as stale
    when it still records that run (so leftover workers of a killed run are ended).
    """
    root = checkout if checkout is not None else instances.checkout_root()
    found: list[tuple[Path, st.PlatformState]] = []
    for entry in instances.entries(root):
        if entry.is_running():
            state = live_state(entry.directory)
            if state is not None:
                found.append((entry.directory, state))
            continue
        if st.is_platform_process(entry.pid, entry.start_time):
            continue  # the process runs but its state directory no longer names it: not ours to judge
        try:
            recorded = st.read_state(entry.directory)
        except ValueError:
            recorded = None
        if recorded is not None and recorded.pid == entry.pid:
            clean_stale(entry.directory, recorded, say)
        instances.forget(root, entry.directory, entry.pid)
    return found


@dataclass
class Found:
    """What an operation on "the" platform resolved to."""

    directory: Path
    """The state directory the operation uses (the one named, the default, or the one found)."""
    state: st.PlatformState | None
    """The live platform there, or None when none runs there."""
    others: list[tuple[Path, st.PlatformState]] = field(default_factory=list)
    """Other live platforms of this checkout (only filled when ``state`` is None)."""
    via_registry: bool = False
    """True when no directory was named and the platform was found through the registry."""


def find_platform(state_dir: Path | None, say: Say, *, command: str) -> Found:
    """The platform an operation means.

    ``state_dir`` named (``--state-dir`` or ``DRIFTLINE_STATE_DIR``): the platform of that directory,
    never another one. Not named: the default directory's when one runs there, else the one platform
    of this checkout's registry; with several running, :class:`AmbiguousPlatformError` lists them.
    """
    if state_dir is not None:
        directory = st.state_dir(state_dir)
        state = current_state(directory, say)
        others = [] if state is not None else [r for r in running_instances(say) if r[0] != directory]
        return Found(directory, state, others)
    directory = default_state_dir()
    state = current_state(directory, say)
    if state is not None:
        return Found(directory, state)
    running = running_instances(say)
    if len(running) > 1:
        raise AmbiguousPlatformError(command, running)
    if len(running) == 1:
        return Found(running[0][0], running[0][1], via_registry=True)
    return Found(directory, None)


@dataclass(frozen=True)
class StopOutcome:
    pid: int
    forced: bool
    """True when the platform did not stop within the timeout and was killed."""
    leftovers: int
    """Processes of its group (workers) still alive after it ended, then ended."""

    def describe(self, timeout_s: float) -> str:
        how = f"killed after {timeout_s:.0f} s" if self.forced else "stopped cleanly"
        extra = f"; ended {self.leftovers} leftover process(es)" if self.leftovers else ""
        return f"Local platform (pid {self.pid}) {how}{extra}."


def stop_platform(directory: Path, state: st.PlatformState, timeout_s: float = 15.0) -> StopOutcome:
    """SIGTERM, wait up to ``timeout_s``, SIGKILL, then end what is left of its process group.

    Before every signal the recorded pid is checked to still be the process that was started (its start
    time), so a process that got the pid later is never signalled.
    """

    def ours() -> bool:  # re-checked before every signal: the pid may be free (and reused) any moment
        return st.is_platform_process(state.pid, state.start_time)

    if ours():
        os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    forced = ours()
    if forced:
        os.kill(state.pid, signal.SIGKILL)
    own_group = os.getpgid(0)
    leftovers = (
        [p for p in st.group_members(state.pgid) if p != os.getpid()]
        if state.pgid > 1 and state.pgid != own_group
        else []
    )
    survivors = st.end_processes(leftovers) if leftovers else []
    st.remove_state(directory, state.pid)
    instances.forget(checkout_of(state), directory, state.pid)
    if survivors:
        raise SupervisorError(f"stopped pid {state.pid} but could not end processes {survivors}; end them by hand")
    return StopOutcome(state.pid, forced, len(leftovers))
