"""ingest-part: one item of the ingest-parts workflow's Distributed Map (one part of one upload).

Thin: parse the item (``{"bucket", "key"}``: the part's descriptor), read the descriptor, call
:func:`driftline.features.parts.validate_part`, answer the part's counts. A malformed item or
descriptor answers ``status: error`` without raising (retrying cannot fix it; the commit step then
names the part as missing); AWS errors propagate, so the workflow retries the part.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline import aws
from driftline.features.parts import PartDescriptor, PartsError, validate_part
from driftline.features.parts.records import read_json
from driftline.features.schema import FeatureSetCatalog

logger = Logger()


@cache
def _catalog() -> FeatureSetCatalog:
    return FeatureSetCatalog(os.environ.get("FEATURE_SETS_DIR", "feature_sets"))


def _descriptor(event: Any, s3: Any) -> tuple[str, PartDescriptor]:
    if not isinstance(event, dict) or not all(isinstance(event.get(k), str) and event[k] for k in ("bucket", "key")):
        raise PartsError(f"the item must be a JSON object with string bucket and key, got {str(event)[:200]}")
    bucket = str(event["bucket"])
    if bucket != os.environ.get("FEATURES_BUCKET"):
        raise PartsError(f"the item's bucket {bucket!r} is not the features bucket")
    doc = read_json(s3, bucket, str(event["key"]))
    if doc is None:
        raise PartsError(f"no part descriptor at s3://{bucket}/{event['key']}")
    d = PartDescriptor.from_dict(doc)
    if d.source.bucket != bucket:
        raise PartsError(f"the descriptor's source bucket {d.source.bucket!r:.100} is not the features bucket")
    if d.feature_set not in _catalog():
        raise PartsError(f"the descriptor names unknown feature set {d.feature_set!r}")
    return bucket, d


@logger.inject_lambda_context(correlation_id_path="key")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    s3 = aws.client("s3")
    try:
        bucket, d = _descriptor(event, s3)
    except PartsError as e:
        logger.error("malformed part item", extra={"error": str(e)})
        return {"status": "error", "message": str(e)}
    catalog = _catalog()
    fs = catalog.get(d.feature_set)
    result = validate_part(d, fs, [o for o in catalog if o.name != fs.name], bucket, s3)
    out = {"status": result.status, "part": result.part, "rows_total": result.rows_total}
    logger.info("part validated", extra={"where": result.where, **out})
    return out
