"""The per-environment CloudWatch dashboard and the alarms that page through the alerts topic.

Everything is addressed by the physical names the platform definition derives (API name, function
names, queue names, state machine name), so this construct needs no cross-stack references.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from driftline.contracts import METRICS_NAMESPACE
from driftline.platform import API_STAGE, Platform

NAMESPACE = METRICS_NAMESPACE
FIVE_MIN = Duration.minutes(5)
# Driftline's own metric names (EMF via Powertools; dimensions include service, model, version).
SERVING_METRICS = ("Requests", "LatencyMs", "Rows", "Errors", "CaptureFailures")
DRIFT_METRICS = ("ShareDrifted", "DriftScore", "ColumnDrift", "Performance_<metric>", "MonitoredVersion")
INGEST_METRICS = ("RowsAccepted", "RowsRejected", "FilesQuarantined")


def _search(metric: str, stat: str, label: str, period: Duration = FIVE_MIN) -> cw.MathExpression:
    return cw.MathExpression(
        expression=f"SEARCH('{{{NAMESPACE}}} MetricName=\"{metric}\"', '{stat}', {int(period.to_seconds())})",
        label=label,
        period=period,
        using_metrics={},
    )


class Observability(Construct):
    def __init__(self, scope: Construct, cid: str, *, platform: Platform, alerts: sns.ITopic) -> None:
        super().__init__(scope, cid)
        stack = Stack.of(self)
        action = cw_actions.SnsAction(alerts)
        api = {"ApiName": platform.name("api"), "Stage": API_STAGE}

        def api_metric(name: str, stat: str) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/ApiGateway", metric_name=name, dimensions_map=api, statistic=stat, period=FIVE_MIN
            )

        def fn_metric(fn: str, name: str, stat: str = "Sum") -> cw.Metric:
            return cw.Metric(
                namespace="AWS/Lambda",
                metric_name=name,
                statistic=stat,
                period=FIVE_MIN,
                dimensions_map={"FunctionName": platform.name(fn)},
            )

        sm_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=platform.name("retrain"),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

        def sm_metric(name: str) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/States",
                metric_name=name,
                statistic="Sum",
                period=FIVE_MIN,
                dimensions_map={"StateMachineArn": sm_arn},
            )

        self.alarms: list[cw.Alarm] = []

        def alarm(
            cid: str,
            metric: cw.IMetric,
            threshold: float,
            description: str,
            periods: int = 1,
            compare: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        ) -> cw.Alarm:
            a = cw.Alarm(
                self,
                cid,
                alarm_name=platform.name(cid.lower()),
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=compare,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            a.add_alarm_action(action)
            self.alarms.append(a)
            return a

        five_xx_rate = cw.MathExpression(
            expression="100 * errors / MAX([requests, 1])",
            label="5xx %",
            period=FIVE_MIN,
            using_metrics={"errors": api_metric("5XXError", "Sum"), "requests": api_metric("Count", "Sum")},
        )
        alarm("Api5xxRate", five_xx_rate, 1.0, "More than 1% of prediction API requests failed with 5xx", periods=2)
        alarm(
            "ApiP99Latency",
            api_metric("Latency", "p99"),
            1000.0,
            "Prediction API p99 latency above 1 s for 15 minutes",
            periods=3,
        )
        alarm("ServeThrottles", fn_metric("serve", "Throttles"), 1.0, "The serving function is being throttled")
        alarm("WorkflowFailures", sm_metric("ExecutionsFailed"), 1.0, "A retraining workflow run failed")
        alarm("WorkflowTimeouts", sm_metric("ExecutionsTimedOut"), 1.0, "A retraining workflow run timed out")
        for m in platform.config.models:
            alarm(
                f"Drift{m.name.title().replace('-', '')}",
                cw.Metric(
                    namespace=NAMESPACE,
                    metric_name="ShareDrifted",
                    statistic="Maximum",
                    period=Duration.hours(1),
                    dimensions_map={"Model": m.name},
                ),
                m.drift.share_threshold,
                f"Data drift on {m.name}: share of drifted columns at or above {m.drift.share_threshold}",
                periods=m.drift.persistence_windows,
            )
        alarm(
            "QuarantineSpike",
            cw.Metric(
                namespace=NAMESPACE,
                metric_name="FilesQuarantined",
                statistic="Sum",
                period=Duration.hours(1),
                dimensions_map={"service": "driftline-ingest"},
            ),
            5.0,
            "Five or more uploads quarantined within an hour",
        )
        for q in platform.queues:
            alarm(
                f"Dlq{q.title().replace('-', '')}",
                cw.Metric(
                    namespace="AWS/SQS",
                    metric_name="ApproximateNumberOfMessagesVisible",
                    statistic="Maximum",
                    period=FIVE_MIN,
                    dimensions_map={"QueueName": platform.name(q)},
                ),
                1.0,
                f"Messages in dead-letter queue {platform.name(q)}: an asynchronous invocation or event "
                f"delivery failed after its retries",
            )

        self.dashboard = cw.Dashboard(
            self, "Dashboard", dashboard_name=platform.name("overview"), default_interval=Duration.hours(6)
        )
        d = self.dashboard
        d.add_widgets(
            cw.TextWidget(
                markdown=f"# Driftline — {platform.config.env_name}\nServing, monitoring, "
                f"retraining and ingest at a glance. Alarms notify "
                f"`{platform.name('alerts')}`.",
                width=24,
                height=2,
            )
        )
        d.add_widgets(
            cw.GraphWidget(
                title="API requests and errors",
                width=8,
                left=[api_metric("Count", "Sum"), api_metric("4XXError", "Sum"), api_metric("5XXError", "Sum")],
            ),
            cw.GraphWidget(
                title="API latency p50 / p99 (ms)",
                width=8,
                left=[
                    api_metric("Latency", "p50"),
                    api_metric("Latency", "p99"),
                    api_metric("IntegrationLatency", "p99"),
                ],
            ),
            cw.GraphWidget(
                title="Serving function: throttles, errors, duration p99",
                width=8,
                left=[fn_metric("serve", "Throttles"), fn_metric("serve", "Errors")],
                right=[fn_metric("serve", "Duration", "p99")],
            ),
        )
        d.add_widgets(
            cw.GraphWidget(title="Requests by model version answering", width=8, left=[_search("Requests", "Sum", "")]),
            cw.GraphWidget(
                title="Handler latency by model version (ms, p99)", width=8, left=[_search("LatencyMs", "p99", "")]
            ),
            cw.GraphWidget(title="Capture failures", width=8, left=[_search("CaptureFailures", "Sum", "")]),
        )
        d.add_widgets(
            cw.GraphWidget(
                title="Share of drifted columns",
                width=8,
                left=[_search("ShareDrifted", "Maximum", "", Duration.hours(1))],
            ),
            cw.GraphWidget(
                title="Per-column drift scores", width=8, left=[_search("DriftScore", "Maximum", "", Duration.hours(1))]
            ),
            cw.GraphWidget(
                title="Model performance on labeled windows (primary metric)",
                width=8,
                left=[
                    cw.Metric(
                        namespace=NAMESPACE,
                        metric_name=f"Performance_{m.gate.primary_metric}",
                        dimensions_map={"Model": m.name},
                        statistic="Average",
                        period=Duration.hours(1),
                        label=f"{m.name} {m.gate.primary_metric}",
                    )
                    for m in platform.config.models
                ],
            ),
        )
        d.add_widgets(
            cw.GraphWidget(
                title="Retraining runs",
                width=8,
                left=[sm_metric("ExecutionsStarted"), sm_metric("ExecutionsSucceeded"), sm_metric("ExecutionsFailed")],
            ),
            cw.GraphWidget(
                title="Ingest: rows accepted / rejected, files quarantined",
                width=8,
                left=[_search("RowsAccepted", "Sum", ""), _search("RowsRejected", "Sum", "")],
                right=[_search("FilesQuarantined", "Sum", "")],
            ),
            cw.AlarmStatusWidget(title="Alarms", width=8, alarms=self.alarms),
        )
