"""A deployment with a model that trains on SageMaker (``training.compute``): the training jobs' role and
the functions' training-job permissions are exactly the platform definition's, the function gets the role
and the image it shares with the jobs, and cdk-nag stays clean. The shipped environments (all ``lambda``)
synthesize none of it (test_declared_permissions covers them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftline.platform import LOCAL_TRAINING_IMAGE, TRAINING_ROLE
from tests.infrastructure.conftest import Synth, synthesize
from tests.infrastructure.test_declared_permissions import (
    ACCOUNT,
    KEY,
    PARTITION,
    REGION,
    _pairs,
    _Resolver,
    test_every_function_role_policy_is_exactly_its_declaration,
)


def _with_jobs(context: dict[str, Any]) -> None:
    model = context["driftline:environments"]["dev"]["models"][0]
    model["training"] = {"compute": "sagemaker", "spot": True, "max_runtime_seconds": 3600, "spot_retries": 1}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-jobs"), _with_jobs)


def _role(synth: Synth) -> tuple[str, dict[str, Any]]:
    resources = synth.templates["pipeline"]["Resources"]
    (lid,) = [k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role" and k.startswith("TrainingJobRole")]
    return lid, resources[lid]


def test_function_policies_are_their_declarations_with_training_jobs(jobs: Synth) -> None:
    test_every_function_role_policy_is_exactly_its_declaration(jobs)
    prefix = jobs.platform.prefix
    for logical, stop in (("train", False), ("workflow", True)):
        statements = jobs.platform.policy(logical, "1", "r")
        job_actions = {a for st in statements for a in st.actions if a.startswith("sagemaker:")}
        assert ("sagemaker:StopTrainingJob" in job_actions) is stop
        (passrole,) = [st for st in statements if st.actions == ("iam:PassRole",)]
        assert passrole.resources == (f"arn:aws:iam::1:role/{prefix}-{TRAINING_ROLE}",)
        assert passrole.condition == (("StringEquals", "iam:PassedToService", ("sagemaker.amazonaws.com",)),)
        jobs_arn = next(st for st in statements if "sagemaker:DescribeTrainingJob" in st.actions).resources
        assert jobs_arn == (f"arn:aws:sagemaker:r:1:training-job/{prefix}-train-*",)


def test_training_role_is_exactly_its_declaration(jobs: Synth) -> None:
    lid, role = _role(jobs)
    props = role["Properties"]
    assert props["RoleName"] == jobs.platform.name(TRAINING_ROLE)
    (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"} and "ManagedPolicyArns" not in props
    resources = jobs.templates["pipeline"]["Resources"]
    statements = [
        st
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": lid} in r["Properties"]["Roles"]
        for st in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    resolver = _Resolver(jobs, "pipeline")
    (repo,) = [st["Resource"] for st in statements if "ecr:BatchGetImage" in st["Action"]]
    assert "container-assets" in json.dumps(repo)  # CDK's asset repository: the image the function runs

    def resolve(v: Any) -> str:
        return "<training image repository>" if v == repo else resolver(v)

    synthesized = _pairs(statements, resolve)  # type: ignore[arg-type]
    declared = _pairs(
        [
            st.document()
            for st in jobs.platform.training_role_policy(
                ACCOUNT, REGION, PARTITION, key_arn=KEY, image_repository_arn="<training image repository>"
            )
        ],
        lambda v: v,  # type: ignore[arg-type]
    )
    assert synthesized == declared, (sorted(synthesized - declared), sorted(declared - synthesized))
    actions = {p[1] for p in synthesized}
    assert not any(a.endswith(":*") or a == "*" for a in actions)
    features = f"arn:{PARTITION}:s3:::{jobs.platform.bucket_name('features', ACCOUNT, REGION)}"
    assert {r for _, a, r, _ in synthesized if a == "s3:GetObject*" and r.startswith(features)} == {
        features,
        f"{features}/training-sets/*",
    }
    assert {r for _, a, r, _ in synthesized if a == "s3:PutObject"} == {
        f"arn:{PARTITION}:s3:::{jobs.platform.bucket_name('artifacts', ACCOUNT, REGION)}/training-jobs/*"
    }


def test_train_function_gets_the_role_and_the_shared_image(jobs: Synth) -> None:
    resources = jobs.templates["pipeline"]["Resources"]
    (fn,) = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("FunctionName") == jobs.platform.name("train")
    ]
    env = fn["Properties"]["Environment"]["Variables"]
    lid, _ = _role(jobs)
    assert env["SAGEMAKER_ROLE_ARN"] == {"Fn::GetAtt": [lid, "Arn"]}
    assert env["TRAINING_IMAGE_URI"] != LOCAL_TRAINING_IMAGE
    assert json.dumps(env["TRAINING_IMAGE_URI"]).count("container-assets") or "Fn::Sub" in json.dumps(
        env["TRAINING_IMAGE_URI"]
    )
    assert env["TRAINING_JOB_PREFIX"] == f"{jobs.platform.prefix}-train"
    image = json.dumps(fn["Properties"]["Code"]["ImageUri"])
    tag = image.rsplit(":", 1)[-1].strip('"}] ')
    assert tag and tag in json.dumps(env["TRAINING_IMAGE_URI"])  # the function and the jobs run one image


def test_nag_is_clean_with_training_jobs(jobs: Synth) -> None:
    findings = [m for m in jobs.messages if "AwsSolutions-" in m[3] and m[1] in ("error", "warning")]
    assert findings == []


def test_cfn_lint_is_clean_with_training_jobs(jobs: Synth) -> None:
    from tests.infrastructure.test_nag_and_lint import test_cfn_lint_reports_no_errors

    test_cfn_lint_reports_no_errors(jobs)
