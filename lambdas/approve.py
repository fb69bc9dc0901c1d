"""approve: the IAM-authorized approval route, ``POST /v1/models/{model}/versions/{version}/approval``.

Thin: parse the config once per container, hand the proxy event to
:func:`driftline.retraining.approval_api.handle` (which decides through ``resolve_approval``, the same
path as ``driftline models approve|reject``), return its answer. The approver is the SigV4 caller
(``requestContext.identity.userArn``), never a body field.

Only API Gateway may invoke this function (its resource policy names the API's execute-api ARN for the
route), and the handler refuses events not shaped like that route's IAM-authorized proxy event, checking
the API id when ``APPROVAL_API_ID`` is set. A principal allowed ``lambda:InvokeFunction`` on this
function could still hand it a forged identity: no platform role has that permission, and operators
should deny it to everyone (SCP or permissions boundary; docs/retraining.md).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline import aws
from driftline.config import PlatformConfig
from driftline.retraining.approval_api import API_ID_ENV, handle

logger = Logger()


@cache
def _config() -> PlatformConfig:
    return PlatformConfig.model_validate_json(aws.env("PLATFORM_CONFIG"))


def _log(message: str, fields: dict[str, Any]) -> None:
    logger.info(message, extra=fields)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, _config(), api_id=os.environ.get(API_ID_ENV) or None, log=_log)
