"""SNS notifications from workflow steps (approval requests). Subjects stay under SNS's 100 characters."""

from __future__ import annotations

import json
from typing import Any

from driftline import aws


def publish(topic_arn: str, subject: str, message: dict[str, Any] | str) -> str:
    """Publish a message; dict messages are sent as indented JSON (e-mail subscribers read them)."""
    body = message if isinstance(message, str) else json.dumps(message, indent=2, default=str)
    resp = aws.client("sns").publish(TopicArn=topic_arn, Subject=subject[:100], Message=body)
    return str(resp["MessageId"])
