"""The reload diff (pure) and the removal of what a new definition drops (in-process moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from driftline import config
from driftline.local.provision import LOCAL_ACCOUNT
from driftline.local.reload import (
    PlatformDiff,
    ReloadError,
    ReloadRefusedError,
    add_feature_set_changes,
    check_removals,
    diff_platforms,
    feature_set_files,
    feature_sets_digest,
    load_checked,
    remove_resources,
)
from driftline.platform import Platform, build_platform

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def _context() -> dict[str, Any]:
    return json.loads((ROOT / "cdk.json").read_text())["context"]  # type: ignore[no-any-return]


def _platform(edit: Any = None) -> Platform:
    ctx = _context()
    env = ctx["driftline:environments"][ctx["driftline:env"]]
    if edit is not None:
        edit(env)
    return build_platform(config.from_context(ctx))


def test_same_config_is_no_change() -> None:
    diff = diff_platforms(_platform(), _platform(), LOCAL_ACCOUNT, REGION)
    assert diff.empty
    assert diff.lines() == []


def test_gate_change_changes_the_functions_that_read_the_config_only() -> None:
    def gate(env: dict[str, Any]) -> None:
        env["models"][0]["gate"]["min_metrics"]["roc_auc"] = 0.7

    old = _platform()
    diff = diff_platforms(old, _platform(gate), LOCAL_ACCOUNT, REGION)
    assert diff.added == {} and diff.removed == {}
    changed = set(diff.changed["function"])
    readers = {old.name(f.logical) for f in old.functions if "PLATFORM_CONFIG" in f.env}
    assert changed == readers
    assert old.name("serve") not in changed
    assert set(diff.changed) == {"function"}


def test_schedule_change_and_new_model() -> None:
    def edit(env: dict[str, Any]) -> None:
        env["models"][0]["drift"]["schedule"] = "rate(5 minutes)"
        second = json.loads(json.dumps(env["models"][0]))
        second["name"] = "second"
        second["retrain"]["schedule"] = "rate(1 day)"
        env["models"].append(second)

    old = _platform()
    env_model = old.config.models[0].name
    diff = diff_platforms(old, _platform(edit), LOCAL_ACCOUNT, REGION)
    assert diff.changed["schedule"] == [old.name(f"drift-{env_model}")]
    assert sorted(diff.added["schedule"]) == [old.name("drift-second"), old.name("retrain-second")]
    assert diff.added["stream"] == [old.name("captures-second")]
    assert f"~ schedule {old.name(f'drift-{env_model}')}" in diff.lines()
    # and back: the second model's schedules and stream are removed
    back = diff_platforms(_platform(edit), old, LOCAL_ACCOUNT, REGION)
    assert sorted(back.removed["schedule"]) == [old.name("drift-second"), old.name("retrain-second")]
    assert back.removed["stream"] == [old.name("captures-second")]


def test_env_rename_removes_every_bucket_and_table() -> None:
    def rename(env: dict[str, Any]) -> None:
        env["env_name"] = "other"

    old = _platform()
    diff = diff_platforms(old, _platform(rename), LOCAL_ACCOUNT, REGION)
    assert len(diff.removed["bucket"]) == len(old.buckets)
    assert len(diff.removed["table"]) == len(old.tables)
    assert all(n.startswith("other-driftline-") for n in diff.added["function"])
    assert diff.removed["bus"] == [old.event_bus] and diff.added["bus"] == ["other-driftline"]


def test_load_checked_refuses_with_the_config_error(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "cdk.json").read_text())
    env = doc["context"]["driftline:environments"][doc["context"]["driftline:env"]]
    env["models"][0]["gate"]["max_regression"] = 5
    bad = tmp_path / "cdk.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ReloadError) as e:
        load_checked(bad, None, ROOT)
    with pytest.raises(config.ConfigError) as synth:
        config.load(bad)
    assert str(e.value) == str(synth.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ReloadError, match="feature set"):
        load_checked(ROOT / "cdk.json", None, tmp_path)  # no feature sets there


def test_feature_sets_digest_follows_the_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\n")
    first = feature_sets_digest(tmp_path)
    assert feature_sets_digest(tmp_path) == first
    (tmp_path / "a.yaml").write_text("name: b\n")
    assert feature_sets_digest(tmp_path) != first


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        made: dict[str, Any] = {}

        def client(service: str) -> Any:
            if service not in made:
                made[service] = boto3.client(service, region_name=REGION)
            return made[service]

        yield client


def test_non_empty_bucket_and_table_refused_unless_prune(clients: Any) -> None:
    s3, ddb = clients("s3"), clients("dynamodb")
    s3.create_bucket(Bucket="full")
    s3.put_bucket_versioning(Bucket="full", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="full", Key="k", Body=b"x")
    s3.put_object(Bucket="full", Key="k", Body=b"y")
    s3.create_bucket(Bucket="empty")
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="t", Item={"pk": {"S": "1"}})
    diff = PlatformDiff(removed={"bucket": ["empty", "full"], "table": ["t"]})
    with pytest.raises(ReloadRefusedError, match="bucket full, table t") as e:
        check_removals(diff, clients, prune=False)
    assert "--prune" in str(e.value) and "empty" not in str(e.value)
    check_removals(PlatformDiff(removed={"bucket": ["empty"]}), clients, prune=False)
    check_removals(diff, clients, prune=True)
    remove_resources(diff, clients, event_bus="default", region=REGION, account=LOCAL_ACCOUNT)
    assert s3.list_buckets()["Buckets"] == []
    assert ddb.list_tables()["TableNames"] == []


def test_removed_rules_functions_queues_streams_go(clients: Any) -> None:
    events, sqs = clients("events"), clients("sqs")
    events.put_rule(Name="sched", ScheduleExpression="rate(1 hour)")
    events.put_targets(Rule="sched", Targets=[{"Id": "target", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"}])
    events.create_event_bus(Name="bus")
    events.put_rule(Name="rule", EventBusName="bus", EventPattern=json.dumps({"source": ["x"]}))
    sqs.create_queue(QueueName="q")
    diff = PlatformDiff(
        removed={
            "schedule": ["sched", "gone"],
            "rule": ["rule"],
            "queue": ["q"],
            "function": ["nofn"],
            "stream": ["nostream"],
            "workflow": ["nowf"],
            "topic": ["notopic"],
            "table": ["notable"],
            "bucket": ["nobucket"],
        }
    )
    diff.removed["bus"] = ["bus", "nobus"]
    remove_resources(diff, clients, event_bus="bus", region=REGION, account=LOCAL_ACCOUNT)
    assert events.list_rules()["Rules"] == []
    assert [b["Name"] for b in events.list_event_buses()["EventBuses"]] == ["default"]
    assert sqs.list_queues().get("QueueUrls", []) == []


def test_feature_set_changes_by_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\n")
    (tmp_path / "b.yaml").write_text("name: b\n")
    before = feature_set_files(tmp_path)
    (tmp_path / "a.yaml").write_text("name: a2\n")
    (tmp_path / "b.yaml").unlink()
    (tmp_path / "c.yaml").write_text("name: c\n")
    diff = PlatformDiff()
    add_feature_set_changes(diff, before, feature_set_files(tmp_path))
    assert diff.lines() == ["+ feature-set c.yaml", "~ feature-set a.yaml", "- feature-set b.yaml"]
    same = PlatformDiff()
    add_feature_set_changes(same, before, before)
    assert same.empty
