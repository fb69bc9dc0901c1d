"""The endpoint's operations, independent of Lambda: predict, describe, feedback, OpenAPI.

``lambdas/serve.py`` only routes HTTP requests here and turns results and :class:`ServingError` into
responses. Everything a request touches after the first one is in memory: the champion's aliases
(TTL), its ONNX Runtime session and validator, and the capture buffer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from driftline import aws
from driftline.capture_format import request_record
from driftline.contracts import TEST_TRAFFIC_HEADER
from driftline.registry.store import Registry
from driftline.serving.body import DEFAULT_MAX_BODY_BYTES, json_body_text, parse_json_body, parse_json_text
from driftline.serving.capture import DEFAULT_LINGER_S, CaptureWriter, FirehoseSink
from driftline.serving.deployments import Deployment, DeploymentCache
from driftline.serving.entities import EntityLookup, default_lookup
from driftline.serving.errors import ServingError, bad_request, not_found, unavailable
from driftline.serving.feedback import check_labels, store_feedback
from driftline.serving.model import LoadedModel
from driftline.serving.openapi import build_document
from driftline.serving.request import EntityRows, assemble_entity_rows, parse_predict
from driftline.serving.traffic import canary_rows, sampled
from driftline.serving.typed_records import row_dict
from driftline.serving.validation import ValidatedRows

log = logging.getLogger(__name__)

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
OPENAPI_CACHE_S = 60.0


def _env_number(name: str, default: float, lo: float, hi: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise RuntimeError(f"environment variable {name}={raw!r} must be between {lo} and {hi}")
    return value


@dataclass(frozen=True)
class Settings:
    max_rows: int = 1000
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    champion_ttl_s: float = 5.0
    capture_sampling: float = 1.0
    capture_mode: str = "background"
    capture_linger_s: float = DEFAULT_LINGER_S

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            max_rows=int(_env_number("MAX_ROWS", 1000, 1, 10_000)),
            max_body_bytes=int(_env_number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024, 6 * 1024 * 1024)),
            champion_ttl_s=_env_number("CHAMPION_TTL_SECONDS", 5.0, 0.0, 3600.0),
            capture_sampling=_env_number("CAPTURE_SAMPLING", 1.0, 0.0, 1.0),
            capture_mode=os.environ.get("CAPTURE_MODE", "background") or "background",
            capture_linger_s=_env_number("CAPTURE_LINGER_SECONDS", DEFAULT_LINGER_S, 0.0, 60.0),
        )


@dataclass
class VersionStats:
    """What one version did in one request (becomes per model/version metrics)."""

    role: str
    rows: int = 0
    latency_ms: float = 0.0


@dataclass
class Outcome:
    """Side information about a handled request for metrics and logs."""

    model: str | None = None
    primary: int | None = None
    """The champion version that judged the request (set once it is known, also for 4xx)."""
    versions: dict[int, VersionStats] = field(default_factory=dict)
    challenger_errors: int = 0


@dataclass
class _Batch:
    """One predict request in flight: row ids, answers and capture records being built."""

    request_id: str
    row_ids: list[str]
    answers: list[dict[str, Any]]
    records: list[dict[str, Any]]
    keep: list[bool]
    """Which rows the capture sample keeps (sticky per row id)."""
    ts: datetime
    """Formatted once per request by the capture thread (ISO 8601 with ``+00:00``), not on the request path."""
    t0: float
    outcome: Outcome
    caller: str | None
    """Recorded with the capture so a label binds to its prediction; None when unauthenticated."""
    test: bool = False
    """Test traffic: captured with the mark, so monitoring, canaries and training leave it out."""

    def capture(
        self, m: LoadedModel, role: str, rows: list[Any], idx: list[int] | None, outputs: list[Any], latency_ms: float
    ) -> None:
        """One capture record for this role (format v2, :mod:`driftline.capture_format`): the rows at
        positions ``idx`` (None: every row, ``rows`` given in request order) that the sample keeps."""
        keep = self.keep
        if idx is None and all(keep):
            index = None
        else:
            positions = range(len(outputs)) if idx is None else idx
            sel = [k for k, i in enumerate(positions) if keep[i]]
            if not sel:
                return
            index = [positions[k] for k in sel]
            rows, outputs = [rows[k] for k in sel], [outputs[k] for k in sel]
        self.records.append(
            request_record(
                request_id=self.request_id,
                model=m.model,
                version=m.version,
                role=role,
                ts=self.ts,
                latency_ms=latency_ms,
                rows=rows,
                outputs=outputs,
                index=index,
                caller=self.caller,
                test=self.test,
            )
        )


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an HTTP request the operations need."""

    body: str | None
    content_type: str | None
    is_base64: bool
    request_id: str
    caller: str | None = None
    """Who API Gateway authenticated; recorded with captures and labels so a label binds to its prediction."""
    test: bool = False
    """Marked as test traffic by the ``X-Driftline-Test`` header (:func:`is_test_traffic`)."""


_TEST_TRAFFIC_VALUES = {"1": True, "true": True, "0": False, "false": False}
"""The values the test-traffic header takes (any letter case); anything else is refused, so a typo never
lets test requests into monitoring unmarked."""


def is_test_traffic(header: str | None) -> bool:
    """Whether the ``X-Driftline-Test`` header marks the request as test traffic (400 for another value)."""
    if header is None:
        return False
    value = _TEST_TRAFFIC_VALUES.get(header.strip().lower())
    if value is None:
        shown = header if len(header) <= 40 else header[:40] + "..."
        raise bad_request(
            f"header {TEST_TRAFFIC_HEADER} must be 1 or true (test traffic: answered, captured with the mark and "
            f"left out of monitoring, canary evaluation and training) or 0 or false, got {shown!r}",
            code="invalid_test_header",
        )
    return value


def request_id_from(header: str | None, fallback: str | None) -> str:
    """The client's X-Request-Id if valid (400 if malformed), else the gateway's id, else a uuid."""
    if header is not None:
        if not REQUEST_ID_RE.match(header):
            raise bad_request(
                "header X-Request-Id must be 1-128 characters of letters, digits and ._:-", code="invalid_request_id"
            )
        return header
    return fallback or uuid.uuid4().hex


class PredictionService:
    def __init__(
        self,
        registry: Registry,
        deployments: DeploymentCache,
        capture: CaptureWriter,
        *,
        entities: Callable[[], EntityLookup],
        captures_bucket: str,
        settings: Settings,
    ) -> None:
        self.registry = registry
        self.deployments = deployments
        self.capture = capture
        self._entities_factory = entities
        self._entities: EntityLookup | None = None
        self.captures_bucket = captures_bucket
        self.settings = settings
        self.started = time.time()
        self._openapi_cache: dict[tuple[str | None, str | None], tuple[float, dict[str, Any]]] = {}
        self._public_openapi: dict[str | None, dict[str, Any]] = {}

    @classmethod
    def from_env(cls) -> PredictionService:
        settings = Settings.from_env()
        registry = Registry.from_env()
        capture = CaptureWriter(
            FirehoseSink(aws.env("CAPTURE_STREAM_PREFIX")),
            mode=settings.capture_mode,
            linger_s=settings.capture_linger_s,
        )
        return cls(
            registry,
            DeploymentCache(registry, settings.champion_ttl_s),
            capture,
            entities=default_lookup,
            captures_bucket=aws.env("CAPTURES_BUCKET"),
            settings=settings,
        )

    @property
    def entities(self) -> EntityLookup:
        """The online store reader, built on the first entity request (records-only traffic never pays)."""
        if self._entities is None:
            self._entities = self._entities_factory()
        return self._entities

    # ------------------------------------------------------------------ predict
    def predict(self, model: str, req: HttpRequest, outcome: Outcome) -> dict[str, Any]:
        t0 = time.perf_counter()
        text = json_body_text(
            req.body, content_type=req.content_type, is_base64=req.is_base64, max_bytes=self.settings.max_body_bytes
        )
        try:
            dep = self.deployments.deployment(model)
        except ServingError:
            parse_json_text(text)  # a malformed body is reported first (400), before 404/503
            raise
        outcome.model = model
        champ = dep.champion
        outcome.primary = champ.version
        valid = champ.typed.decode(text, self.settings.max_rows) if champ.typed is not None else None
        if valid is None:  # anything the typed fast path refuses: parsed and judged in full
            parsed = parse_predict(parse_json_text(text), champ.validator, self.settings.max_rows)
            if parsed.records is not None:
                rows, origins = parsed.records, None
            else:
                assert parsed.entities is not None
                rows, origins = self._entity_rows(champ, parsed.entities)
            valid = champ.validator.validate(rows, origins=origins)
        n = len(valid.rows)
        row_ids = [f"{req.request_id}:{i}" for i in range(n)]
        batch = _Batch(
            request_id=req.request_id,
            row_ids=row_ids,
            answers=[{}] * n,
            records=[],
            t0=t0,
            outcome=outcome,
            keep=sampled(row_ids, self.settings.capture_sampling),
            ts=datetime.now(UTC),
            caller=req.caller or None,
            test=req.test,
        )
        chall, chall_valid = self._challenger_input(dep, valid, outcome)
        routed = canary_rows(row_ids, dep.percent) if dep.mode == "canary" and chall else [False] * n
        self._answer(batch, champ, "champion", valid, [i for i in range(n) if not routed[i]])
        if chall is not None and chall_valid is not None:
            self._answer(batch, chall, "challenger", chall_valid, [i for i in range(n) if routed[i]])
            if dep.mode == "shadow":
                self._shadow(batch, chall, chall_valid)
        if batch.records:
            self.capture.submit(batch.records)
        return {"model": model, "request_id": req.request_id, "predictions": batch.answers}

    def _entity_rows(self, champ: LoadedModel, ents: EntityRows) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        fs = str(champ.schema.get("feature_set") or "")
        try:
            stored = self.entities.get_many(fs, ents.keys)
        except Exception as e:
            log.error("online store lookup failed: %s", e)
            raise unavailable(
                f"the online store cannot be read right now ({type(e).__name__}); retry shortly or send 'records'",
                code="online_store_unavailable",
                retry_after_s=1,
            ) from None
        missing = [i for i, k in enumerate(ents.keys) if stored.get(k) is None]
        if missing:
            details = [
                {
                    "row": i,
                    "field": None,
                    "entity": ents.keys[i],
                    "message": f"row {i}: entity {ents.keys[i]!r} has no features in the online store "
                    f"(feature set {fs!r})",
                }
                for i in missing
            ]
            raise ServingError(
                404,
                "unknown_entity",
                f"{len(missing)} entity id(s) not found in the online store; send their features as 'records' instead",
                details=details,
            )
        return assemble_entity_rows(ents, stored, champ.validator)

    def _challenger_input(
        self, dep: Deployment, valid: ValidatedRows, outcome: Outcome
    ) -> tuple[LoadedModel | None, ValidatedRows | None]:
        chall = dep.challenger
        if chall is None:
            return None, None
        if chall.validator.schema == dep.champion.validator.schema:
            return chall, valid
        try:  # a challenger on a newer feature set version: judge the rows by its own schema
            return chall, chall.validator.validate([row_dict(r) for r in valid.rows])
        except ServingError as e:
            outcome.challenger_errors += 1
            log.warning("challenger %s v%s skipped for this request: %s", chall.model, chall.version, e.message)
            return None, None

    @staticmethod
    def _answer(batch: _Batch, m: LoadedModel, role: str, valid: ValidatedRows, idx: list[int]) -> None:
        if not idx:
            return
        X = valid.X if len(idx) == len(batch.row_ids) else np.ascontiguousarray(valid.X[idx])
        preds = m.predictions(m.run(X))
        latency_ms = round((time.perf_counter() - batch.t0) * 1000.0, 3)
        version, row_ids, answers = m.version, batch.row_ids, batch.answers
        for i, p in zip(idx, preds, strict=True):
            answers[i] = {"request_id": row_ids[i], "version": version, **p}
        if len(idx) == len(row_ids):
            batch.capture(m, role, valid.rows, None, preds, latency_ms)
        else:
            batch.capture(m, role, [valid.rows[i] for i in idx], idx, preds, latency_ms)
        stats = batch.outcome.versions.setdefault(version, VersionStats(role))
        stats.rows += len(idx)
        stats.latency_ms = latency_ms

    @staticmethod
    def _shadow(batch: _Batch, m: LoadedModel, valid: ValidatedRows) -> None:
        try:
            preds = m.predictions(m.run(valid.X))
        except Exception as e:  # a shadow model must never break the answer
            batch.outcome.challenger_errors += 1
            log.warning("shadow %s v%s failed: %s", m.model, m.version, e)
            return
        latency_ms = round((time.perf_counter() - batch.t0) * 1000.0, 3)
        batch.capture(m, "shadow", valid.rows, None, preds, latency_ms)
        stats = batch.outcome.versions.setdefault(m.version, VersionStats("shadow"))
        stats.rows += len(preds)
        stats.latency_ms = latency_ms

    # ------------------------------------------------------------------ describe
    def describe(self, model: str, outcome: Outcome) -> dict[str, Any]:
        aliases = self.deployments.aliases(model)
        outcome.model = model
        out: dict[str, Any] = {
            "model": model,
            "champion": None,
            "challenger": None,
            "traffic": aliases.traffic,
            "revision": aliases.revision,
            "updated_at": aliases.updated_at,
        }
        for role in ("champion", "challenger"):
            v = getattr(aliases, role)
            if v is None:
                continue
            try:
                info = self.deployments.version_info(model, v)
            except Exception as e:
                out[role] = {"version": v, "error": f"version details unavailable ({type(e).__name__})"}
                continue
            out[role] = {
                "version": v,
                "status": info.status,
                "created_at": info.created_at,
                "algorithm": info.algorithm,
                "metrics": info.metrics,
                "feature_set": info.feature_set,
                "feature_set_version": info.feature_set_version,
                "input_schema": info.input_schema,
            }
        if aliases.champion is None:
            out["serving"] = "no champion yet: predictions answer 503 until a version is promoted"
        return out

    # ------------------------------------------------------------------ feedback
    def feedback(self, model: str, req: HttpRequest, outcome: Outcome) -> dict[str, Any]:
        body = parse_json_body(
            req.body, content_type=req.content_type, is_base64=req.is_base64, max_bytes=self.settings.max_body_bytes
        )
        aliases = self.deployments.aliases(model)
        outcome.model = model
        label_spec = None
        if aliases.champion is not None:
            try:
                label_spec = self.deployments.version_info(model, aliases.champion).input_schema.get("label")
            except Exception as e:
                log.warning("label definition of %s unavailable, checking labels loosely: %s", model, e)
        labels = check_labels(body, label_spec)
        try:
            uri = store_feedback(self.captures_bucket, model, labels, by=req.caller)
        except Exception as e:
            log.error("feedback for %s could not be stored: %s", model, e)
            raise unavailable(
                f"the labels could not be stored right now ({type(e).__name__}); retry the same request",
                code="feedback_unavailable",
                retry_after_s=1,
            ) from None
        return {"model": model, "accepted": len(labels), "object": uri}

    # ------------------------------------------------------------------ warm-up
    def warm_up(self) -> dict[str, Any]:
        """Load every registered model's champion and create the clients now.

        For provisioned concurrency and SnapStart, whose initialization happens before any request:
        the first request then runs on the warm path. Failures are reported, never raised (a broken
        model must not prevent the others from serving).
        """
        loaded, failed = [], {}
        try:
            names = self.registry.list_models()
        except Exception as e:
            return {"loaded": [], "failed": {"*": f"cannot list models: {type(e).__name__}"}}
        for name in names:
            try:
                self.deployments.deployment(name)
                loaded.append(name)
            except ServingError as e:
                failed[name] = e.message
        with contextlib.suppress(Exception):
            aws.client("firehose")
        return {"loaded": loaded, "failed": failed}

    # ------------------------------------------------------------------ openapi
    def openapi(self, server_url: str | None) -> dict[str, Any]:
        """The unauthenticated document: the generic routes and body shapes, no model names, features,
        ranges or classes (those are for authenticated callers, :meth:`model_openapi`). It needs no AWS
        call, so an anonymous caller costs no Scan and learns nothing about the models; one copy per
        server URL."""
        doc = self._public_openapi.get(server_url)
        if doc is None:
            if len(self._public_openapi) >= 32:  # keys come from the Host header
                self._public_openapi.clear()
            doc = build_document([], max_rows=self.settings.max_rows, server_url=server_url)
            self._public_openapi[server_url] = doc
        return doc

    def model_openapi(self, model: str, server_url: str | None, outcome: Outcome) -> dict[str, Any]:
        """One model's document (an authenticated route): its concrete paths, with the request schema
        generated from its champion's input schema. Cached for ``OPENAPI_CACHE_S``."""
        outcome.model = model
        key = (server_url, model)
        now = time.monotonic()
        hit = self._openapi_cache.get(key)
        if hit is not None and now - hit[0] < OPENAPI_CACHE_S:
            return hit[1]
        aliases = self.deployments.aliases(model)  # 404 for an unknown model
        models: list[tuple[str, Mapping[str, Any]]] = []
        if aliases.champion is not None:
            try:
                models.append((model, self.deployments.version_info(model, aliases.champion).input_schema))
            except Exception as e:
                log.warning("model %s has no request schema in its OpenAPI document: %s", model, e)
        doc = build_document(models, max_rows=self.settings.max_rows, server_url=server_url)
        if len(self._openapi_cache) >= 32:  # keys come from the Host header and the path
            self._openapi_cache.clear()
        self._openapi_cache[key] = (now, doc)
        return doc


def unknown_route(method: str, path: str, allowed: list[str]) -> ServingError:
    if allowed:
        return ServingError(
            405,
            "method_not_allowed",
            f"{method} is not allowed on {path}; use {' or '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    return not_found(f"no route {method} {path}; see /openapi.json for the API", code="unknown_route")
