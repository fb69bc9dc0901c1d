"""The scale-out drift check: Athena shards the window, a Distributed Map summarizes each shard, a reduce
step merges and checks (docs/monitoring.md, "Scale-out checks"). Small windows keep the in-process check."""

from driftline.monitoring.scale.reduce import FAILED, INCOMPLETE, collect, reduce_check
from driftline.monitoring.scale.shards import ShardFileError, shard_of, summarize_shard, summarize_shard_object
from driftline.monitoring.scale.sql import MAX_SHARDS, SHARDS_SELECT, ShardQuery

__all__ = [
    "FAILED",
    "INCOMPLETE",
    "MAX_SHARDS",
    "SHARDS_SELECT",
    "ShardFileError",
    "ShardQuery",
    "collect",
    "reduce_check",
    "shard_of",
    "summarize_shard",
    "summarize_shard_object",
]
