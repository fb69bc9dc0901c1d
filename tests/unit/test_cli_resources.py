"""CLI resource names come from one resolver, and STS is asked once however many names a command needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.cli import resources
from driftline.cli.resources import ENV_NAMES, NoCallerIdentityError, Resources

ROOT = Path(__file__).resolve().parents[2]


class _Sts:
    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def get_caller_identity(self) -> dict[str, str]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("no credentials")
        return {"Account": "111122223333", "Arn": "arn:aws:iam::111122223333:user/alice", "UserId": "x"}


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Sts]:
    from driftline import aws

    stub = _Sts()
    for name in ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(aws, "client", lambda service: stub if service == "sts" else pytest.fail(service))
    resources.forget_caller_identity()
    yield stub
    resources.forget_caller_identity()


def test_sts_is_asked_once_across_commands_helpers(sts: _Sts, platform_def: Any) -> None:
    from driftline.cli import drift, features, models, train

    bucket = features._features_bucket(platform_def)
    names = models.resource_names(platform_def)
    ctx = drift._monitoring_context(ROOT / "cdk.json", "dev")
    who = models.principal(None)
    assert train._has_identity()
    assert sts.calls == 1
    assert bucket == names["FEATURES_BUCKET"] == platform_def.bucket_name("features", "111122223333", "us-east-1")
    assert ctx.alerts_topic_arn == f"arn:aws:sns:us-east-1:111122223333:{platform_def.name('alerts')}"
    assert ctx.control_table == features._control_table(platform_def) == platform_def.name("control")
    assert who.endswith("user/alice")


def test_overrides_win_and_need_no_account(platform_def: Any) -> None:
    stub = _Sts()
    env = {"FEATURES_BUCKET": "mine", "CONTROL_TABLE": "ctl", "ALERTS_TOPIC_ARN": "arn:t", "EVENT_BUS_NAME": "b"}
    res = Resources(platform_def, env, sts_client=stub, region="eu-west-1")
    assert (res.bucket("features"), res.table("control"), res.topic_arn("alerts"), res.event_bus()) == (
        "mine",
        "ctl",
        "arn:t",
        "b",
    )
    assert (res.table("registry"), res.queue("dlq-data"), res.function("ingest")) == (
        platform_def.name("registry"),
        platform_def.name("dlq-data"),
        platform_def.name("ingest"),
    )
    assert stub.calls == 0
    assert res.bucket("captures") == platform_def.bucket_name("captures", "111122223333", "eu-west-1")
    assert res.caller_names()["AUDIT_BUCKET"] == platform_def.bucket_name("audit", "111122223333", "eu-west-1")
    assert stub.calls == 1


def test_a_failed_identity_is_remembered_and_named(platform_def: Any) -> None:
    stub = _Sts(fail=True)
    res = Resources(platform_def, {}, sts_client=stub)
    for _ in range(3):
        with pytest.raises(NoCallerIdentityError, match="RuntimeError: no credentials"):
            res.bucket("features")
    assert stub.calls == 1
    resources.forget_caller_identity()
