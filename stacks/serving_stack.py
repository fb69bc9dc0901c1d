"""ServingStack: the HTTPS API (API Gateway REST → Lambda: the prediction routes and the IAM-only
approval route) and the capture streams."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, Duration, Size, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from driftline.config import CAPTURE_BUFFER_SECONDS
from driftline.contracts import capture_error_prefix
from driftline.platform import API_STAGE, ApiPolicy, Platform, api_policies, route_auth
from stacks.constructs import RETENTION, removal_policy
from stacks.functions import make_function
from stacks.resources import SharedResources


class ServingStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, shared: SharedResources, **kwargs: object) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]
        self.platform: Platform = shared.platform
        platform = self.platform
        cfg = platform.config.serving
        removal = removal_policy(platform)

        extra: dict[str, Any] = {}
        if cfg.reserved_concurrency:
            extra["reserved_concurrent_executions"] = cfg.reserved_concurrency
        if cfg.snap_start:
            extra["snap_start"] = lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS
        self.serve = make_function(self, shared, "serve", **extra)
        handler: lambda_.IFunction = self.serve.function
        if cfg.provisioned_concurrency or cfg.snap_start:
            # both apply to published versions only: the API invokes the 'live' alias of the current one
            alias = lambda_.Alias(
                self,
                "LiveAlias",
                alias_name="live",
                version=self.serve.function.current_version,
                provisioned_concurrent_executions=cfg.provisioned_concurrency or None,
            )
            handler = alias
            if cfg.snap_start:
                Annotations.of(self.serve.function).acknowledge_warning(
                    "@aws-cdk/aws-lambda:snapStartRequirePublish",
                    "the 'live' alias above publishes current_version, and the API invokes only that alias",
                )

        # One Firehose stream per model: captures land under captures/model=<name>/YYYY/MM/DD/HH/.
        self.streams: dict[str, firehose.DeliveryStream] = {}
        for stream in platform.streams:
            ds = firehose.DeliveryStream(
                self,
                f"Capture{stream.model.title().replace('-', '')}",
                delivery_stream_name=platform.name(stream.logical),
                encryption=firehose.StreamEncryption.customer_managed_key(shared.key),
                destination=firehose.S3Bucket(
                    shared.buckets["captures"],
                    data_output_prefix=stream.prefix,
                    error_output_prefix=capture_error_prefix(stream.model)
                    + "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/",
                    buffering_interval=Duration.seconds(CAPTURE_BUFFER_SECONDS),  # drift lateness covers it
                    buffering_size=Size.mebibytes(5),
                    compression=firehose.Compression.UNCOMPRESSED,
                    encryption_key=shared.key,
                    logging_config=firehose.EnableLogging(
                        logs.LogGroup(
                            self,
                            f"CaptureLogs{stream.model.title().replace('-', '')}",
                            retention=RETENTION[platform.config.log_retention_days],
                            removal_policy=removal,
                            encryption_key=shared.key,
                        )
                    ),
                ),
            )
            self.streams[stream.model] = ds

        access_logs = logs.LogGroup(
            self,
            "ApiAccessLogs",
            retention=RETENTION[platform.config.log_retention_days],
            removal_policy=removal,
            encryption_key=shared.key,
        )
        api_key_mode = cfg.auth == "api_key"
        cors = (
            apigw.CorsOptions(
                allow_origins=list(cfg.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=apigw.Cors.DEFAULT_HEADERS,
            )
            if cfg.cors_origins
            else None
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=platform.name("api"),
            description="Driftline prediction API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=removal,
            min_compression_size=None,
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE,
                throttling_rate_limit=cfg.throttle_rate,
                throttling_burst_limit=cfg.throttle_burst,
                method_options=_public_throttles(platform),
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        self.approve = make_function(self, shared, "approve")
        integrations = {
            "serve": apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False),
            "approve": apigw.LambdaIntegration(self.approve.function, proxy=True, allow_test_invoke=False),
        }
        for route in platform.routes:
            resource = self.api.root.resource_for_path(route.path)
            if route.static_response is not None:
                resource.add_method(
                    route.method,
                    _static_integration(route.static_response),
                    authorization_type=apigw.AuthorizationType.NONE,
                    method_responses=[apigw.MethodResponse(status_code="200")],
                )
                continue
            assert route.function is not None
            auth = route_auth(route, cfg.auth)  # the local gateway's --require-auth takes the same decision
            resource.add_method(
                route.method,
                integrations[route.function],
                authorization_type=apigw.AuthorizationType.IAM if auth == "IAM" else apigw.AuthorizationType.NONE,
                api_key_required=auth == "API_KEY",
                request_validator=validator,
            )
        if api_key_mode:
            plan = self.api.add_usage_plan(
                "UsagePlan",
                name=platform.name("usage-plan"),
                throttle=apigw.ThrottleSettings(rate_limit=cfg.throttle_rate, burst_limit=cfg.throttle_burst),
            )
            plan.add_api_stage(stage=self.api.deployment_stage)
            key = self.api.add_api_key("ApiKey", api_key_name=platform.name("client"))
            plan.add_api_key(key)

        client, approver = api_policies(platform.routes)  # the local emulator provisions the same two
        self.invoke_policy = self._invoke_policy("InvokePolicy", client)
        self.approve_policy = self._invoke_policy("ApprovePolicy", approver)

    def _invoke_policy(self, cid: str, policy: ApiPolicy) -> iam.ManagedPolicy:
        """A managed policy allowing ``execute-api:Invoke`` on exactly the policy's routes of the live stage."""
        statement = policy.statement(
            lambda method, path: self.api.arn_for_execute_api(method=method, path=path, stage=API_STAGE)
        )
        return iam.ManagedPolicy(
            self,
            cid,
            managed_policy_name=self.platform.name(policy.logical),
            description=policy.description,
            statements=[iam.PolicyStatement(actions=list(statement.actions), resources=list(statement.resources))],
        )


def _public_throttles(platform: Platform) -> dict[str, apigw.MethodDeploymentOptions]:
    """Stage method settings of the unauthenticated routes: their own, lower rate and burst, so an
    anonymous flood is refused by API Gateway before it reaches a function or the clients' allowance."""
    cfg = platform.config.serving
    return {
        f"{r.path}/{r.method}": apigw.MethodDeploymentOptions(
            throttling_rate_limit=cfg.public_throttle_rate,
            throttling_burst_limit=cfg.public_throttle_burst,
            # a method's settings replace the stage-wide ones for it: keep its metrics and error logs
            metrics_enabled=True,
            logging_level=apigw.MethodLoggingLevel.ERROR,
            data_trace_enabled=False,
        )
        for r in platform.routes
        if not r.authorized
    }


def _static_integration(body: str) -> apigw.MockIntegration:
    """API Gateway answers ``body`` with 200 itself (no Lambda invocation, no concurrency used)."""
    return apigw.MockIntegration(
        request_templates={"application/json": '{"statusCode": 200}'},
        passthrough_behavior=apigw.PassthroughBehavior.WHEN_NO_TEMPLATES,
        integration_responses=[
            apigw.IntegrationResponse(status_code="200", response_templates={"application/json": body})
        ],
    )
