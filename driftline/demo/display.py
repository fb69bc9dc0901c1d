"""The demo's live progress display and final summary table (rich)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from driftline.demo.story import Facts, StepResult

ICONS = {
    "pending": ("·", "dim"),
    "running": ("…", "cyan"),
    "ok": ("✔", "green"),
    "failed": ("✘", "bold red"),
    "skipped": ("-", "dim"),
}


def steps_table(steps: list[StepResult], title: str = "Driftline demo") -> Table:
    table = Table(title=title, title_justify="left", expand=True, show_lines=False)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("step", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("what happened", overflow="fold", ratio=1)
    for s in steps:
        icon, style = ICONS[s.status]
        secs = f"{s.seconds:.1f}s" if s.status in ("ok", "failed") else ""
        table.add_row(
            Text(icon, style=style),
            Text(s.title, style="bold" if s.status == "running" else ""),
            secs,
            Text(s.detail, style="red" if s.status == "failed" else ""),
        )
    return table


class LiveDisplay:
    """Redraws the steps table whenever the story reports a change."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = Live(console=console, refresh_per_second=8, transient=True)

    def __enter__(self) -> LiveDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def update(self, steps: list[StepResult]) -> None:
        self.live.update(steps_table(steps, "Driftline demo (running)"))


def summary(
    steps: list[StepResult], facts: Facts, *, ok: bool, total_s: float, kept: bool, state_dir: str, env: str
) -> Group:
    table = steps_table(steps, "Driftline demo: summary")
    lines = []
    if ok:
        lines.append(
            Text(
                f"The whole loop ran in {total_s:.0f} s: drift detected, retrained, canaried and "
                f"promoted without a restart.",
                style="bold green",
            )
        )
        if facts.drifted_upload_at and facts.v2_serving_at:
            took = facts.v2_serving_at - facts.drifted_upload_at
            lines.append(Text(f"From the drifted upload to v2 serving: {took:.1f} s"))
        if facts.report_path:
            lines.append(Text(f"Drift report: {facts.report_path}", style="bold"))
    else:
        failed = next((s for s in steps if s.status == "failed"), None)
        where = failed.title if failed else "?"
        lines.append(Text(f"The demo stopped at: {where} ({total_s:.0f} s)", style="bold red"))
    if kept:
        lines.append(
            Text(
                f"The platform keeps running ({facts.endpoint}, API {facts.api_url}). Explore it with\n"
                f"  export AWS_ENDPOINT_URL={facts.endpoint} AWS_ACCESS_KEY_ID=test "
                f"AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1\n"
                f"  driftline retrain --model credit-default --history --env {env}\n"
                f"  driftline local status --state-dir {state_dir}\n"
                f"and stop it with: driftline local down --state-dir {state_dir}"
            )
        )
    else:
        lines.append(Text("The local platform was stopped; nothing is left running (use --keep to explore it)."))
    return Group(table, *lines)
