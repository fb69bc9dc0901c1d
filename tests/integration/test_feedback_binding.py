"""Feedback labels are bound to the caller who made the prediction (issue 16 item 13).

The real serving handler on moto records the caller API Gateway proved in each capture and each label;
the canary's readers then count a label only from that caller or a configured labeler, and the first
label that counts wins. A forged label from another principal changes no canary metric.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline import capture_format
from driftline.registry.artifacts import put_artifact
from driftline.registry.store import Registry
from driftline.retraining import canary, captures
from driftline.serving import reference_model
from driftline.serving.events import LocalContext, proxy_event

MODEL = "credit-default"
ALICE = "arn:aws:sts::123456789012:assumed-role/scoring-client/i-0abc"
ALICE_LATER = "arn:aws:sts::123456789012:assumed-role/scoring-client/i-0def"  # same role, another sandbox
MALLORY = "arn:aws:iam::123456789012:user/mallory"
LABELER = "arn:aws:iam::123456789012:role/labeling-team"
LABELER_SESSION = "arn:aws:sts::123456789012:assumed-role/labeling-team/bob"


class Client:
    """Calls the serve handler as API Gateway does after authenticating ``principal``."""

    def __init__(self, serve: Any) -> None:
        self.serve = serve

    def __call__(self, principal: str | None, path: str, body: Any, request_id: str | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", **({"X-Request-Id": request_id} if request_id else {})}
        event = proxy_event("POST", path, json.dumps(body), headers=headers)
        event["requestContext"]["identity"]["userArn"] = principal
        out = self.serve.handler(event, LocalContext())
        assert out["statusCode"] in (200, 202), out
        return json.loads(out["body"])  # type: ignore[no-any-return]


@pytest.fixture
def client(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, credit_fs: Any) -> Iterator[Client]:
    monkeypatch.setenv("CAPTURE_MODE", "sync")
    from lambdas import serve

    reg = Registry.from_env()
    schema = credit_fs.input_schema()
    v = reg.next_version(MODEL)
    onnx = reference_model.build(schema, seed=1)
    ref = put_artifact(aws["ARTIFACTS_BUCKET"], f"models/{MODEL}/v{v}/model.onnx", onnx)
    reg.register(
        MODEL,
        version=v,
        algorithm="reference",
        input_schema=schema,
        artifacts={"onnx": ref},
        metrics={"roc_auc": 0.7},
        feature_set="credit_default",
        feature_set_version=1,
    )
    reg.approve(MODEL, v, "tester", "ok")
    reg.promote(MODEL, v, "tester", "first champion")
    serve._State.service = None
    yield Client(serve)
    serve._State.service = None


def _label(client: Client, principal: str | None, request_id: str, label: int) -> None:
    client(principal, f"/v1/models/{MODEL}/feedback", {"labels": [{"request_id": request_id, "label": label}]})


def _champion_truth(aws: dict[str, str], labelers: tuple[str, ...] = ()) -> list[Any]:
    """The labels the canary evaluation would see for the champion's captured rows."""
    start, end = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1)
    records = captures.read_captures(aws["CAPTURES_BUCKET"], MODEL, start, end, {1})
    labels = captures.read_feedback(aws["CAPTURES_BUCKET"], MODEL, start, end, labelers=labelers)
    champ, _ = canary.summarize(records, labels, 1, 2, "binary_classification")
    return champ.truth


def test_captures_and_labels_carry_the_proved_caller(client: Client, aws: dict[str, str], credit_fs: Any) -> None:
    rows = reference_model.example_rows(credit_fs.input_schema(), 1, seed=0)
    client(ALICE, f"/v1/models/{MODEL}/predict", {"records": rows}, request_id="req-a")
    _label(client, ALICE, "req-a:0", 1)
    s3 = aws_mod.client("s3")
    objects = s3.list_objects_v2(Bucket=aws["CAPTURES_BUCKET"])["Contents"]
    lines = [
        json.loads(line)
        for o in objects
        for line in s3.get_object(Bucket=aws["CAPTURES_BUCKET"], Key=o["Key"])["Body"].read().splitlines()
    ]
    caps = [x for x in lines if "outputs" in x]  # one capture record for the request (v3: rows by column)
    assert [(x["request_id"], x["caller"], capture_format.captured_rows(x)) for x in caps] == [("req-a", ALICE, 1)]
    assert [(r["request_id"], r["caller"]) for r in capture_format.expand(caps[0]) or []] == [("req-a:0", ALICE)]
    assert [(x["request_id"], x["by"]) for x in lines if "label" in x] == [("req-a:0", ALICE)]


def test_a_forged_label_changes_no_canary_metric(client: Client, aws: dict[str, str], credit_fs: Any) -> None:
    rows = reference_model.example_rows(credit_fs.input_schema(), 1, seed=0)
    client(ALICE, f"/v1/models/{MODEL}/predict", {"records": rows}, request_id="req-a")
    _label(client, MALLORY, "req-a:0", 0)  # another client labels Alice's prediction: not counted
    assert _champion_truth(aws) == []
    _label(client, ALICE_LATER, "req-a:0", 1)  # the owner (same role, another session): counted
    _label(client, MALLORY, "req-a:0", 0)  # a later forged label changes nothing
    assert _champion_truth(aws) == [1]
    _label(client, ALICE, "req-a:0", 0)  # the owner's second label does not overwrite the first
    assert _champion_truth(aws) == [1]


def test_a_labelers_label_counts_for_anyones_prediction(client: Client, aws: dict[str, str], credit_fs: Any) -> None:
    rows = reference_model.example_rows(credit_fs.input_schema(), 1, seed=0)
    client(ALICE, f"/v1/models/{MODEL}/predict", {"records": rows}, request_id="req-b")
    _label(client, LABELER_SESSION, "req-b:0", 0)
    assert _champion_truth(aws) == []  # not configured as a labeler
    assert _champion_truth(aws, labelers=(LABELER,)) == [0]
