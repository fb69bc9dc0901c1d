"""A deployment with a model whose training set may be built on Athena (``training.join``): the train
function's synthesized role policy is exactly its declaration (Athena in the workgroup, Glue reads of the
database and its tables, the results prefix) and it gets the workgroup and database names. The shipped
environments (all ``in_process``) synthesize none of it (test_declared_permissions covers them)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infrastructure.conftest import Synth, synthesize
from tests.infrastructure.test_declared_permissions import test_every_function_role_policy_is_exactly_its_declaration


def _with_athena_join(context: dict[str, Any]) -> None:
    context["driftline:environments"]["dev"]["models"][0]["training"] = {"join": "auto", "join_auto_bytes": 1 << 28}


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-join"), _with_athena_join, annotations=False)


def test_train_policy_is_its_declaration_with_athena_join(joined: Synth) -> None:
    test_every_function_role_policy_is_exactly_its_declaration(joined)
    statements = joined.platform.policy("train", "1", "r")
    athena = next(st for st in statements if "athena:StartQueryExecution" in st.actions)
    assert athena.resources == (f"arn:aws:athena:r:1:workgroup/{joined.platform.name('athena')}",)
    assert not any(a == "*" or a.endswith(":*") for st in statements for a in st.actions)


def test_train_function_gets_the_workgroup_and_database(joined: Synth) -> None:
    resources: dict[str, Any] = joined.templates["pipeline"]["Resources"]
    (fn,) = [
        r
        for lid, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and lid.startswith("TrainFn") and "Environment" in r["Properties"]
    ]
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["ATHENA_WORKGROUP"] == joined.platform.name("athena")
    assert env["GLUE_DATABASE"] == joined.platform.glue_database
