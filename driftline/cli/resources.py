"""Physical names of the platform's resources as the CLI sees them, and who the caller is.

Every command that talks to a deployed platform (AWS, or the local platform through
``AWS_ENDPOINT_URL``) needs the same names the stacks gave its tables, buckets, queues, topics and
functions. They come from one place: the environment variable a function would receive wins
(``FEATURES_BUCKET``, ``CONTROL_TABLE``...: set them to point the CLI elsewhere), otherwise the name
is derived from the platform definition (:class:`~driftline.platform.Platform`) the way the stacks
derive it. Bucket names and topic ARNs contain the account, which only STS knows: it is asked lazily,
only when a name needs it, and :func:`caller_identity` remembers the answer (or the failure) for the
client it asked, so a command asks STS at most once however many names it resolves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ENV_NAMES", "NoCallerIdentityError", "Resources", "caller_identity", "forget_caller_identity"]

ENV_NAMES: dict[str, str] = {
    "bucket:features": "FEATURES_BUCKET",
    "bucket:artifacts": "ARTIFACTS_BUCKET",
    "bucket:captures": "CAPTURES_BUCKET",
    "bucket:reports": "REPORTS_BUCKET",
    "bucket:audit": "AUDIT_BUCKET",
    "table:registry": "REGISTRY_TABLE",
    "table:control": "CONTROL_TABLE",
    "table:online": "ONLINE_TABLE",
    "table:idempotency": "IDEMPOTENCY_TABLE",
    "topic:alerts": "ALERTS_TOPIC_ARN",
    "topic:approvals": "APPROVALS_TOPIC_ARN",
    "bus": "EVENT_BUS_NAME",
}
"""Resource (``kind:logical``) → the environment variable that overrides its derived name."""


class NoCallerIdentityError(Exception):
    """STS could not say who the caller is (no credentials, no endpoint): names needing the account fail."""


_ASKED: list[tuple[Any, dict[str, str] | NoCallerIdentityError]] = []
"""The STS client last asked and its answer (or failure): one entry at most."""


def caller_identity(client: Any | None = None) -> dict[str, str]:
    """``GetCallerIdentity`` (``Account``, ``Arn``), asked once per STS client and remembered.

    The CLI uses one cached client per process (:func:`driftline.aws.client`), so a command makes
    at most one STS call; a failure is remembered as well, so a command without credentials does not
    wait for several timeouts. Tests that switch endpoints reset the clients and with them this answer.

    Parameters
    ----------
    client:
        An STS client (default ``aws.client("sts")``).

    Returns
    -------
    dict
        ``{"Account": ..., "Arn": ...}``.

    Raises
    ------
    NoCallerIdentityError
        When STS cannot be asked or refuses; its message names the cause.
    """
    if client is None:
        from driftline import aws

        client = aws.client("sts")
    if not _ASKED or _ASKED[0][0] is not client:
        answer: dict[str, str] | NoCallerIdentityError
        try:
            got = client.get_caller_identity()
            answer = {"Account": str(got["Account"]), "Arn": str(got["Arn"])}
        except Exception as e:  # any failure means the same to every caller: no identity
            answer = NoCallerIdentityError(f"{type(e).__name__}: {e}")
        _ASKED[:] = [(client, answer)]
    answer = _ASKED[0][1]
    if isinstance(answer, NoCallerIdentityError):
        raise NoCallerIdentityError(str(answer))
    return dict(answer)


def forget_caller_identity() -> None:
    """Ask STS again next time (after credentials changed within one process)."""
    _ASKED.clear()


class Resources:
    """Names of one platform's resources: the environment's overrides, else derived as the stacks do."""

    def __init__(
        self,
        platform: Any,
        environ: Mapping[str, str] | None = None,
        *,
        sts_client: Any | None = None,
        region: str | None = None,
    ) -> None:
        """
        Parameters
        ----------
        platform:
            The platform definition (:func:`driftline.platform.build_platform`).
        environ:
            Where overrides are read (default ``os.environ``).
        sts_client:
            An STS client (default ``aws.client("sts")``, asked only when a name needs the account).
        region:
            The region (default :func:`driftline.aws.region`).
        """
        self.platform = platform
        self.environ = os.environ if environ is None else environ
        self._sts = sts_client
        self._region = region

    @property
    def region(self) -> str:
        if self._region is None:
            from driftline import aws

            self._region = aws.region()
        return self._region

    def _override(self, resource: str) -> str:
        return self.environ.get(ENV_NAMES.get(resource, ""), "")

    def identity(self) -> dict[str, str]:
        """The caller's ``Account`` and ``Arn`` (see :func:`caller_identity`).

        Raises
        ------
        NoCallerIdentityError
            When STS cannot say.
        """
        return caller_identity(self._sts)

    def account(self) -> str:
        """The caller's account id. Raises :class:`NoCallerIdentityError` when STS cannot say."""
        return self.identity()["Account"]

    def caller_arn(self) -> str:
        """The caller's ARN (who approves, registers, requests). Raises :class:`NoCallerIdentityError`."""
        return self.identity()["Arn"]

    def table(self, logical: str) -> str:
        """A DynamoDB table's name (``registry``, ``control``, ``online``...)."""
        return self._override(f"table:{logical}") or str(self.platform.name(logical))

    def bucket(self, logical: str) -> str:
        """An S3 bucket's name (``features``, ``captures``...); asks for the account unless overridden.

        Raises
        ------
        NoCallerIdentityError
            When the name needs the account and STS cannot say.
        """
        return self._override(f"bucket:{logical}") or str(
            self.platform.bucket_name(logical, self.account(), self.region)
        )

    def topic_arn(self, logical: str) -> str:
        """An SNS topic's ARN (``alerts``, ``approvals``); asks for the account unless overridden.

        Raises
        ------
        NoCallerIdentityError
            When the ARN needs the account and STS cannot say.
        """
        return self._override(f"topic:{logical}") or (
            f"arn:aws:sns:{self.region}:{self.account()}:{self.platform.name(logical)}"
        )

    def queue(self, logical: str) -> str:
        """An SQS queue's name (``dlq-data``...)."""
        return str(self.platform.name(logical))

    def function(self, logical: str) -> str:
        """A Lambda function's name (``ingest``...)."""
        return str(self.platform.name(logical))

    def event_bus(self) -> str:
        """The platform's event bus."""
        return self._override("bus") or str(self.platform.event_bus)

    def caller_names(self) -> dict[str, str]:
        """``REGISTRY_TABLE``, ``ARTIFACTS_BUCKET``, ``FEATURES_BUCKET``, ``AUDIT_BUCKET`` for code outside
        the functions (:meth:`~driftline.platform.Platform.caller_names`).

        Raises
        ------
        NoCallerIdentityError
            When a bucket name needs the account and STS cannot say.
        """
        names: dict[str, str] = self.platform.caller_names(self.environ, self.account, self.region)
        return names
