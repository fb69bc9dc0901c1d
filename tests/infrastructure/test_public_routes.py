"""The unauthenticated routes: their own stage throttle, and /health answered by API Gateway itself."""

from __future__ import annotations

import json

from tests.infrastructure.conftest import Synth


def _public_paths(synth: Synth) -> set[tuple[str, str]]:
    return {(r.method, r.path) for r in synth.platform.routes if not r.authorized}


def test_unauthenticated_routes_have_their_own_low_throttle(synth: Synth) -> None:
    cfg = synth.platform.config.serving
    assert cfg.public_throttle_rate < cfg.throttle_rate and cfg.public_throttle_burst < cfg.throttle_burst
    (stage,) = synth.resources("AWS::ApiGateway::Stage", "serving").values()
    # ResourcePath is "/" + the resource path with its slashes as "~1" ("/*" for every method)
    settings = {
        (s["HttpMethod"], s["ResourcePath"][1:].replace("~1", "/")): s for s in stage["Properties"]["MethodSettings"]
    }
    for method, path in _public_paths(synth):
        own = settings[(method, path)]
        assert (own["ThrottlingRateLimit"], own["ThrottlingBurstLimit"]) == (
            cfg.public_throttle_rate,
            cfg.public_throttle_burst,
        )
        assert own["MetricsEnabled"] is True and own["LoggingLevel"] == "ERROR"
    default = settings[("*", "*")]
    assert (default["ThrottlingRateLimit"], default["ThrottlingBurstLimit"]) == (cfg.throttle_rate, cfg.throttle_burst)
    assert len(settings) == 1 + len(_public_paths(synth))  # no authorized route is slowed down


def test_health_is_a_mock_integration_with_no_function_behind_it(synth: Synth) -> None:
    health = next(r for r in synth.platform.routes if r.path == "/health")
    assert health.function is None and not health.authorized
    template = synth.templates["serving"]
    resources = {lid: r for lid, r in template["Resources"].items() if r["Type"] == "AWS::ApiGateway::Resource"}
    health_id = next(lid for lid, r in resources.items() if r["Properties"]["PathPart"] == "health")
    (method,) = [
        r
        for r in synth.resources("AWS::ApiGateway::Method", "serving").values()
        if r["Properties"]["ResourceId"] == {"Ref": health_id}
    ]
    integration = method["Properties"]["Integration"]
    assert integration["Type"] == "MOCK" and "Uri" not in integration
    (response,) = integration["IntegrationResponses"]
    assert json.loads(response["ResponseTemplates"]["application/json"]) == json.loads(health.static_response or "")
    # no Lambda permission names the /health path: API Gateway never invokes a function for it
    permissions = synth.resources("AWS::Lambda::Permission", "serving").values()
    assert not [p for p in permissions if "/health" in json.dumps(p["Properties"].get("SourceArn", ""))]
