"""models[].training.join: config (one-line errors), the auto choice from one listing, the train step's
source dispatching to the chosen builder, and the train function's declared env and grants."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftline.config import ConfigError, from_context
from driftline.features.athena_training_set import choose_join, curated_bytes
from driftline.platform import Grant, build_platform
from driftline.training import sources


def _ctx(training: dict[str, Any]) -> dict[str, Any]:
    return {
        "driftline:environments": {"dev": {"models": [{"name": "m", "feature_set": "penguins", "training": training}]}}
    }


def test_default_join_is_in_process_and_auto_takes_a_threshold() -> None:
    assert from_context(_ctx({})).models[0].training.join == "in_process"
    t = from_context(_ctx({"join": "auto", "join_auto_bytes": 5})).models[0].training
    assert (t.join, t.join_auto_bytes) == ("auto", 5)


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        ({"join": "spark"}, 'models[0].training.join\': "spark" is not allowed'),
        ({"join_auto_bytes": 5}, "join_auto_bytes only applies to join: auto"),
        ({"join": "auto", "join_auto_bytes": 0}, "join_auto_bytes"),
    ],
)
def test_bad_join_settings_are_one_line_errors(training: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        from_context(_ctx(training))
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="feat")
        yield client


def test_auto_counts_committed_curated_parquet_only(s3: Any, credit_fs: Any) -> None:
    root = f"curated/{credit_fs.name}"
    s3.put_object(Bucket="feat", Key=f"{root}/date=2026-01-01/u1.parquet", Body=b"x" * 300)
    s3.put_object(Bucket="feat", Key=f"{root}/date=2026-01-02/u2.parquet", Body=b"x" * 500)
    s3.put_object(Bucket="feat", Key=f"{root}/_pending/u2", Body=b"")  # u2 is committing: not counted
    assert curated_bytes(credit_fs, "feat", s3) == 300
    assert choose_join("auto", 300, credit_fs, "feat", s3) == (
        "athena",
        {"join": "auto", "chosen": "athena", "curated_bytes": 300, "join_auto_bytes": 300},
    )
    assert choose_join("auto", 301, credit_fs, "feat", s3)[0] == "in_process"
    assert choose_join("athena", 1, credit_fs, "feat", s3) == ("athena", {"join": "athena"})
    with pytest.raises(ValueError, match="in_process, athena or auto"):
        choose_join("spark", 1, credit_fs, "feat", s3)


def test_source_dispatches_to_the_chosen_builder(s3: Any, credit_fs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import driftline.features.athena_training_set as ats

    calls: list[dict[str, Any]] = []

    class Built:
        table = "T"

        def lineage(self) -> dict[str, Any]:
            return {"engine": "athena"}

    def fake(fs: Any, bucket: str, **kwargs: Any) -> Built:
        calls.append(kwargs)
        return Built()

    monkeypatch.setattr(ats, "build_training_set_athena", fake)
    clients = lambda service: s3 if service == "s3" else f"<{service}>"  # noqa: E731
    table, lineage = sources.from_feature_store(
        credit_fs, "feat", model="m", run_id="r1", join="athena", athena=("db", "wg"), clients=clients
    )
    assert (table, lineage) == ("T", {"engine": "athena", "join_decision": {"join": "athena"}})
    assert calls[0]["database"] == "db" and calls[0]["workgroup"] == "wg" and calls[0]["athena_client"] == "<athena>"
    assert calls[0]["output_key"] == sources.training_set_key("m", "r1")
    with pytest.raises(sources.TrainingDataError, match="no Athena workgroup configured"):
        sources.from_feature_store(credit_fs, "feat", model="m", run_id="r1", join="auto", athena=None)


def test_train_function_gets_athena_env_and_grants_only_when_a_model_joins_there() -> None:
    def train(training: dict[str, Any]) -> Any:
        ctx = _ctx(training)
        return next(f for f in build_platform(from_context(ctx)).functions if f.logical == "train")

    plain, athena = train({}), train({"join": "auto"})
    extra = {Grant("athena"), Grant("catalog"), Grant("bucket", "reports", "read_write", "athena-results/*")}
    assert not extra & set(plain.access)
    assert extra <= set(athena.access)
    assert {"ATHENA_WORKGROUP", "GLUE_DATABASE"} <= set(athena.env) - set(plain.env)
