"""`driftline local` commands: run the whole platform on this machine (moto, no Docker, no AWS).

``up`` runs in the foreground (Ctrl-C stops it) or, with ``--detach``, in the background with its
state in ``.driftline/`` so ``status``, ``down``, ``invoke`` and ``fire`` work from any shell. This
module parses arguments and prints; starting, finding and stopping the platform live in
:mod:`driftline.local.launcher` and :mod:`driftline.local.supervisor`. It imports nothing heavy: moto
is imported only by the process that runs the platform.

Exit codes: 0 ok; 1 the platform is not running (``status``), could not start or stop, or a function
or schedule target failed; 2 usage errors, and ``status``/``down`` without ``--state-dir`` while
several platforms of this checkout run (the message lists the flag for each).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import typer

from driftline.cli.common import err_console, fail, load_platform, print_json
from driftline.local import state as st
from driftline.local.control import control_request
from driftline.local.ports import is_loopback, port_problem
from driftline.local.supervisor import (
    AmbiguousPlatformError,
    Found,
    Say,
    SupervisorError,
    current_state,
    find_platform,
    state_dir_flag,
    stop_platform,
)

app = typer.Typer(no_args_is_help=True)

STATE_DIR_OPTION = typer.Option(
    None,
    "--state-dir",
    envvar="DRIFTLINE_STATE_DIR",
    help="Where the running platform records its state (default: ./.driftline; status and down also find "
    "a platform of this checkout started with another one).",
)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _find(state_dir: Path | None, command: str) -> Found:
    try:
        return find_platform(state_dir, _say, command=command)
    except AmbiguousPlatformError as e:
        _say(f"error: {e}")  # plain lines: the commands it lists must not be wrapped
        raise typer.Exit(e.exit_code) from None


def _others_hint(found: Found, command: str) -> str:
    """Where the platforms of this checkout that the named state dir does not hold run, as commands."""
    if not found.others:
        return ""
    listed = "; ".join(
        f"`driftline local {command}{state_dir_flag(d)}` (pid {s.pid}, {s.endpoint})" for d, s in found.others
    )
    return f" Running from this checkout: {listed}."


def _instances_json(running: list[tuple[Path, st.PlatformState]]) -> list[dict[str, Any]]:
    return [{"state_dir": str(d), "pid": s.pid, "endpoint": s.endpoint, "api_url": s.api_url} for d, s in running]


def _require_running(state_dir: Path | None, command: str) -> st.PlatformState:
    found = _find(state_dir, command)
    if found.state is None:
        fail(
            f"no local platform is running (no state in {found.directory}); start one with `driftline local up`"
            + _others_hint(found, command),
            1,
        )
    assert found.state is not None
    return found.state


def _check_port_free(host: str, port: int, flag: str, what: str) -> None:
    problem = port_problem(host, port)
    if problem is not None:
        fail(
            f"{what} port {port} on {host} is not available ({problem}); another "
            "`driftline local up`, LocalStack or moto_server may be using it. "
            f"Stop it or choose another port with {flag}.",
            1,
        )


REMOTE_WARNING = (
    "the local platform has no authentication: anyone who can reach {host} can read and write every bucket "
    "and table, invoke the functions and fire the schedules (creating or changing functions stays refused)"
)


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


@contextmanager
def _progress() -> Iterator[Say]:
    """Start-up progress on stderr: a Rich status line on a terminal, plain lines anywhere else (logs of
    scripts and CI show what `up` was doing when it stopped)."""
    if sys.stderr.isatty():
        with err_console.status("starting the local platform…") as status:
            yield lambda message: status.update(f"{message}…")
    else:
        yield lambda message: _say(f"local up: {message}")


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
    fresh: bool = typer.Option(
        False, "--fresh", help="Start empty: delete the data kept in the state dir (every object, item, message)."
    ),
    in_memory: bool = typer.Option(
        False,
        "--in-memory",
        help="Keep nothing on disk: this run's data is lost at `down` (kept data is untouched).",
    ),
    prune: bool = typer.Option(
        False,
        "--prune",
        help="Delete kept buckets and tables the configuration no longer has even if they hold data.",
    ),
    require_auth: bool = typer.Option(
        False,
        "--require-auth",
        help="Check SigV4 and execute-api:Invoke on the API's IAM routes as the deployed API does (default: "
        "unsigned requests work); keys of a local client and approver go to <state dir>/api-credentials.",
    ),
) -> None:
    """Start the local platform: emulator, Lambda executor, triggers and API gateway."""
    from driftline.local.launcher import StartOptions, run_foreground, start_detached

    directory = st.state_dir(state_dir)
    existing = current_state(directory, _say)
    if existing is not None:
        fail(
            f"a local platform is already running (pid {existing.pid}, {existing.endpoint}, "
            f"{existing.api_url}); stop it with `driftline local down{state_dir_flag(directory)}` "
            "or use another --state-dir",
            1,
        )
    opts = StartOptions(
        state_dir=directory,
        config=config,
        env=env,
        host=host,
        port=port,
        api_port=api_port,
        handler_overrides=_parse_overrides(handler_override),
        max_workers=max_workers,
        allow_remote=allow_remote,
        ready_timeout_s=ready_timeout,
        persist=not in_memory,
        fresh=fresh,
        prune=prune,
        require_auth=require_auth,
    )
    _check_host(host, allow_remote)
    _check_port_free(host, port, "--port", "emulator")
    _check_port_free(host, api_port, "--api-port", "API")
    try:
        if not detach:
            run_foreground(load_platform(config, env), opts, _say)
        with _progress() as progress:
            state, platform = start_detached(opts, progress=progress, while_starting=lambda: load_platform(config, env))
    except SupervisorError as e:
        fail(str(e), e.exit_code)
    from driftline.local.summary import ready_summary

    try:
        _, live = control_request(state.endpoint, "GET", "status", timeout=5.0)
    except (OSError, ValueError):
        live = {}
    interrupted = live.get("interrupted") or []
    typer.echo(ready_summary(platform, state, detached=True, flags=state_dir_flag(directory), interrupted=interrupted))
    if require_auth:
        from driftline.local.gateway_auth import credentials_hint

        typer.echo(credentials_hint(directory, state.api_url))


@app.command()
def reset(
    state_dir: Path | None = STATE_DIR_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete the data the local platform keeps in its state dir (buckets, tables, queues, registry, reports).

    Refused while a platform runs on that state dir; asks first unless --yes.
    """
    from driftline.local.journal import StateInUseError, wipe

    directory = st.state_dir(state_dir)
    data = directory / "data"
    running = current_state(directory, _say)
    if running is not None:
        fail(
            f"a local platform is running on {directory} (pid {running.pid}); stop it first with "
            f"`driftline local down{state_dir_flag(directory)}`",
            1,
        )
    if not data.exists() or not any(p.suffix == ".dlj" for p in data.iterdir()):
        _say(f"Nothing to reset: no kept state in {data}.")
        raise typer.Exit(0)
    if not yes and not typer.confirm(
        f"Delete every object, item and message the local platform keeps in {data}?", default=False, err=True
    ):
        _say("Nothing deleted.")
        raise typer.Exit(1)
    try:
        freed = wipe(data)
    except StateInUseError as e:
        fail(str(e), 1)
    _say(f"Deleted the kept state in {data} ({freed / 2**20:.1f} MiB); the next `up` starts empty.")


@app.command()
def down(
    state_dir: Path | None = STATE_DIR_OPTION,
    timeout: float = typer.Option(15.0, "--timeout", help="Seconds to wait for a clean stop before killing."),
) -> None:
    """Stop the local platform started with `up` (in the background or in another terminal).

    Without --state-dir it stops the platform of ./.driftline, else the one platform of this checkout
    started with another state dir; with several running it stops none and lists the flag for each (exit 2).
    """
    found = _find(state_dir, "down")
    if found.state is None:
        if found.others:
            _say(f"No local platform runs from {found.directory}; nothing stopped." + _others_hint(found, "down"))
        else:
            _say(f"Nothing to stop: no local platform is running (no live state in {found.directory}).")
        raise typer.Exit(0)
    if found.via_registry:
        _say(f"Stopping the local platform started with --state-dir {found.directory}.")
    try:
        outcome = stop_platform(found.directory, found.state, timeout)
    except SupervisorError as e:
        fail(str(e), e.exit_code)
    _say(outcome.describe(timeout))


@app.command()
def status(
    state_dir: Path | None = STATE_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON (also when nothing runs)."),
) -> None:
    """Show whether the local platform runs, its endpoints, warm workers and next schedules.

    Exit code 0 when it runs, 1 when it does not, 2 when several run and none was named. With --json the
    answer is JSON on stdout in every case: {"running": false, "state_dir": ..., "others": [...]} when
    nothing runs there, {"running": true, "state_dir": null, "others": [...]} when several run.
    """
    try:
        found = find_platform(state_dir, _say, command="status")
    except AmbiguousPlatformError as e:
        if as_json:
            doc = {"running": True, "state_dir": None, "error": str(e), "others": _instances_json(e.running)}
            print_json(json.dumps(doc, indent=2))
        else:
            _say(f"error: {e}")
        raise typer.Exit(e.exit_code) from None
    state = found.state
    if state is None:
        if as_json:
            doc = {"running": False, "state_dir": str(found.directory), "others": _instances_json(found.others)}
            print_json(json.dumps(doc, indent=2))
        else:
            _say(f"Not running (no live state in {found.directory})." + _others_hint(found, "status"))
        raise typer.Exit(1)
    try:
        _, live = control_request(state.endpoint, "GET", "status", timeout=3.0)
    except (OSError, ValueError) as e:
        live = {"status": state.status, "error": f"the platform did not answer its status endpoint: {e}"}
    interrupted = [i.to_dict() for i in _located(state, live.get("interrupted") or [])]
    if as_json:
        shown = {k: v for k, v in state.__dict__.items() if k != "token"}
        shown_doc: dict[str, Any] = {
            "running": True,
            "state_dir": str(found.directory),
            "state": shown,
            "live": live,
            "interrupted": interrupted,
        }
        print_json(json.dumps(shown_doc, default=str, indent=2))
        return
    uptime = time.time() - state.started_at
    typer.echo(f"{live.get('status', state.status)}: pid {state.pid}, up {uptime:.0f} s, env {state.env}")
    typer.echo(f"  AWS endpoint  {state.endpoint}\n  API           {state.api_url}")
    if found.via_registry:
        typer.echo(f"  state dir     {found.directory}   (use --state-dir {found.directory})")
    for name, s in sorted((live.get("functions") or {}).items()):
        typer.echo(f"  {name:40s} {s['workers']} worker(s), {s['invocations']} invocation(s)")
    for arn, when in sorted((live.get("next_schedules") or {}).items()):
        typer.echo(f"  next {arn.rsplit('/', 1)[-1]} at {when}")
    _show_interrupted(interrupted, state_dir_flag(found.directory))
    if "error" in live:
        _say(str(live["error"]))


def _activate(state: st.PlatformState) -> None:
    """Point this process's AWS clients (``driftline.aws``) at the platform's emulator (root credentials,
    as the other CLI commands working on the local platform)."""
    import os

    from driftline import aws
    from driftline.demo.local import ENDPOINT_ENV

    for k in ENDPOINT_ENV:
        os.environ.pop(k, None)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": state.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": state.region,
            "AWS_DEFAULT_REGION": state.region,
        }
    )
    aws.reset_clients()


def _located(state: st.PlatformState, records: list[dict[str, Any]]) -> list[Any]:
    """The interrupted executions the platform lists, each with where it was (from the control table;
    the bare record when the table cannot be read)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from driftline.control_store import ControlStore
    from driftline.local.resume import Interrupted, locate

    if not records:
        return []
    from driftline import config as config_mod
    from driftline.platform import build_platform

    try:  # status must answer even when cdk.json was since broken: the bare records then
        table = build_platform(config_mod.load(Path(state.config), state.env)).name("control")
    except (config_mod.ConfigError, OSError):
        return [Interrupted.from_record(r) for r in records]
    _activate(state)
    store = ControlStore(table)
    out = []
    for record in records:
        try:
            out.append(locate(record, store))
        except (BotoCoreError, ClientError):
            out.append(Interrupted.from_record(record))
    return out


def _show_interrupted(interrupted: list[dict[str, Any]], flags: str) -> None:
    if not interrupted:
        return
    typer.echo(f"  interrupted executions ({len(interrupted)}; they were running when the platform stopped):")
    for i in interrupted:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(i["started"] or 0)))
        machine = str(i["state_machine"]).rsplit(":", 1)[-1]
        typer.echo(f"    {i['name']}  ({machine}, started {started}): {i['where']}")
        typer.echo(f"      {i['arn']}")
        if i["resumable"]:
            typer.echo(f"      resume: driftline local resume {i['name']}{flags}")
        typer.echo(f"      dismiss: driftline local dismiss {i['name']}{flags}")


def _interrupted_named(state: st.PlatformState, execution: str) -> tuple[Any, Any]:
    """The interrupted execution named ``execution`` (name or ARN), located, and the platform."""
    try:
        _, live = control_request(state.endpoint, "GET", "status", timeout=10.0)
    except (OSError, ValueError) as e:
        fail(f"the platform did not answer its status endpoint: {e}", 1)
    records = [r for r in live.get("interrupted") or [] if execution in (r.get("arn"), r.get("name"))]
    if not records:
        listed = ", ".join(str(r.get("name")) for r in live.get("interrupted") or []) or "none"
        fail(f"no interrupted execution {execution!r} on this platform (interrupted executions: {listed})", 1)
    (found,) = _located(state, records[:1])
    return found, load_platform(Path(state.config), state.env)


def _mark(state: st.PlatformState, arn: str, resolution: str, detail: str = "", done: str = "") -> None:
    """Have the platform stop listing ``arn``; ``done`` says what already happened, for the failure message."""
    try:
        code, doc = control_request(
            state.endpoint, "POST", "interrupted", {"arn": arn, "resolution": resolution, "detail": detail}
        )
    except (OSError, ValueError) as e:
        code, doc = 0, {"error": f"the platform did not answer: {e}"}
    if code != 200:
        fail(f"{done}the platform could not record it as {resolution}: {doc.get('error', doc)}", 1)


@app.command()
def resume(
    execution: str = typer.Argument(..., help="Name or ARN of an interrupted execution (`driftline local status`)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the retrain-trigger's decision."),
    state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Ask again for the approval an interrupted run was waiting for: a new run of the same state machine
    re-runs the quality gate on the stored candidate and waits for approval with a fresh task token.

    Only runs interrupted at WaitForApproval can be resumed; dismiss the others and start a new run.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from driftline.contracts import RETRAIN_REQUESTED
    from driftline.control_store import ControlStore
    from driftline.event_bus import EventBus
    from driftline.local.resume import ResumeError
    from driftline.local.resume import resume as resume_run
    from driftline.registry.store import Registry, RegistryError
    from driftline.retraining.control import ControlTable
    from driftline.retraining.requests import whoami

    state = _require_running(state_dir, "resume")
    found, platform = _interrupted_named(state, execution)
    control = platform.name("control")
    bus = EventBus(platform.event_bus)
    try:
        resumed = resume_run(
            found,
            store=ControlStore(control),
            control=ControlTable(control),
            registry=Registry(platform.name("registry")),
            publish=lambda detail: bus.publish(RETRAIN_REQUESTED, detail),
            requested_by=whoami(),
            timeout_s=timeout,
        )
    except (ResumeError, RegistryError) as e:
        fail(str(e), 1)
    except (BotoCoreError, ClientError) as e:
        fail(f"the platform's tables or bus could not be reached: {e}", 1)
    name = resumed.execution_arn.rsplit(":", 1)[-1]
    _mark(state, found.arn, "resumed", resumed.execution_arn, done=f"run {name} was started for {found.name}, but ")
    typer.echo(
        f"Resumed {found.name} ({found.where()}) as run {name}: it re-runs the quality gate on "
        f"{found.model} v{found.version} and asks for approval again "
        f"(`driftline models approve --model {found.model} --version {found.version} --reason ...`)."
    )


@app.command()
def dismiss(
    execution: str = typer.Argument(..., help="Name or ARN of an interrupted execution (`driftline local status`)."),
    state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Stop listing an interrupted execution; its dead approval request and its lock are removed, and the
    candidate version keeps its status (roll it out later with `driftline retrain --version`)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from driftline.control_store import ControlStore
    from driftline.local.resume import dismiss as dismiss_run
    from driftline.retraining.control import ControlTable

    state = _require_running(state_dir, "dismiss")
    found, platform = _interrupted_named(state, execution)
    control = platform.name("control")
    try:
        dismiss_run(found, store=ControlStore(control), control=ControlTable(control))
    except (BotoCoreError, ClientError) as e:
        fail(f"the platform's control table could not be reached: {e}", 1)
    _mark(state, found.arn, "dismissed", done=f"the approval request and lock of {found.name} were removed, but ")
    typer.echo(f"Dismissed {found.name} ({found.where()}); it is no longer listed.")


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
    state = _require_running(state_dir, "invoke")
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
def call(
    method: str = typer.Argument(..., help="HTTP method: GET or POST."),
    path: str = typer.Argument(..., help="Route path, e.g. /v1/models/churn/predict."),
    data: str | None = typer.Option(None, "--data", "-d", help="The JSON body, or @FILE to read it from a file."),
    as_: str | None = typer.Option(
        None,
        "--as",
        help="Sign with SigV4 as the local 'client' or 'approver' (keys written by `local up --require-auth`).",
    ),
    state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Send one request to the local API (unsigned, or SigV4-signed with --as) and print the answer."""
    from driftline.local.gateway_auth import call_api, local_credentials

    found = _find(state_dir, "call")
    state = _require_running(found.directory, "call")
    if method.upper() not in ("GET", "POST"):
        fail(f"method {method!r}: the API's routes are GET or POST")
    body = b""
    if data is not None:
        try:
            body = Path(data[1:]).read_bytes() if data.startswith("@") else data.encode()
        except OSError as e:
            fail(f"--data {data}: {e.strerror or e}")
    credentials = None
    if as_ is not None:
        try:
            credentials = local_credentials(found.directory, as_)
        except ValueError as e:
            fail(str(e))
    try:
        status, text = call_api(state.api_url, method, path, body=body, credentials=credentials, region=state.region)
    except OSError as e:
        fail(f"the local API at {state.api_url} did not answer: {e}", 1)
    with suppress(ValueError):  # not JSON: printed as it came
        text = json.dumps(json.loads(text), indent=2)
    typer.echo(f"HTTP {status}", err=True)
    typer.echo(text)
    if status == 403 and credentials is None and "Missing Authentication Token" in text:
        _say("the platform requires SigV4 (--require-auth): add --as client (or --as approver for approvals)")
    if not 200 <= status < 300:
        raise typer.Exit(1)


@app.command()
def fire(
    rule: str = typer.Argument(..., help="Schedule rule, logical (drift-credit-default) or physical name."),
    wait: float = typer.Option(60.0, "--wait", help="Seconds to wait for the targets to finish (0: return at once)."),
    state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Fire a schedule rule now: its targets get the event they would get on schedule."""
    state = _require_running(state_dir, "fire")
    code, doc = control_request(state.endpoint, "POST", "fire", {"rule": rule, "wait_s": wait}, timeout=wait + 10.0)
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


@app.command()
def reload(
    prune: bool = typer.Option(
        False, "--prune", help="Also delete removed buckets and tables that still hold data (and their data)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what changed as JSON."),
    state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Apply the changes of cdk.json and the feature sets to the running platform; data stays.

    An invalid configuration is refused (the platform keeps running with the last good one), and so is
    removing a bucket or table that still holds data unless --prune is given.
    """
    state = _require_running(state_dir, "reload")
    code, doc = control_request(state.endpoint, "POST", "reload", {"prune": prune}, timeout=300.0)
    if code == 404 and "unknown control endpoint" in str(doc.get("error", "")):
        fail("the running platform predates `local reload`; stop and start it to apply the configuration", 1)
    if code >= 500:
        fail(str(doc.get("error", doc)), 1)
    if code != 200:
        fail(f"{doc.get('error', doc)}; the platform keeps its current configuration", 2)
    if as_json:
        print_json(json.dumps(doc["diff"]))
        return
    lines = doc.get("lines", [])
    typer.echo("\n".join(lines) if lines else "No change: the running platform already has this configuration.")
    if lines:
        typer.echo(f"Reloaded ({len(lines)} change(s)); data kept.")
