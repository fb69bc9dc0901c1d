"""Drift-check history in the control table: ``pk=DRIFT#<model>, sk=<window_end ISO>``.

One item per checked window: its verdict, the alarm streak (consecutive drifted windows) and where
the report is. The previous item gives the next window's start and the streak it continues.
Standard library and boto3 only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from driftline import aws
from driftline.contracts import drift_history_pk


@dataclass
class HistoryEntry:
    model: str
    window_start: str
    window_end: str
    version: int | None
    status: str
    share_drifted: float | None = None
    dataset_drifted: bool = False
    prediction_drifted: bool | None = None
    performance_degraded: bool = False
    performance_status: str = ""
    drifted: bool = False
    """This window counts as drifted (data, prediction or performance)."""
    streak: int = 0
    alarm: bool = False
    drifted_columns: list[str] = field(default_factory=list)
    n_current: int = 0
    report_uri: str = ""
    result_uri: str = ""
    checked_at: str = ""
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "version": self.version,
            "status": self.status,
            "share_drifted": self.share_drifted,
            "dataset_drifted": self.dataset_drifted,
            "prediction_drifted": self.prediction_drifted,
            "performance_degraded": self.performance_degraded,
            "performance_status": self.performance_status,
            "drifted": self.drifted,
            "streak": self.streak,
            "alarm": self.alarm,
            "drifted_columns": self.drifted_columns,
            "n_current": self.n_current,
            "report_uri": self.report_uri,
            "result_uri": self.result_uri,
            "checked_at": self.checked_at,
            "reasons": self.reasons,
        }


def _pk(model: str) -> str:
    return drift_history_pk(model)


class DriftHistory:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @classmethod
    def from_env(cls) -> DriftHistory:
        return cls(aws.env("CONTROL_TABLE"))

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def put(self, e: HistoryEntry) -> None:
        item: dict[str, Any] = {
            "pk": {"S": _pk(e.model)},
            "sk": {"S": e.window_end},
            "kind": {"S": "drift_check"},
            "window_start": {"S": e.window_start},
            "status": {"S": e.status},
            "dataset_drifted": {"BOOL": e.dataset_drifted},
            "performance_degraded": {"BOOL": e.performance_degraded},
            "performance_status": {"S": e.performance_status},
            "drifted": {"BOOL": e.drifted},
            "streak": {"N": str(e.streak)},
            "alarm": {"BOOL": e.alarm},
            "n_current": {"N": str(e.n_current)},
            "drifted_columns": {"S": json.dumps(e.drifted_columns)},
            "reasons": {"S": json.dumps(e.reasons)},
            "report_uri": {"S": e.report_uri},
            "result_uri": {"S": e.result_uri},
            "checked_at": {"S": e.checked_at},
        }
        if e.version is not None:
            item["version"] = {"N": str(e.version)}
        if e.share_drifted is not None:
            item["share_drifted"] = {"N": repr(float(e.share_drifted))}
        if e.prediction_drifted is not None:
            item["prediction_drifted"] = {"BOOL": e.prediction_drifted}
        self._ddb.put_item(TableName=self.table_name, Item=item)

    def previous(self, model: str, before: str) -> HistoryEntry | None:
        """The latest check whose window ended before ``before``."""
        resp = self._ddb.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk < :end",
            ExpressionAttributeValues={":pk": {"S": _pk(model)}, ":end": {"S": before}},
            ScanIndexForward=False,
            Limit=1,
        )
        items = resp.get("Items", [])
        return _entry(model, items[0]) if items else None

    def latest(self, model: str) -> HistoryEntry | None:
        recent = self.list(model, limit=1)
        return recent[0] if recent else None

    def list(self, model: str, limit: int = 24) -> list[HistoryEntry]:
        """Most recent first."""
        out: list[HistoryEntry] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _pk(model)}},
            "ScanIndexForward": False,
            "Limit": min(limit, 1000),
        }
        while len(out) < limit:
            resp = self._ddb.query(**kwargs)
            out += [_entry(model, it) for it in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return out[:limit]


def _entry(model: str, it: dict[str, Any]) -> HistoryEntry:
    def s(name: str) -> str:
        return str(it.get(name, {}).get("S", ""))

    def b(name: str) -> bool | None:
        v = it.get(name, {}).get("BOOL")
        return None if v is None else bool(v)

    def n(name: str) -> float | None:
        v = it.get(name, {}).get("N")
        return None if v is None else float(v)

    version = n("version")
    return HistoryEntry(
        model=model,
        window_start=s("window_start"),
        window_end=s("sk"),
        version=None if version is None else int(version),
        status=s("status"),
        share_drifted=n("share_drifted"),
        dataset_drifted=bool(b("dataset_drifted")),
        prediction_drifted=b("prediction_drifted"),
        performance_degraded=bool(b("performance_degraded")),
        performance_status=s("performance_status"),
        drifted=bool(b("drifted")),
        streak=int(n("streak") or 0),
        alarm=bool(b("alarm")),
        drifted_columns=json.loads(s("drifted_columns") or "[]"),
        n_current=int(n("n_current") or 0),
        report_uri=s("report_uri"),
        result_uri=s("result_uri"),
        checked_at=s("checked_at"),
        reasons=json.loads(s("reasons") or "[]"),
    )
