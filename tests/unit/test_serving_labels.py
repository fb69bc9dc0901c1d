"""Whose label counts (issue 16 item 13): the caller's own, or a configured labeler's; the first one wins."""

from __future__ import annotations

from typing import Any

from driftline.serving.labels import Labels, caller_of, principal_key

ROLE = "arn:aws:iam::123456789012:role/client"
SESSION = "arn:aws:sts::123456789012:assumed-role/client/sandbox-1"
OTHER = "arn:aws:iam::123456789012:user/mallory"


def book(*records: dict[str, Any], labelers: tuple[str, ...] = ()) -> Labels:
    out = Labels(labelers)
    for r in records:
        assert out.add({"request_id": "r", **r})
    return out


def test_caller_is_what_api_gateway_proved() -> None:
    assert caller_of({"identity": {"userArn": SESSION, "apiKeyId": None}}) == SESSION
    assert caller_of({"identity": {"userArn": None, "apiKeyId": "a1b2c3d4e5"}}) == "a1b2c3d4e5"
    assert caller_of({"identity": {"sourceIp": "1.2.3.4"}}) is None
    assert caller_of(None) is None and caller_of({"identity": "x"}) is None
    assert principal_key(SESSION) == ROLE and principal_key(OTHER) == OTHER


def test_the_first_label_that_counts_wins_whatever_the_read_order() -> None:
    labels = book(
        {"label": 0, "by": OTHER, "ts": "2026-01-01T00:00:01"},
        {"label": 1, "by": SESSION, "ts": "2026-01-01T00:00:03"},
        {"label": 2, "by": ROLE, "ts": "2026-01-01T00:00:02"},
    )
    assert labels.for_capture("r", SESSION) == (True, 2)  # the owner's earliest; mallory's earlier one ignored
    assert labels.for_capture("r", "arn:aws:iam::123456789012:role/someone-else") == (False, None)
    assert labels.ignored == 1


def test_labelers_label_anyones_prediction_and_unauthenticated_labels_only_unauthenticated_ones() -> None:
    labels = book({"label": 1, "by": SESSION, "ts": "1"}, labelers=("arn:aws:iam::123456789012:role/client",))
    assert labels.for_capture("r", OTHER) == (True, 1)
    anonymous = book({"label": 1, "ts": "1"})
    assert anonymous.for_capture("r", None) == (True, 1)
    assert anonymous.for_capture("r", ROLE) == (False, None)
    assert not Labels().add({"request_id": 3, "label": 1}) and not Labels().add({"request_id": "r"})
