"""Uploads of any size: an upload over the feature set's ``ingest.max_file_mb`` is validated in parts by
the ingest-parts workflow (plan → Distributed Map of part validations → commit), then committed the
way the single-function path commits (:mod:`driftline.features.ingest`).

Modules: :mod:`.records` (the plan, part descriptors and part results the steps exchange through S3),
:mod:`.ranges` (ranged reads: line boundaries, line counts, Parquet footers), :mod:`.plan`,
:mod:`.part` (validate one part), :mod:`.keys` (rows sharing a key across parts), :mod:`.commit`,
:mod:`.workflow` (the execution's input and start).
"""

from driftline.features.parts.commit import commit_parts, record_workflow_failure
from driftline.features.parts.part import validate_part
from driftline.features.parts.plan import PART_TARGET_MB, part_target_bytes, plan_upload
from driftline.features.parts.records import PartDescriptor, PartResult, PartsError, Plan, SourceObject
from driftline.features.parts.workflow import WorkflowInput, WorkflowStarter, parse_workflow_input, plan_step

__all__ = [
    "PART_TARGET_MB",
    "PartDescriptor",
    "PartResult",
    "PartsError",
    "Plan",
    "SourceObject",
    "WorkflowInput",
    "WorkflowStarter",
    "commit_parts",
    "parse_workflow_input",
    "part_target_bytes",
    "plan_step",
    "plan_upload",
    "record_workflow_failure",
    "validate_part",
]
