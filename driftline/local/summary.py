"""The "ready" summary printed by ``driftline local up``: endpoints, resources and how to use them.

Built from the platform definition and the recorded state only, so the detached parent process
prints the same text without importing moto.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driftline.local.state import PlatformState
from driftline.platform import Platform


def ready_summary(
    platform: Platform,
    state: PlatformState,
    *,
    detached: bool,
    flags: str = "",
    interrupted: Sequence[Mapping[str, Any]] = (),
) -> str:
    """``flags`` (such as `` --state-dir X``) are added to every ``driftline local`` command shown, so the
    commands printed reach this instance. ``interrupted``: the executions the kept state lists as
    interrupted (:meth:`~driftline.local.persistence.Persistence.interrupted`): each gets its resume and
    dismiss commands, since nothing resumes them by itself."""
    took = f"{state.ready_at - state.started_at:.1f} s" if state.ready_at else "?"
    acct, region = state.account, state.region
    routes = ", ".join(f"{r.method} {r.path}" for r in platform.routes)
    buckets = "\n".join(
        f"                  s3://{platform.bucket_name(b.logical, acct, region)}" for b in platform.buckets
    )
    functions = ", ".join(f.logical for f in platform.functions)
    schedules = ", ".join(f"{platform.name(s.logical)} {s.expression}" for s in platform.schedules) or "none"
    rules = ", ".join(platform.name(r.logical) for r in platform.event_rules) or "none"
    workflows = ", ".join(platform.name(w.logical) for w in platform.workflows) or "none"
    first_schedule = platform.schedules[0].logical if platform.schedules else "<rule>"
    lines = [
        f"Driftline local platform is ready (env {state.env}, pid {state.pid}, started in {took})",
        f"  AWS endpoint    {state.endpoint}   (moto; account {acct}, region {region})",
        f"  API             {state.api_url}   ({routes})",
        "  buckets",
        buckets,
        f"  functions       {functions}   (named {platform.prefix}-<name>)",
        f"  state machines  {workflows}",
        f"  schedules       {schedules}",
        f"  event rules     {rules}   (bus {platform.event_bus})",
        "",
        "Point the AWS CLI or boto3 at it:",
        f"  export AWS_ENDPOINT_URL={state.endpoint} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "
        f"AWS_DEFAULT_REGION={region}",
        "  aws s3 ls",
        f"  curl {state.api_url}/health",
        f"  driftline local invoke serve{flags} --payload '{{}}'      driftline local fire {first_schedule}{flags}",
        f"  driftline local status{flags}      driftline local reload{flags}   (apply cdk.json and feature-set "
        "changes; data stays)",
        "",
        *_interrupted_lines(interrupted, flags),
        (
            f"Running in the background; log: {state.log_file}. Stop it with: driftline local down{flags}"
            if detached
            else "Function logs follow. Press Ctrl-C to stop."
        ),
    ]
    return "\n".join(lines)


def _interrupted_lines(interrupted: Sequence[Mapping[str, Any]], flags: str) -> list[str]:
    if not interrupted:
        return []
    lines = [
        f"Interrupted executions ({len(interrupted)}; they were running when the platform stopped; "
        f"`driftline local status{flags}` shows where each was):"
    ]
    for e in interrupted:
        name = str(e.get("name") or str(e.get("arn", "")).rsplit(":", 1)[-1])
        lines.append(
            f"  {name}: driftline local resume {name}{flags}   (asks again for the approval it waited for) "
            f"or driftline local dismiss {name}{flags}"
        )
    return [*lines, ""]
