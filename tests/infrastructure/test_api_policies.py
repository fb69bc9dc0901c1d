"""The deployed API's authorization and its client/approver policies come from the platform definition
(``route_auth``, ``api_policies``), the same definition the local gateway enforces with ``--require-auth``."""

from __future__ import annotations

from typing import Any

from driftline.local.gateway_auth import LOCAL_API_ID
from driftline.platform import API_STAGE, api_policies, execute_api_arn, route_auth, route_resource
from tests.infrastructure.conftest import Synth


def _suffix(resource: Any) -> str:
    """The literal tail of a synthesized execute-api ARN (``/live/POST/v1/models/*/predict``)."""
    parts = resource["Fn::Join"][1]
    assert isinstance(parts[-1], str)
    return str(parts[-1])


def test_managed_policies_are_the_definitions_and_the_local_ones_match(synth: Synth) -> None:
    platform = synth.platform
    deployed = {
        r["Properties"]["ManagedPolicyName"]: r["Properties"]
        for r in synth.resources("AWS::IAM::ManagedPolicy", "serving").values()
    }
    for policy in api_policies(platform.routes):
        assert policy.routes, policy.logical
        props = deployed[platform.name(policy.logical)]
        assert props["Description"] == policy.description
        (statement,) = props["PolicyDocument"]["Statement"]
        assert statement["Action"] == "execute-api:Invoke" and statement["Effect"] == "Allow"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        expected = {f"/{API_STAGE}/{r.method}{route_resource(r.path)}" for r in policy.routes}
        assert {_suffix(r) for r in resources} == expected
        local = policy.statement(lambda m, p: execute_api_arn("us-east-1", "123456789012", LOCAL_API_ID, m, p))
        prefix = f"arn:aws:execute-api:us-east-1:123456789012:{LOCAL_API_ID}"
        assert {r.removeprefix(prefix) for r in local.resources} == expected


def test_iam_methods_are_the_routes_route_auth_makes_iam(synth: Synth) -> None:
    methods = [
        r["Properties"]
        for r in synth.resources("AWS::ApiGateway::Method", "serving").values()
        if r["Properties"]["HttpMethod"] != "OPTIONS"
    ]
    auth = synth.platform.config.serving.auth
    decided = [route_auth(r, auth) for r in synth.platform.routes]
    assert sum(m["AuthorizationType"] == "AWS_IAM" for m in methods) == decided.count("IAM")
    assert sum(bool(m.get("ApiKeyRequired")) for m in methods) == decided.count("API_KEY")
    assert len(methods) == len(decided)
