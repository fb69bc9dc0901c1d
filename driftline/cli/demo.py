"""`driftline demo`: the whole Driftline story on the local platform (what `make demo` runs).

Starts the local platform (``driftline local up --detach``, env ``demo`` of cdk.json), walks through
ingest → train → gate → promote → serve → drift → automatic retraining → canary → promotion → v2
serving, shows each step as it happens and ends with a summary table. Exit code 0 only when every
step did what it claims; the platform is stopped at the end unless ``--keep``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import typer

from driftline.cli.common import console, err_console, load_platform, print_json


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        keep: bool = typer.Option(False, "--keep", help="Leave the local platform running to explore it."),
        env: str = typer.Option("demo", "--env", help="Environment of cdk.json to run (short canary bake)."),
        config: Path = typer.Option(Path("cdk.json"), "--config", help="The cdk.json holding the configuration."),
        state_dir: Path = typer.Option(
            Path(".driftline"), "--state-dir", help="State directory of the local platform (driftline local …)."
        ),
        port: int = typer.Option(4566, "--port", help="Emulator port (another free one if taken)."),
        api_port: int = typer.Option(3000, "--api-port", help="API port (another free one if taken)."),
        out: Path = typer.Option(Path(".driftline/demo"), "--out", help="Where the drift report is saved."),
        as_json: bool = typer.Option(
            False, "--json", help="Print what the demo measured as JSON on stdout (progress goes to stderr)."
        ),
    ) -> None:
        """Run the whole story: drift is detected, a model retrains, canaries and goes live by itself."""
        from driftline.demo.display import LiveDisplay, summary
        from driftline.demo.story import DemoSettings, Story

        platform = load_platform(config, env)
        settings = DemoSettings(
            config=config,
            env=env,
            state_dir=state_dir.resolve(),
            out_dir=out,
            port=port,
            api_port=api_port,
            keep=keep,
            model=platform.config.models[0].name,
        )
        t0 = time.monotonic()
        out_console = err_console if as_json else console
        if out_console.is_terminal:
            with LiveDisplay(out_console) as live:
                story = Story(settings, platform, on_change=live.update)
                ok = story.run()
        else:
            done: set[str] = set()

            def log(steps: list) -> None:  # type: ignore[type-arg]
                for s in steps:
                    if s.status in ("ok", "failed") and s.title not in done:
                        done.add(s.title)
                        mark = "ok  " if s.status == "ok" else "FAIL"
                        out_console.print(
                            f"[{mark}] {s.title} ({s.seconds:.1f} s): {s.detail}",
                            highlight=False,
                            markup=False,
                            soft_wrap=True,
                        )

            story = Story(settings, platform, on_change=log)
            ok = story.run()
        total = time.monotonic() - t0
        out_console.print(
            summary(
                story.results,
                story.facts,
                ok=ok,
                total_s=total,
                kept=keep and story.local is not None,
                state_dir=str(settings.state_dir),
                env=env,
            )
        )
        if as_json:
            doc = {
                "ok": ok,
                "total_s": total,
                "steps": [asdict(s) for s in story.results],
                "facts": asdict(story.facts),
            }
            print_json(json.dumps(doc, default=str))
        if not ok:
            raise typer.Exit(1)
