"""cdk-nag (AwsSolutions) and cfn-lint over every synthesized template."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.infrastructure.conftest import Synth

# cfn-lint warnings we accept, and why:
#  W3005: CDK emits DependsOn entries that are also implied by Ref/GetAtt (harmless redundancy).
CFN_LINT_IGNORED = ["W3005"]


def test_cdk_nag_reports_no_unacknowledged_findings(synth: Synth, synth_prod: Synth) -> None:
    for s in (synth, synth_prod):
        findings = [m for m in s.messages if "AwsSolutions-" in m[3] and m[1] in ("error", "warning")]
        assert not findings, "\n".join(f"{m[2]}: {m[3][:200]}" for m in findings)


def test_every_nag_acknowledgment_has_a_written_reason(synth: Synth) -> None:
    count = 0
    for t in synth.templates.values():
        for r in [t.get("Metadata", {}), *(res.get("Metadata", {}) for res in t["Resources"].values())]:
            for rule in r.get("cdk_nag", {}).get("rules_to_suppress", []):
                count += 1
                assert len(rule["reason"]) >= 60, rule
    assert count > 0


def test_cfn_lint_reports_no_errors(synth: Synth) -> None:
    files = sorted(str(p) for p in synth.outdir.glob("*.template.json"))
    assert len(files) == 4
    proc = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "json", "--ignore-checks", *CFN_LINT_IGNORED, "--", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(proc.stdout or "[]")
    errors = [f for f in findings if f["Level"] == "Error"]
    assert not errors, json.dumps(errors, indent=1)[:3000]
    warnings = [
        f"{f['Rule']['Id']} {f['Location']['Path']}: {f['Message']}" for f in findings if f["Level"] == "Warning"
    ]
    assert not warnings, "\n".join(warnings)[:3000]


def test_no_nag_acknowledgment_covers_a_whole_stack(synth: Synth, synth_prod: Synth) -> None:
    """Acknowledgments sit on the resources they are about; IAM ones also name what they apply to."""
    for s in (synth, synth_prod):
        for kind, t in s.templates.items():
            assert "cdk_nag" not in t.get("Metadata", {}), f"{kind}: stack-wide nag acknowledgments"
            for lid, res in t["Resources"].items():
                for rule in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                    if rule["id"].startswith("AwsSolutions-IAM"):
                        assert rule.get("applies_to"), (kind, lid, rule["id"])


def test_public_route_acknowledgment_only_on_the_unauthenticated_methods(synth: Synth) -> None:
    methods = synth.resources("AWS::ApiGateway::Method", "serving")
    acknowledged = {
        lid
        for lid, r in methods.items()
        if any(
            x["id"] == "AwsSolutions-APIG4"
            for x in r.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        )
    }
    public = {lid for lid, r in methods.items() if r["Properties"]["AuthorizationType"] == "NONE"}
    assert len(public) == sum(1 for r in synth.platform.routes if not r.authorized)
    assert acknowledged == public
