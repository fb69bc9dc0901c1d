"""The OpenAPI 3.1 documents of the endpoint, with request schemas generated from input schemas.

The unauthenticated ``GET /openapi.json`` is the generic document: the templated paths and the
generic shapes, no model names, features, ranges or classes. A model's own document (the
authenticated ``GET /v1/models/<name>/openapi.json``) adds concrete paths (``/v1/models/<name>/predict``
...) whose request body schema is derived from its champion's ``input_schema`` (the feature set
definition): types, ranges, category enums, nullability, required fields. JSON Schema 2020-12
(OpenAPI 3.1), so ``null`` is a type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from driftline.contracts import TEST_TRAFFIC_HEADER
from driftline.features.encoding import MODEL_INPUT_TYPES
from driftline.serving.feedback import MAX_FEEDBACK_LABELS


def _nullable(schema: dict[str, Any], nullable: bool) -> dict[str, Any]:
    if not nullable:
        return schema
    if "enum" in schema:
        return {**schema, "type": [schema["type"], "null"], "enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


def field_schema(f: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema of one feature value."""
    ftype = f["type"]
    out: dict[str, Any]
    if ftype in ("int", "float"):
        out = {"type": "integer" if ftype == "int" else "number"}
        if f.get("min") is not None:
            out["minimum"] = f["min"]
        if f.get("max") is not None:
            out["maximum"] = f["max"]
    elif ftype == "bool":
        out = {"type": "boolean"}
    elif ftype == "categorical":
        out = {"type": "string", "enum": list(f.get("categories") or ())}
    elif ftype == "timestamp":
        out = {"type": "string", "format": "date-time"}
    else:
        out = {"type": "string"}
    out = _nullable(out, bool(f.get("nullable", True)))
    if f.get("request_time"):
        out["description"] = "request-time feature: supplied by the caller, never read from the online store"
    return out


def record_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A full record: every model feature required (null where nullable), nothing else allowed."""
    feats = schema["features"]
    return {
        "type": "object",
        "properties": {f["name"]: field_schema(f) for f in feats},
        "required": [f["name"] for f in feats if f["type"] in MODEL_INPUT_TYPES],
        "additionalProperties": False,
    }


def features_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Any subset of the features (request-time values and overrides)."""
    return {
        "type": "object",
        "properties": {f["name"]: field_schema(f) for f in schema["features"]},
        "additionalProperties": False,
    }


def entity_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    entity = list(schema.get("entity") or ())
    key = {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
    obj = {
        "type": "object",
        "properties": {**{e: key for e in entity}, **{f["name"]: field_schema(f) for f in schema["features"]}},
        "required": entity,
        "additionalProperties": False,
        "description": "entity key column(s) plus optional feature values that override the stored ones",
    }
    return {"oneOf": [key, obj]} if len(entity) == 1 else obj


def predict_request_schema(schema: Mapping[str, Any] | None, max_rows: int) -> dict[str, Any]:
    record = record_schema(schema) if schema else {"type": "object"}
    entity = entity_schema(schema) if schema else {}
    feats = features_schema(schema) if schema else {"type": "object"}
    return {
        "oneOf": [
            {
                "type": "object",
                "title": "records",
                "required": ["records"],
                "additionalProperties": False,
                "properties": {"records": {"type": "array", "minItems": 1, "maxItems": max_rows, "items": record}},
            },
            {
                "type": "object",
                "title": "entities",
                "required": ["entities"],
                "additionalProperties": False,
                "properties": {
                    "entities": {"type": "array", "minItems": 1, "maxItems": max_rows, "items": entity},
                    "features": feats,
                },
            },
        ]
    }


_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "row": {"type": "integer"},
                            "field": {"type": ["string", "null"]},
                            "expected": {"type": "string"},
                            "got": {"type": "string"},
                            "message": {"type": "string"},
                            "source": {"type": "string"},
                        },
                    },
                },
                "details_truncated": {"type": "integer"},
            },
        },
        "request_id": {"type": "string"},
    },
}

_PREDICTION = {
    "type": "object",
    "required": ["request_id", "version"],
    "properties": {
        "request_id": {"type": "string", "description": "use it to send the observed label to /feedback"},
        "version": {"type": "integer", "description": "the model version that answered this row"},
        "label": {"description": "predicted class (classification)"},
        "probability": {
            "type": "number",
            "description": "positive-class probability (binary) or the predicted class's probability (multiclass)",
        },
        "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
        "value": {"type": "number", "description": "predicted value (regression)"},
    },
}

_PREDICT_RESPONSE = {
    "type": "object",
    "required": ["model", "request_id", "predictions"],
    "properties": {
        "model": {"type": "string"},
        "request_id": {"type": "string"},
        "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
    },
}

_FEEDBACK_REQUEST = {
    "type": "object",
    "required": ["labels"],
    "additionalProperties": False,
    "properties": {
        "labels": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_FEEDBACK_LABELS,
            "items": {
                "type": "object",
                "required": ["request_id", "label"],
                "additionalProperties": False,
                "properties": {"request_id": {"type": "string", "minLength": 1, "maxLength": 256}, "label": {}},
            },
        }
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "malformed request",
        404: "unknown model, entity or route",
        405: "method not allowed",
        413: "body or row count too large",
        415: "Content-Type is not JSON",
        422: "invalid rows or fields (one detail per problem)",
        503: "no champion, or it cannot serve",
    }
    return {
        str(c): {
            "description": text[c],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for c in codes
    }


def _json_body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _ok(ref: str | dict[str, Any], code: str = "200", description: str = "OK") -> dict[str, Any]:
    schema = {"$ref": ref} if isinstance(ref, str) else ref
    return {code: {"description": description, "content": {"application/json": {"schema": schema}}}}


def _component(model: str) -> str:
    return "".join(p.capitalize() for p in re.split(r"[-_]", model) if p)


def _model_paths(prefix: str, model_param: bool, req_ref: str, tag: str) -> dict[str, Any]:
    param = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
    params = [param] if model_param else []
    rid = {
        "name": "X-Request-Id",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
        "description": "your id for this request; rows get '<id>:<row>' and canary routing is sticky per id",
    }
    test = {
        "name": TEST_TRAFFIC_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["1", "true", "0", "false"]},
        "description": "1 or true marks the request as test traffic: answered as usual and captured with the "
        "mark, but left out of drift monitoring, canary evaluation and training (letter case is ignored; "
        "another value is a 400)",
    }
    return {
        f"{prefix}/predict": {
            "post": {
                "tags": [tag],
                "summary": "Predict 1..MAX_ROWS rows",
                "parameters": [*params, rid, test],
                "requestBody": _json_body(req_ref),
                "responses": {**_ok("#/components/schemas/PredictResponse"), **_errors(400, 404, 413, 415, 422, 503)},
            }
        },
        prefix: {
            "get": {
                "tags": [tag],
                "summary": "Champion, challenger, input schema, metrics and traffic policy",
                "parameters": params,
                "responses": {**_ok({"type": "object"}), **_errors(404)},
            }
        },
        f"{prefix}/openapi.json": {
            "get": {
                "tags": [tag],
                "summary": "This API's document with the model's own request schema",
                "parameters": params,
                "responses": {**_ok({"type": "object"}), **_errors(404)},
            }
        },
        f"{prefix}/feedback": {
            "post": {
                "tags": [tag],
                "summary": "Observed labels by prediction request id",
                "parameters": params,
                "requestBody": _json_body("#/components/schemas/FeedbackRequest"),
                "responses": {**_ok({"type": "object"}, "202", "stored"), **_errors(400, 404, 413, 415, 422)},
            }
        },
    }


def build_document(
    models: Sequence[tuple[str, Mapping[str, Any]]], *, max_rows: int, server_url: str | None = None, version: str = "1"
) -> dict[str, Any]:
    """The OpenAPI document for ``models`` (name, champion input schema); no models: the generic one."""
    schemas: dict[str, Any] = {
        "Error": _ERROR,
        "Prediction": _PREDICTION,
        "PredictResponse": _PREDICT_RESPONSE,
        "FeedbackRequest": _FEEDBACK_REQUEST,
        "PredictRequest": predict_request_schema(None, max_rows),
    }
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "tags": ["service"],
                "summary": "Liveness (answered by API Gateway itself)",
                "security": [],
                "responses": _ok({"type": "object"}),
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["service"],
                "summary": "The generic document: no model details",
                "security": [],
                "responses": _ok({"type": "object"}),
            }
        },
        **_model_paths("/v1/models/{model}", True, "#/components/schemas/PredictRequest", "any model"),
    }
    for name, schema in models:
        comp = _component(name)
        schemas[f"{comp}Record"] = record_schema(schema)
        schemas[f"{comp}PredictRequest"] = predict_request_schema(schema, max_rows)
        paths.update(_model_paths(f"/v1/models/{name}", False, f"#/components/schemas/{comp}PredictRequest", name))
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Driftline prediction API",
            "version": version,
            "description": "Predictions from each model's champion (ONNX Runtime), feedback labels for "
            "monitoring. A model's request schema comes from the feature set its champion "
            "was trained on: GET /v1/models/{model}/openapi.json (authorized) has it.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS Signature Version 4 (service 'execute-api'); the default",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                },
                "api_key": {
                    "type": "apiKey",
                    "name": "x-api-key",
                    "in": "header",
                    "description": "API key with a usage plan (when serving.auth is 'api_key')",
                },
            },
        },
        "security": [{"sigv4": []}, {"api_key": []}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
