"""The botocore loader behind every client: same answers as botocore's, without its directory scan."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import botocore.loaders
import botocore.session
import pytest

from driftline import aws


def _scan_forbidden(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = botocore.loaders.Loader.list_available_services

    def counting(self: Any, type_name: str) -> Any:
        calls.append(type_name)
        return real(self, type_name)

    monkeypatch.setattr(botocore.loaders.Loader, "list_available_services", counting)
    return calls


def test_known_services_need_no_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _scan_forbidden(monkeypatch)
    loader = aws._loader(None)
    for service in ("dynamodb", "s3", "firehose", "stepfunctions"):
        assert service in loader.list_available_services("service-2")
        assert loader.load_service_model(service, "service-2")["metadata"]
    assert service in loader.list_available_services("endpoint-rule-set-1")
    assert calls == []


def test_answers_equal_botocores(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = aws._loader(None).list_available_services("service-2")
    theirs = botocore.loaders.create_loader().list_available_services("service-2")
    assert list(ours) == theirs and len(ours) == len(theirs) and ours[0] == theirs[0]
    for name in ("no-such-service", "../s3", "", ".", "s3/2006-03-01"):
        assert name not in ours


def test_unknown_service_still_gets_botocores_error() -> None:
    with pytest.raises(botocore.exceptions.UnknownServiceError, match="dynamodb"):
        aws._loader(None).load_service_model("dynamodbx", "service-2")


def test_data_path_directories_come_first(tmp_path: Any) -> None:
    loader = aws._loader(f"{tmp_path}{__import__('os').pathsep}~/nowhere")
    assert loader.search_paths[0] == str(tmp_path)
    assert loader.search_paths[-1] == botocore.loaders.Loader.BUILTIN_DATA_PATH


def test_clients_come_from_the_cheaper_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    aws.reset_clients()
    try:
        calls = _scan_forbidden(monkeypatch)
        client = aws.client("dynamodb")
        assert client.meta.service_model.service_name == "dynamodb"
        assert isinstance(aws._session().get_component("data_loader"), aws._Loader)
        assert calls == []
    finally:
        aws.reset_clients()


def test_every_hook_point_is_there_in_this_botocore() -> None:
    """Run against the locked botocore by ``make test``, against the newest one by ``make test-botocore-latest``."""
    assert aws.loader_hooks_intact() == [], botocore.__version__


def test_a_changed_botocore_gets_its_own_loader_not_a_broken_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda's runtime botocore is not the locked one: a renamed internal must not break every cold start."""

    def renamed(self: Any, path: str, opener: Any, extra: int) -> Any:  # a signature this module does not know
        raise AssertionError("never called")

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "_load_file", renamed)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    problems = aws.loader_hooks_intact()
    assert problems and "_load_file" in problems[0]
    aws.reset_clients()
    try:
        monkeypatch.undo()  # botocore's own loader needs its own _load_file back; the session is built below
        monkeypatch.setattr(aws, "loader_hooks_intact", lambda: problems)
        client = aws.client("dynamodb")
        assert client.meta.service_model.service_name == "dynamodb"
        assert not isinstance(aws._session().get_component("data_loader"), aws._Loader)
    finally:
        aws.reset_clients()
