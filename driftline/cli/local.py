"""`driftline local` commands: run the whole platform on this machine (moto, no Docker, no AWS).

``up`` runs in the foreground (Ctrl-C stops it) or, with ``--detach``, in the background with its
state in ``.driftline/`` so ``status``, ``down``, ``invoke`` and ``fire`` work from any shell.
This module imports nothing heavy: moto is imported only by the process that runs the platform.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import typer

from driftline.cli.common import fail, load_platform
from driftline.local import state as st

app = typer.Typer(no_args_is_help=True)

STATE_DIR_OPTION = typer.Option(
    None,
    "--state-dir",
    envvar="DRIFTLINE_STATE_DIR",
    help="Where the running platform records its state (default: ./.driftline).",
)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _clean_stale(directory: Path, state: st.PlatformState) -> None:
    """A recorded run whose process is gone: say so, end its leftover workers, forget it."""
    leftovers = st.group_members(state.pgid) if state.pgid > 1 and state.pgid != os.getpgid(0) else []
    _say(
        f"Found stale state in {directory} from a run that did not stop cleanly (pid {state.pid} is gone)"
        + (f"; ending {len(leftovers)} leftover process(es)" if leftovers else "")
        + "; cleaning up."
    )
    if leftovers:
        st.end_processes(leftovers)
    st.remove_state(directory)


def _current_state(directory: Path) -> st.PlatformState | None:
    """The state of a live platform, after cleaning up stale or corrupt state (with a message)."""
    try:
        state = st.read_state(directory)
    except ValueError as e:
        _say(f"Ignoring unreadable state: {e}; removing it.")
        st.remove_state(directory)
        return None
    if state is None:
        return None
    if not st.is_platform_process(state.pid, state.start_time):
        _clean_stale(directory, state)
        return None
    return state


def _require_running(directory: Path) -> st.PlatformState:
    state = _current_state(directory)
    if state is None:
        fail(f"no local platform is running (no state in {directory}); start one with `driftline local up`", 1)
    assert state is not None
    return state


def _check_port_free(host: str, port: int, flag: str, what: str) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            fail(
                f"{what} port {port} on {host} is not available ({e.strerror}); another "
                "`driftline local up`, LocalStack or moto_server may be using it. "
                f"Stop it or choose another port with {flag}.",
                1,
            )


REMOTE_WARNING = (
    "the local platform has no authentication: anyone who can reach {host} can read and write every bucket "
    "and table, invoke the functions and fire the schedules (creating or changing functions stays refused)"
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_host(host: str, allow_remote: bool) -> None:
    """A --host other than loopback exposes the unauthenticated emulator: only with --allow-remote, and
    then with a warning."""
    if is_loopback(host):
        return
    if not allow_remote:
        fail(
            f"--host {host} would expose the emulator beyond this machine; "
            + REMOTE_WARNING.format(host=host)
            + ". Keep the default 127.0.0.1, or pass --allow-remote on a network you trust.",
            2,
        )
    _say("warning: " + REMOTE_WARNING.format(host=host) + ".")


def _parse_overrides(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, handler = v.partition("=")
        if not sep or not name or "." not in handler:
            fail(
                f"--handler-override {v!r}: expected FUNCTION=module.function, "
                "e.g. serve=tests.fixtures.lambda_handlers.api"
            )
        out[name.strip()] = handler.strip()
    return out


@app.command()
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Start in the background and return once ready."),
    port: int = typer.Option(4566, "--port", help="Port of the AWS emulator (AWS_ENDPOINT_URL)."),
    api_port: int = typer.Option(3000, "--api-port", help="Port of the local API gateway."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (loopback; any other needs --allow-remote)."
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Listen on a --host other than loopback although the emulator has no authentication.",
    ),
    env: str | None = typer.Option(None, "--env", help="Environment of cdk.json (default: driftline:env)."),
    config: Path = typer.Option(Path("cdk.json"), "--config", help="The cdk.json holding the configuration."),
    state_dir: Path | None = STATE_DIR_OPTION,
    handler_override: list[str] = typer.Option(
        [], "--handler-override", help="FUNCTION=module.function: run another handler for a function (tests)."
    ),
    max_workers: int = typer.Option(
        4, "--max-workers", min=1, max=64, help="Most warm workers per function when invocations overlap."
    ),
    ready_timeout: float = typer.Option(120.0, "--ready-timeout", help="With --detach: seconds to wait for ready."),
) -> None:
    """Start the local platform: emulator, Lambda executor, triggers and API gateway."""
    directory = st.state_dir(state_dir)
    existing = _current_state(directory)
    if existing is not None:
        fail(
            f"a local platform is already running (pid {existing.pid}, {existing.endpoint}, "
            f"{existing.api_url}); stop it with `driftline local down` or use another --state-dir",
            1,
        )
    overrides = _parse_overrides(handler_override)
    _check_host(host, allow_remote)
    _check_port_free(host, port, "--port", "emulator")
    _check_port_free(host, api_port, "--api-port", "API")
    if detach:
        _up_detached(
            directory,
            port=port,
            api_port=api_port,
            host=host,
            env=env,
            config=config,
            overrides=handler_override,
            max_workers=max_workers,
            ready_timeout=ready_timeout,
            allow_remote=allow_remote,
        )
    else:
        _up_foreground(
            load_platform(config, env),
            directory,
            port=port,
            api_port=api_port,
            host=host,
            config=config,
            overrides=overrides,
            max_workers=max_workers,
        )


def _bytecode_cache_env(project_root: Path) -> dict[str, str]:
    """Environment for a platform process: compiled bytecode cached under .driftline/pycache even
    when PYTHONDONTWRITEBYTECODE is set (compiling moto from source costs seconds on every start).
    The source tree is never written to; DRIFTLINE_LOCAL_BYTECODE_CACHE=0 turns this off."""
    env = dict(os.environ)
    if env.get("DRIFTLINE_LOCAL_BYTECODE_CACHE", "1") != "0":
        env.setdefault("PYTHONPYCACHEPREFIX", str(project_root / ".driftline" / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _up_detached(
    directory: Path,
    *,
    port: int,
    api_port: int,
    host: str,
    env: str | None,
    config: Path,
    overrides: list[str],
    max_workers: int,
    ready_timeout: float,
    allow_remote: bool = False,
) -> None:
    """Start ``up`` in its own session, then wait for its state to say ready.

    The child starts before this process loads the configuration (it validates it too), so the
    two use both cores; a configuration error ends the child and is reported here.
    """
    from driftline.local.summary import ready_summary

    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / st.LOG_FILE
    cmd = [
        sys.executable,
        "-m",
        "driftline.cli.main",
        "local",
        "up",
        "--port",
        str(port),
        "--api-port",
        str(api_port),
        "--host",
        host,
        "--config",
        str(config.resolve()),
        "--state-dir",
        str(directory),
        "--max-workers",
        str(max_workers),
    ]
    if env:
        cmd += ["--env", env]
    if allow_remote:
        cmd.append("--allow-remote")
    for o in overrides:
        cmd += ["--handler-override", o]
    child_env = _bytecode_cache_env(config.resolve().parent)
    child_env["DRIFTLINE_LOCAL_DETACHED"] = "1"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=child_env
        )
    try:
        platform = load_platform(config, env)
    except typer.Exit:
        st.end_processes([proc.pid])
        raise
    deadline = time.monotonic() + ready_timeout
    while True:
        code = proc.poll()
        if code is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-8:]
            reason = next((line for line in reversed(tail) if "error" in line.lower()), tail[-1] if tail else "")
            fail(
                f"the local platform stopped during start-up (exit code {code}): {reason.strip()} "
                f"(full log: {log_path})",
                1,
            )
        try:
            state = st.read_state(directory)
        except ValueError:
            state = None
        if state is not None and state.pid == proc.pid and state.status == "ready":
            break
        if time.monotonic() > deadline:
            st.end_processes(st.group_members(proc.pid) or [proc.pid])
            st.remove_state(directory, proc.pid)
            fail(f"the local platform was not ready after {ready_timeout:.0f} s and was stopped; see {log_path}", 1)
        time.sleep(0.05)
    typer.echo(ready_summary(platform, state, detached=True))


def _up_foreground(
    platform: Any,
    directory: Path,
    *,
    port: int,
    api_port: int,
    host: str,
    config: Path,
    overrides: dict[str, str],
    max_workers: int,
) -> None:
    cache_env = _bytecode_cache_env(config.resolve().parent)
    if "PYTHONPYCACHEPREFIX" in cache_env:  # for moto's imports here and for the workers
        sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"] = cache_env["PYTHONPYCACHEPREFIX"]
        sys.dont_write_bytecode = False
    from driftline.local.moto_hooks import UnsupportedMotoError
    from driftline.local.runtime import LocalOptions, LocalPlatform, LocalStartError
    from driftline.local.summary import ready_summary

    detached = os.environ.get("DRIFTLINE_LOCAL_DETACHED") == "1"
    stop = threading.Event()
    interrupts = {"n": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        interrupts["n"] += 1
        if interrupts["n"] > 1 and signum == signal.SIGINT:
            _say("Second Ctrl-C: stopping now.")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    opts = LocalOptions(
        config_path=config,
        host=host,
        port=port,
        api_port=api_port,
        state_dir=directory,
        handler_overrides=overrides,
        max_workers_per_function=max_workers,
    )
    lp = LocalPlatform(platform, opts)
    base = st.PlatformState(
        pid=os.getpid(),
        pgid=os.getpgid(0),
        host=host,
        port=port,
        api_port=api_port,
        started_at=lp.started_at,
        status="starting",
        env=platform.config.env_name,
        config=str(config.resolve()),
        region=lp.region,
        account=lp.account,
        prefix=platform.prefix,
        log_file=str(directory / st.LOG_FILE) if detached else None,
        start_time=st.process_start_time(os.getpid()),
        token=lp.token,
    )
    st.write_state(directory, base)
    try:
        lp.start()
    except (LocalStartError, UnsupportedMotoError) as e:
        st.remove_state(directory, os.getpid())
        fail(str(e), 1)
    except BaseException:
        st.remove_state(directory, os.getpid())
        raise
    base.port, base.api_port, base.status, base.ready_at = lp.port, lp.api_port, "ready", lp.ready_at
    st.write_state(directory, base)
    lp.out(ready_summary(platform, base, detached=detached))
    try:
        while not stop.wait(0.2):
            pass
    finally:
        lp.out("Stopping the local platform...")
        workers = len(lp.executor.worker_pids()) if lp.executor else 0
        lp.stop()
        st.remove_state(directory, os.getpid())
        lp.out(f"Stopped ({workers} worker process(es) ended).")
    # Everything this process started has ended; skip the interpreter's slow teardown of moto's
    # state (seconds on a busy machine) so `down` returns promptly.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command()
def down(
    state_dir: Path | None = STATE_DIR_OPTION,
    timeout: float = typer.Option(15.0, "--timeout", help="Seconds to wait for a clean stop before killing."),
) -> None:
    """Stop the local platform started with `up` (in the background or in another terminal)."""
    directory = st.state_dir(state_dir)
    state = _current_state(directory)
    if state is None:
        _say(f"Nothing to stop: no local platform is running (no live state in {directory}).")
        raise typer.Exit(0)
    os.kill(state.pid, signal.SIGTERM)  # _current_state checked the pid is still the process that was started

    def ours() -> bool:  # re-checked before every signal: the pid may be free (and reused) any moment
        return st.is_platform_process(state.pid, state.start_time)

    deadline = time.monotonic() + timeout
    while ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    forced = ours()
    if forced:
        os.kill(state.pid, signal.SIGKILL)
    own_group = os.getpgid(0)
    leftovers = [p for p in st.group_members(state.pgid) if p != os.getpid()] if state.pgid != own_group else []
    survivors = st.end_processes(leftovers) if leftovers else []
    st.remove_state(directory, state.pid)
    if survivors:
        fail(f"stopped pid {state.pid} but could not end processes {survivors}; end them by hand", 1)
    how = f"killed after {timeout:.0f} s" if forced else "stopped cleanly"
    extra = f"; ended {len(leftovers)} leftover process(es)" if leftovers else ""
    _say(f"Local platform (pid {state.pid}) {how}{extra}.")


def _control(
    state: st.PlatformState, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 - http to our own local endpoint
        f"{state.endpoint}/_driftline/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our own local endpoint
            return int(resp.status), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return int(e.code), json.loads(e.read() or b"{}")


@app.command()
def status(
    state_dir: Path | None = STATE_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the live status as JSON."),
) -> None:
    """Show whether the local platform runs, its endpoints, warm workers and next schedules.

    Exit code 0 when it runs, 1 when it does not.
    """
    directory = st.state_dir(state_dir)
    state = _current_state(directory)
    if state is None:
        _say(f"Not running (no live state in {directory}).")
        raise typer.Exit(1)
    try:
        _, live = _control(state, "GET", "status", timeout=3.0)
    except (OSError, ValueError) as e:
        live = {"status": state.status, "error": f"the platform did not answer its status endpoint: {e}"}
    if as_json:
        shown = {k: v for k, v in state.__dict__.items() if k != "token"}
        typer.echo(json.dumps({"state": shown, "live": live}, default=str, indent=2))
        return
    uptime = time.time() - state.started_at
    typer.echo(f"{live.get('status', state.status)}: pid {state.pid}, up {uptime:.0f} s, env {state.env}")
    typer.echo(f"  AWS endpoint  {state.endpoint}\n  API           {state.api_url}")
    for name, s in sorted((live.get("functions") or {}).items()):
        typer.echo(f"  {name:40s} {s['workers']} worker(s), {s['invocations']} invocation(s)")
    for arn, when in sorted((live.get("next_schedules") or {}).items()):
        typer.echo(f"  next {arn.rsplit('/', 1)[-1]} at {when}")
    if "error" in live:
        _say(str(live["error"]))


def _lambda_client(state: st.PlatformState) -> Any:
    import boto3

    return boto3.session.Session().client(  # type: ignore[call-overload]
        "lambda",
        endpoint_url=state.endpoint,
        region_name=state.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - the emulator accepts any credentials
    )


@app.command()
def invoke(
    function: str = typer.Argument(..., help="Logical (serve) or physical (dev-driftline-serve) function name."),
    payload: str = typer.Option("{}", "--payload", "-p", help="The event, as JSON."),
    payload_file: Path | None = typer.Option(None, "--payload-file", help="Read the event from a JSON file."),
    state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Invoke a function synchronously through the emulator's Lambda API and print its answer."""
    state = _require_running(st.state_dir(state_dir))
    text = payload_file.read_text() if payload_file is not None else payload
    try:
        json.loads(text)
    except ValueError as e:
        fail(f"--payload is not valid JSON: {e}")
    client = _lambda_client(state)
    name = function
    try:
        client.get_function(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        name = f"{state.prefix}-{function}"
        try:
            client.get_function(FunctionName=name)
        except client.exceptions.ResourceNotFoundException:
            names = sorted(f["FunctionName"] for f in client.list_functions()["Functions"])
            fail(f"no function {function!r} (or {name!r}); functions: {', '.join(names)}", 1)
    resp = client.invoke(FunctionName=name, Payload=text.encode(), LogType="Tail")
    body = resp["Payload"].read().decode()
    try:
        pretty = json.dumps(json.loads(body), indent=2)
    except ValueError:
        pretty = body
    if resp.get("FunctionError"):
        import base64

        tail = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
        typer.echo(tail, err=True)
        typer.echo(f"function error ({resp['FunctionError']}):", err=True)
        typer.echo(pretty, err=True)
        raise typer.Exit(1)
    typer.echo(pretty)


@app.command()
def fire(
    rule: str = typer.Argument(..., help="Schedule rule, logical (drift-credit-default) or physical name."),
    wait: float = typer.Option(60.0, "--wait", help="Seconds to wait for the targets to finish (0: return at once)."),
    state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Fire a schedule rule now: its targets get the event they would get on schedule."""
    state = _require_running(st.state_dir(state_dir))
    code, doc = _control(state, "POST", "fire", {"rule": rule, "wait_s": wait}, timeout=wait + 10.0)
    if code != 200:
        fail(str(doc.get("error", doc)), 1)
    failed = False
    for d in doc.get("dispatches", []):
        target = d["target"].rsplit(":", 1)[-1]
        if "succeeded" in d:
            ok = "succeeded" if d["succeeded"] else ("failed, sent to the DLQ" if d.get("dead_lettered") else "failed")
            failed |= not d["succeeded"]
            typer.echo(f"{doc['rule']} -> {target}: {ok} after {d['attempts']} attempt(s)")
        elif "execution_arn" in d:
            typer.echo(f"{doc['rule']} -> {target}: started {d['execution_arn']}")
        else:
            typer.echo(f"{doc['rule']} -> {target}: {d.get('error', 'dispatched')}")
    if failed:
        raise typer.Exit(1)
