"""``driftline local reload``: a changed gate and schedule in cdk.json reach the running platform without a
wipe (the next invocation sees the new config, the rule its new schedule, uploads stay); an invalid config
and a change that would delete buckets holding data are refused and the last good config keeps running."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from driftline import config
from tests.e2e.conftest import FIXTURES, OVERRIDES, ROOT, LocalPlatformHandle, run_cli, start_platform, stop_platform


@pytest.fixture
def config_copy() -> Iterator[Path]:
    # next to cdk.json: the platform runs the functions from the config's folder (the project root)
    path = ROOT / f".cdk-reload-test-{uuid.uuid4().hex[:8]}.json"
    path.write_text((ROOT / "cdk.json").read_text())
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _edit(path: Path, change: Any) -> None:
    doc = json.loads(path.read_text())
    ctx = doc["context"]
    change(ctx["driftline:environments"][ctx["driftline:env"]])
    path.write_text(json.dumps(doc, indent=1))


def _env(handle: LocalPlatformHandle) -> dict[str, str]:
    """The environment of the workflow function's next run (the echo handler answers with it)."""
    out = handle.client("lambda").invoke(FunctionName=handle.name("workflow"), Payload=b"{}")
    return json.loads(out["Payload"].read())["env"]  # type: ignore[no-any-return]


def _gate(handle: LocalPlatformHandle) -> dict[str, Any]:
    """The gate the workflow function's next run reads."""
    return json.loads(_env(handle)["PLATFORM_CONFIG"])["models"][0]["gate"]  # type: ignore[no-any-return]


def test_reload_applies_gate_and_schedule_keeps_data_and_refuses_bad_config(tmp_path: Path, config_copy: Path) -> None:
    feature_sets = tmp_path / "feature_sets"
    shutil.copytree(ROOT / "examples" / "feature_sets", feature_sets)
    _edit(config_copy, lambda env: env.update(feature_sets_dir=str(feature_sets)))
    handle = start_platform(tmp_path, {**OVERRIDES, "workflow": f"{FIXTURES}.echo"}, "--config", str(config_copy))
    try:
        model = handle.platform.config.models[0].name
        rule = handle.name(f"drift-{model}")
        events, s3 = handle.client("events"), handle.client("s3")
        bucket = handle.bucket("features")
        version = s3.put_object(Bucket=bucket, Key="uploads-kept/a.csv", Body=b"x,y\n1,2\n")["VersionId"]
        before = _gate(handle)
        assert events.describe_rule(Name=rule)["ScheduleExpression"] == "rate(1 hour)"

        def change(env: dict[str, Any]) -> None:
            env["models"][0]["gate"]["min_metrics"] = {"roc_auc": 0.71}
            env["models"][0]["drift"]["schedule"] = "rate(5 minutes)"

        _edit(config_copy, change)
        result = run_cli("reload", state_dir=tmp_path, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"~ schedule {rule}" in result.stdout
        assert f"~ function {handle.name('workflow')}" in result.stdout
        assert f"function {handle.name('serve')}" not in result.stdout  # serve does not read the config
        assert events.describe_rule(Name=rule)["ScheduleExpression"] == "rate(5 minutes)"
        after = _gate(handle)
        assert after["min_metrics"] == {"roc_auc": 0.71} and after != before
        kept = s3.get_object(Bucket=bucket, Key="uploads-kept/a.csv")
        assert kept["VersionId"] == version and kept["Body"].read() == b"x,y\n1,2\n"

        assert requests.get(f"{handle.api_url}/openapi.json", timeout=60).status_code == 200  # routes swapped

        again = run_cli("reload", state_dir=tmp_path, timeout=120)
        assert again.returncode == 0 and "No change" in again.stdout
        as_json = run_cli("reload", "--json", state_dir=tmp_path, timeout=120)
        assert json.loads(as_json.stdout) == {"added": {}, "changed": {}, "removed": {}}

        # a changed feature set: reported by file, and the functions' next workers see it
        digest = _env(handle)["DRIFTLINE_FEATURE_SETS_DIGEST"]
        changed = feature_sets / "credit_default.yaml"
        changed.write_text(changed.read_text() + "# edited\n")
        edited = run_cli("reload", state_dir=tmp_path, timeout=120)
        assert edited.returncode == 0 and "~ feature-set credit_default.yaml" in edited.stdout, edited.stderr
        assert _env(handle)["DRIFTLINE_FEATURE_SETS_DIGEST"] != digest

        # invalid: synth's one-line error, nothing changed
        _edit(config_copy, lambda env: env["models"][0]["gate"].update(max_regression=5))
        with pytest.raises(config.ConfigError) as synth:
            config.load(config_copy)
        bad = run_cli("reload", state_dir=tmp_path, timeout=120)
        assert bad.returncode == 2
        said = " ".join(bad.stderr.split())  # the console wraps long lines
        assert str(synth.value) in said and "keeps its current configuration" in said
        assert _gate(handle)["min_metrics"] == {"roc_auc": 0.71}

        # a rename would delete every bucket, one of them holding data: refused unless --prune
        def rename(env: dict[str, Any]) -> None:
            env["models"][0]["gate"].pop("max_regression")
            env["env_name"] = "renamed"

        _edit(config_copy, rename)
        refused = run_cli("reload", state_dir=tmp_path, timeout=120)
        assert refused.returncode == 2
        said = " ".join(refused.stderr.split())
        assert f"bucket {bucket}" in said and "--prune" in said
        assert events.describe_rule(Name=rule)["ScheduleExpression"] == "rate(5 minutes)"
        assert s3.get_object(Bucket=bucket, Key="uploads-kept/a.csv")["VersionId"] == version
        assert _gate(handle)["min_metrics"] == {"roc_auc": 0.71}

        # with --prune: the old buckets go with their data, the renamed platform answers
        pruned = run_cli("reload", "--prune", state_dir=tmp_path, timeout=120)
        assert pruned.returncode == 0, pruned.stderr
        assert "- bus dev-driftline\n" in pruned.stdout
        assert f"- bucket {bucket}" in pruned.stdout and "+ function renamed-driftline-workflow" in pruned.stdout
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert bucket not in buckets and bucket.replace("dev-driftline", "renamed-driftline") in buckets
        assert requests.get(f"{handle.api_url}/openapi.json", timeout=60).status_code == 200
    finally:
        stop_platform(handle)
    handle = start_platform(tmp_path, OVERRIDES, "--config", str(config_copy))
    try:  # the pruning is kept: the old bucket stays deleted, and the unchanged config changes nothing
        assert bucket not in {b["Name"] for b in handle.client("s3").list_buckets()["Buckets"]}
        assert "configuration changed since the last run" not in (tmp_path / "local.log").read_text()
    finally:
        stop_platform(handle)


def test_up_on_kept_state_applies_the_config_changed_while_down(tmp_path: Path, config_copy: Path) -> None:
    def add_second(env: dict[str, Any]) -> None:
        second = json.loads(json.dumps(env["models"][0]))
        second["name"] = "second"
        env["models"].append(second)

    _edit(config_copy, add_second)
    overrides = {**OVERRIDES, "workflow": f"{FIXTURES}.echo"}
    handle = start_platform(tmp_path, overrides, "--config", str(config_copy))
    try:
        stream, rule = handle.name("captures-second"), handle.name("drift-second")
        assert stream in handle.client("firehose").list_delivery_streams()["DeliveryStreamNames"]
        bucket = handle.bucket("features")
        version = handle.client("s3").put_object(Bucket=bucket, Key="uploads-kept/b.csv", Body=b"1")["VersionId"]
    finally:
        stop_platform(handle)

    def drop_second(env: dict[str, Any]) -> None:
        env["models"].pop()
        env["models"][0]["gate"]["min_metrics"] = {"roc_auc": 0.72}

    _edit(config_copy, drop_second)
    handle = start_platform(tmp_path, overrides, "--config", str(config_copy))
    try:
        assert "configuration changed since the last run" in (tmp_path / "local.log").read_text()
        assert stream not in handle.client("firehose").list_delivery_streams()["DeliveryStreamNames"]
        assert rule not in [r["Name"] for r in handle.client("events").list_rules()["Rules"]]
        assert _gate(handle)["min_metrics"] == {"roc_auc": 0.72}
        assert handle.client("s3").get_object(Bucket=bucket, Key="uploads-kept/b.csv")["VersionId"] == version
    finally:
        stop_platform(handle)

    # a rename would delete the buckets holding that upload: `up` refuses and names --prune
    _edit(config_copy, lambda env: env.update(env_name="renamed"))
    args = ["up", "--detach", "--config", str(config_copy), "--port", "0", "--api-port", "0"]
    refused = run_cli(*args, state_dir=tmp_path, timeout=120)
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0 and f"bucket {bucket}" in said and "local up --prune" in said, said
