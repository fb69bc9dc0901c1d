"""The ready message prints the exact commands of this instance: reload always, resume and dismiss for
each interrupted execution the kept state lists."""

from __future__ import annotations

from pathlib import Path

from driftline import config
from driftline.local import state as st
from driftline.local.summary import ready_summary
from driftline.local.supervisor import state_dir_flag
from driftline.platform import build_platform

ROOT = Path(__file__).resolve().parents[2]


def _state() -> st.PlatformState:
    return st.PlatformState(
        pid=1, pgid=1, host="127.0.0.1", port=1, api_port=2, started_at=0.0, status="ready", env="dev",
        config="cdk.json", region="us-east-1", account="123456789012", prefix="dev-driftline", log_file="x.log",
    )  # fmt: skip


def test_reload_and_resume_carry_this_instances_flags(tmp_path: Path) -> None:
    platform = build_platform(config.load(ROOT / "cdk.json"))
    flags = state_dir_flag(tmp_path / "kept state")
    arn = "arn:aws:states:us-east-1:123456789012:execution:dev-driftline-retrain:manual-1"
    text = ready_summary(
        platform,
        _state(),
        detached=True,
        flags=flags,
        interrupted=[{"arn": arn, "name": "manual-1"}, {"arn": arn[:-1] + "2"}],
    )
    assert f"driftline local reload{flags}" in text
    assert "Interrupted executions (2;" in text and f"`driftline local status{flags}`" in text
    for name in ("manual-1", "manual-2"):
        assert f"driftline local resume {name}{flags}" in text and f"driftline local dismiss {name}{flags}" in text


def test_without_interrupted_executions_no_resume_is_offered() -> None:
    platform = build_platform(config.load(ROOT / "cdk.json"))
    text = ready_summary(platform, _state(), detached=False)
    assert "driftline local reload " in text and "resume" not in text and "Interrupted" not in text
