"""Starting the local platform: in this process until a signal stops it (``driftline local up``), or
detached in its own session (``up --detach``, the demo) and waited for until it is ready.

The detached start runs the foreground command as a child, so both ways run the same code; the
parent reports the child's progress (emulator, executor and provisioning, ready) as it can observe it
from the state file and the control endpoint. The platform process records its state and registers
itself in the checkout's registry (:mod:`driftline.local.instances`) so ``status`` and ``down`` find it.
moto is imported only by the process that runs the platform.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TypeVar

from driftline.local import instances
from driftline.local import state as st
from driftline.local.control import control_request
from driftline.local.supervisor import Say, SupervisorError, state_dir_flag

if TYPE_CHECKING:
    from driftline.platform import Platform

__all__ = [
    "DETACHED_ENV",
    "StartOptions",
    "StartupProgress",
    "bytecode_cache_env",
    "platform_command",
    "run_foreground",
    "start_detached",
]

DETACHED_ENV = "DRIFTLINE_LOCAL_DETACHED"
T = TypeVar("T")


@dataclass(frozen=True)
class StartOptions:
    """How to start a platform: the options of ``driftline local up``."""

    state_dir: Path
    config: Path = Path("cdk.json")
    env: str | None = None
    host: str = "127.0.0.1"
    port: int = 4566
    api_port: int = 3000
    handler_overrides: Mapping[str, str] = field(default_factory=dict)
    max_workers: int = 4
    allow_remote: bool = False
    ready_timeout_s: float = 120.0
    persist: bool = True
    """Keep the emulator's data in ``state_dir/data`` (off: in memory only, lost at ``down``)."""
    fresh: bool = False
    """Empty the kept data before starting."""
    prune: bool = False
    """Delete buckets and tables the config no longer has although they hold data."""
    require_auth: bool = False
    """SigV4 on the API's IAM routes, as the deployed API (off: unsigned clients work as before)."""


def bytecode_cache_env(project_root: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a platform process: compiled bytecode cached under .driftline/pycache even
    when PYTHONDONTWRITEBYTECODE is set (compiling moto from source costs seconds on every start).
    The source tree is never written to; DRIFTLINE_LOCAL_BYTECODE_CACHE=0 turns this off."""
    env = dict(os.environ if base is None else base)
    if env.get("DRIFTLINE_LOCAL_BYTECODE_CACHE", "1") != "0":
        env.setdefault("PYTHONPYCACHEPREFIX", str(project_root / ".driftline" / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def platform_command(opts: StartOptions) -> list[str]:
    """The foreground ``driftline local up`` that runs the platform of ``opts``."""
    cmd = [
        sys.executable, "-m", "driftline.cli.main", "local", "up",
        "--port", str(opts.port), "--api-port", str(opts.api_port), "--host", opts.host,
        "--config", str(opts.config.resolve()), "--state-dir", str(opts.state_dir.resolve()),
        "--max-workers", str(opts.max_workers),
    ]  # fmt: skip
    if opts.env:
        cmd += ["--env", opts.env]
    if opts.allow_remote:
        cmd.append("--allow-remote")
    if not opts.persist:
        cmd.append("--in-memory")
    if opts.fresh:
        cmd.append("--fresh")
    if opts.prune:
        cmd.append("--prune")
    if opts.require_auth:
        cmd.append("--require-auth")
    for name, handler in opts.handler_overrides.items():
        cmd += ["--handler-override", f"{name}={handler}"]
    return cmd


class StartupProgress:
    """The start-up phases a parent can observe, each reported once, in order."""

    def __init__(self, report: Say) -> None:
        self._report = report
        self._seen: set[str] = set()
        self._next_probe = 0.0

    def phase(self, key: str, message: str) -> None:
        if key not in self._seen:
            self._seen.add(key)
            self._report(message)

    def observe(self, state: st.PlatformState | None, pid: int) -> None:
        if state is None or state.pid != pid:
            return
        self.phase("emulator", "starting the AWS emulator (moto)" + (f" on {state.endpoint}" if state.port else ""))
        if "executor" in self._seen or state.port == 0 or time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + 0.25
        try:
            code, _ = control_request(state.endpoint, "GET", "status", timeout=0.5)
        except (OSError, ValueError):
            return
        if code == 200:  # the emulator serves once the executor is up: provisioning runs now
            self.phase(
                "executor", "Lambda executor (warm worker pools) up; provisioning buckets, tables, functions and rules"
            )


def _start_failure(log_path: Path, code: int) -> SupervisorError:
    lines = log_path.read_text(errors="replace").splitlines()[-8:] if log_path.exists() else []
    reason = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
    return SupervisorError(
        f"the local platform stopped during start-up (exit code {code}): {reason.strip()} (full log: {log_path})"
    )


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collect the platform's exit status whenever it ends, from a daemon thread: a long-lived caller (the
    demo) keeps no zombie after ``down``, and the running child is never garbage-collected as an
    unfinished subprocess (a ResourceWarning)."""
    threading.Thread(target=proc.wait, name=f"driftline-reap-{proc.pid}", daemon=True).start()


def start_detached(
    opts: StartOptions,
    *,
    progress: Say,
    while_starting: Callable[[], T],
    environ: Mapping[str, str] | None = None,
) -> tuple[st.PlatformState, T]:
    """Start the platform in its own session (logging to ``<state dir>/local.log``) and wait until its
    state says ready; return that state and what ``while_starting`` returned.

    ``while_starting`` runs while the child starts (the CLI loads the configuration there, so the two use
    both cores); if it raises, the child is ended and the exception propagates. A child that exits, or
    is not ready within ``opts.ready_timeout_s``, is ended and reported as :class:`SupervisorError`.
    """
    directory = opts.state_dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / st.LOG_FILE
    child_env = bytecode_cache_env(opts.config.resolve().parent, environ)
    child_env[DETACHED_ENV] = "1"
    progress("starting the platform process")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            platform_command(opts),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env,
        )
    try:
        extra = while_starting()
    except BaseException:
        st.end_processes([proc.pid])
        _reap(proc)
        raise
    watch = StartupProgress(progress)
    deadline = time.monotonic() + opts.ready_timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            raise _start_failure(log_path, code)
        try:
            state = st.read_state(directory)
        except ValueError:
            state = None
        if state is not None and state.pid == proc.pid and state.status == "ready":
            took = f" in {state.ready_at - state.started_at:.1f} s" if state.ready_at else ""
            progress(f"ready{took}")
            _reap(proc)
            return state, extra
        watch.observe(state, proc.pid)
        if time.monotonic() > deadline:
            st.end_processes(st.group_members(proc.pid) or [proc.pid])
            _reap(proc)
            st.remove_state(directory, proc.pid)
            instances.forget(opts.config.resolve().parent, directory, proc.pid)
            raise SupervisorError(
                f"the local platform was not ready after {opts.ready_timeout_s:.0f} s and was stopped; see {log_path}"
            )
        time.sleep(0.05)


def _stop_on_signals(say: Say) -> threading.Event:
    """An event set by SIGINT, SIGTERM or SIGHUP (a second Ctrl-C says it stops now)."""
    stop = threading.Event()
    interrupts = [0]

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        interrupts[0] += 1
        if interrupts[0] > 1 and signum == signal.SIGINT:
            say("Second Ctrl-C: stopping now.")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    return stop


def run_foreground(platform: Platform, opts: StartOptions, say: Say) -> NoReturn:
    """Run the platform in this process until SIGINT/SIGTERM/SIGHUP, recording (and registering) its
    state while it runs; then stop everything it started and exit the process.

    A start-up failure removes the records and raises :class:`SupervisorError`.
    """
    checkout = opts.config.resolve().parent
    cache_env = bytecode_cache_env(checkout)
    if "PYTHONPYCACHEPREFIX" in cache_env:  # for moto's imports here and for the workers
        sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"] = cache_env["PYTHONPYCACHEPREFIX"]
        sys.dont_write_bytecode = False
    from driftline.local.moto_hooks import UnsupportedMotoError
    from driftline.local.runtime import LocalOptions, LocalPlatform, LocalStartError
    from driftline.local.summary import ready_summary

    directory = opts.state_dir.resolve()
    detached = os.environ.get(DETACHED_ENV) == "1"
    stop = _stop_on_signals(say)
    lp = LocalPlatform(
        platform,
        LocalOptions(
            config_path=opts.config,
            host=opts.host,
            port=opts.port,
            api_port=opts.api_port,
            state_dir=directory,
            handler_overrides=dict(opts.handler_overrides),
            max_workers_per_function=opts.max_workers,
            persist=opts.persist,
            fresh=opts.fresh,
            env=opts.env,
            prune=opts.prune,
            require_auth=opts.require_auth,
        ),
    )
    pid = os.getpid()
    base = st.PlatformState(
        pid=pid,
        pgid=os.getpgid(0),
        host=opts.host,
        port=opts.port,
        api_port=opts.api_port,
        started_at=lp.started_at,
        status="starting",
        env=platform.config.env_name,
        config=str(opts.config.resolve()),
        region=lp.region,
        account=lp.account,
        prefix=platform.prefix,
        log_file=str(directory / st.LOG_FILE) if detached else None,
        start_time=st.process_start_time(pid),
        token=lp.token,
    )
    st.write_state(directory, base)
    instances.register(checkout, base, directory)

    def forget() -> None:
        st.remove_state(directory, pid)
        instances.forget(checkout, directory, pid)

    try:
        lp.start()
    except (LocalStartError, UnsupportedMotoError) as e:
        forget()
        raise SupervisorError(str(e)) from None
    except BaseException:
        forget()
        raise
    base.port, base.api_port, base.status, base.ready_at = lp.port, lp.api_port, "ready", lp.ready_at
    st.write_state(directory, base)
    kept = lp.persistence.interrupted() if lp.persistence is not None else []
    lp.out(ready_summary(platform, base, detached=detached, flags=state_dir_flag(directory), interrupted=kept))
    if opts.require_auth and not detached:  # a detached start's parent prints it
        from driftline.local.gateway_auth import credentials_hint

        lp.out(credentials_hint(directory, lp.api_url))
    try:
        while not stop.wait(0.2):
            pass
    finally:
        lp.out("Stopping the local platform...")
        workers = len(lp.executor.worker_pids()) if lp.executor else 0
        lp.stop()
        forget()
        lp.out(f"Stopped ({workers} worker process(es) ended).")
    # Everything this process started has ended; skip the interpreter's slow teardown of moto's
    # state so `down` returns promptly.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
