"""Configuration errors are one line naming the key, the value and what is allowed."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from driftline.config import ConfigError, from_context, load
from driftline.platform import build_platform

ROOT = Path(__file__).resolve().parents[2]
CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]


def _ctx(mutate: Any) -> dict[str, Any]:
    ctx = copy.deepcopy(CONTEXT)
    mutate(ctx["driftline:environments"]["dev"])
    return ctx


def test_shipped_environments_are_valid() -> None:
    for env in CONTEXT["driftline:environments"]:
        cfg = load(ROOT / "cdk.json", env)
        assert cfg.env_name == env
        assert build_platform(cfg).functions


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["models"][0].update(approval="sometimes"),
            "'driftline:environments.dev.models[0].approval': \"sometimes\" is not allowed: "
            "Input should be 'auto' or 'manual'",
        ),
        (
            lambda d: d["models"][0]["gate"].update(max_regression=-0.1),
            "'driftline:environments.dev.models[0].gate.max_regression': -0.1 is not allowed",
        ),
        (lambda d: d.update(log_retention_days=42), "'driftline:environments.dev.log_retention_days': 42"),
        (lambda d: d.update(colour="blue"), "'driftline:environments.dev.colour': unknown key"),
        (lambda d: d.pop("models"), "'driftline:environments.dev.models': required key is missing"),
        (lambda d: d["models"][0].update(name="Bad Name"), 'models[0].name\': "Bad Name" is not allowed'),
        (lambda d: d["serving"].update(auth="oauth"), 'serving.auth\': "oauth" is not allowed'),
        (
            lambda d: d["serving"].update(snap_start=True, provisioned_concurrency=2),
            "snap_start and provisioned_concurrency cannot both be set",
        ),
        (
            lambda d: d["models"][0]["gate"].update(max_regression=5.0),
            "gate.max_regression': 5.0 is not allowed: max_regression is absolute, in the metric's own units, "
            "and at most 1 (the whole range of a score such as roc_auc); for an error metric such as rmse set "
            "max_relative_regression instead",
        ),
        (
            lambda d: d["models"][0]["gate"].update(max_regression=0.02, max_relative_regression=0.05),
            "set max_regression (absolute, in the metric's units) or max_relative_regression (a fraction of the "
            "champion's value), not both",
        ),
        (
            lambda d: d["models"][0]["gate"].update(max_regression=None, max_relative_regression=1.5),
            "gate.max_relative_regression': 1.5 is not allowed: Input should be less than or equal to 1",
        ),
        (
            lambda d: d["models"][0]["deploy"].update(max_bake_extensions=-1),
            "deploy.max_bake_extensions': -1 is not allowed",
        ),
        (
            lambda d: d["models"][0].update(
                approval_timeout_seconds=518_400, deploy={"bake_seconds": 86_400, "max_bake_extensions": 3}
            ),
            "approval_timeout_seconds (518400) plus the longest canary bake (deploy.bake_seconds 86400 x "
            "(1 + deploy.max_bake_extensions 3) = 345600) must be at most 601200 s",
        ),
    ],
)
def test_bad_values_name_key_value_and_allowed(mutate: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_context(_ctx(mutate))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="'nope' is not allowed: choose one of demo, dev, prod"):
        from_context(CONTEXT, "nope")


def test_unknown_model_lookup() -> None:
    cfg = load(ROOT / "cdk.json")
    with pytest.raises(ConfigError, match="unknown model 'x'; configured models: credit-default"):
        cfg.model("x")


def test_synth_with_bad_context_stops_with_one_line_and_no_traceback() -> None:
    bad = _ctx(lambda d: d["models"][0].update(approval="sometimes"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        capture_output=True,
        text=True,
        check=False,
        env={
            "CDK_CONTEXT_JSON": json.dumps(bad),
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        },
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        "driftline: configuration error: cdk.json context 'driftline:environments.dev.models[0].approval': "
        "\"sometimes\" is not allowed: Input should be 'auto' or 'manual'"
    ]


def test_regression_tolerance_defaults_to_absolute_and_relative_replaces_it() -> None:
    from driftline.config import DEFAULT_MAX_REGRESSION, DeploySettings, QualityGate

    assert QualityGate().absolute_regression == DEFAULT_MAX_REGRESSION == 0.01
    assert QualityGate(max_regression=0.03).absolute_regression == 0.03
    relative = QualityGate(max_relative_regression=0.1)
    assert relative.absolute_regression is None and relative.max_relative_regression == 0.1
    # the dumped config (PLATFORM_CONFIG for the functions) validates again
    assert QualityGate.model_validate_json(relative.model_dump_json()) == relative
    assert DeploySettings().max_bake_extensions == 3


def test_manual_approval_needs_approvers() -> None:
    """With no approvers, 'manual' let anyone who could call the approval route approve (issue 16, item 12)."""
    from driftline.config import PlatformConfig

    with pytest.raises(ValueError, match="approval 'manual' needs 'approvers'"):
        PlatformConfig.model_validate({"models": [{"name": "m", "feature_set": "f", "approval": "manual"}]})
    ok = PlatformConfig.model_validate(
        {"models": [{"name": "m", "feature_set": "f", "approval": "manual", "approvers": ["arn:aws:iam::1:role/lead"]}]}
    )
    assert ok.models[0].approvers == ("arn:aws:iam::1:role/lead",)


def test_labelers_are_iam_principals_or_api_key_ids() -> None:
    """Labels from a labeler count for any prediction (issue 16 item 13): no wildcards, no typos."""
    from driftline.config import PlatformConfig

    def cfg(labelers: list[str]) -> Any:
        return PlatformConfig.model_validate({"models": [{"name": "m", "feature_set": "fs", "labelers": labelers}]})

    ok = cfg(["arn:aws:iam::123456789012:role/labeling-team", "a1b2c3d4e5"])
    assert ok.models[0].labelers == ("arn:aws:iam::123456789012:role/labeling-team", "a1b2c3d4e5")
    for bad in (["*"], ["arn:aws:iam::123456789012:role/*"], ["arn:aws:iam::1:role/x"], [""], ["a", "a"]):
        with pytest.raises(ValueError, match="labeler"):
            cfg(bad)
