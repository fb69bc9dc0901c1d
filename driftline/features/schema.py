"""Feature set definitions: the one schema that drives ingest validation, the serving request
schema and the drift configuration.

Definitions are YAML files (one per feature set) loaded into :class:`FeatureSet`. A bad file is
rejected with the file, the field and the reason (:class:`FeatureSetError`). This module imports
neither pandas nor pyarrow so that every Lambda can use it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from driftline.config import format_validation_error

FeatureType = Literal["int", "float", "bool", "categorical", "string", "timestamp"]
TaskType = Literal["binary_classification", "multiclass_classification", "regression"]
DriftMethod = Literal["auto", "ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi"]
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _snake_case(v: str) -> str:
    if not NAME_RE.match(v):
        raise ValueError("must be snake_case: lowercase letters, digits and _, starting with a letter")
    return v


class FeatureSetError(ValueError):
    """A feature set definition that cannot be used, phrased as file, field and reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftOverride(_Strict):
    """Per-column override of the drift test and threshold (Evidently-style)."""

    method: DriftMethod = "auto"
    threshold: float | None = Field(default=None, ge=0.0)
    enabled: bool = True


class Feature(_Strict):
    name: str
    type: FeatureType
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    description: str = ""
    drift: DriftOverride = Field(default_factory=DriftOverride)
    request_time: bool = False
    """Supplied by the caller at request time, never read from the online store."""

    _name = field_validator("name")(_snake_case)

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError(f"min/max only apply to int and float features, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.type == "categorical" and not self.categories:
            raise ValueError("a categorical feature needs a non-empty 'categories' list")
        if self.categories is not None and self.type != "categorical":
            raise ValueError("'categories' only applies to categorical features")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError("'categories' has duplicates")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in ("int", "float")


class Label(_Strict):
    name: str
    task: TaskType
    classes: tuple[str | int, ...] | None = None

    @model_validator(mode="after")
    def _classes(self) -> Label:
        if self.task == "regression" and self.classes:
            raise ValueError("regression labels take no 'classes'")
        if self.task == "binary_classification" and self.classes is not None and len(self.classes) != 2:
            raise ValueError("binary_classification needs exactly 2 classes")
        if self.task == "multiclass_classification" and (self.classes is None or len(self.classes) < 3):
            raise ValueError("multiclass_classification needs 'classes' with at least 3 values")
        return self

    @property
    def class_values(self) -> tuple[str | int, ...]:
        if self.classes is not None:
            return self.classes
        return (0, 1) if self.task == "binary_classification" else ()


class IngestPolicy(_Strict):
    on_partial_failure: Literal["accept_valid", "reject_file"] = "accept_valid"
    on_duplicate_content: Literal["skip", "accept"] = "skip"
    """An upload whose bytes were already ingested (under any key): skip it with a record, or ingest again."""
    max_file_mb: int = Field(default=512, ge=1, le=10240)
    max_uncompressed_mb: int = Field(default=2048, ge=1, le=10240)
    """Cap on a file's data once decompressed (gzip CSV as it inflates, Parquet from its footer): a few
    compressed megabytes can inflate to gigabytes, and ingest holds the whole table in memory."""
    max_parts_uncompressed_mb: int = Field(default=20480, ge=1, le=102400, exclude=True)
    """Cap on a gzip CSV's data once inflated when it is validated in parts (over ``max_file_mb``): the plan
    writes the inflated CSV to scratch storage as parts, so a gzip bomb would otherwise fill storage up to
    the parts limit. An operational limit, not part of the definition's content: left out of the
    fingerprint (``exclude``), so adding or changing it leaves recorded fingerprints valid."""
    sample_rows_in_report: int = Field(default=5, ge=0, le=100)


class ServingPolicy(_Strict):
    unknown_category: Literal["reject", "map_unknown"] = "reject"


class FeatureSet(_Strict):
    name: str
    version: int = Field(ge=1)
    description: str = ""
    entity: tuple[str, ...] = Field(min_length=1)
    timestamp: str
    features: tuple[Feature, ...] = Field(min_length=1)
    labels: tuple[Label, ...] = ()
    ingest: IngestPolicy = Field(default_factory=IngestPolicy)
    serving: ServingPolicy = Field(default_factory=ServingPolicy)

    _name = field_validator("name")(_snake_case)

    @model_validator(mode="after")
    def _columns(self) -> FeatureSet:
        cols = [*self.entity, self.timestamp, *(f.name for f in self.features), *(lb.name for lb in self.labels)]
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        if dupes:
            raise ValueError(
                f"column names must be unique across entity, timestamp, features and labels; "
                f"repeated: {', '.join(dupes)}"
            )
        return self

    # --- derived views: every consumer asks the definition rather than keeping its own list ---
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def label(self) -> Label | None:
        return self.labels[0] if self.labels else None

    @property
    def numerical(self) -> list[str]:
        return [f.name for f in self.features if f.type in ("int", "float")]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.type in ("categorical", "bool")]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def fingerprint(self) -> str:
        """Content hash of the definition; recorded in lineage and checked against drift profiles."""
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(body).hexdigest()[:16]

    def input_schema(self) -> dict[str, Any]:
        """The serving request schema (JSON-serializable) stored with each model version.

        Kept as plain data so the serving fast path needs neither pydantic nor this module.
        ``label`` (name, task, classes in ``Label.class_values`` order; None without labels) lets
        serving name the classes of the ``probabilities`` output and check feedback labels.
        """
        lb = self.label
        return {
            "feature_set": self.name,
            "feature_set_version": self.version,
            "entity": list(self.entity),
            "unknown_category": self.serving.unknown_category,
            "features": [
                {
                    "name": f.name,
                    "type": f.type,
                    "nullable": f.nullable,
                    "min": f.min,
                    "max": f.max,
                    "categories": list(f.categories) if f.categories else None,
                    "request_time": f.request_time,
                }
                for f in self.features
            ],
            "label": {"name": lb.name, "task": lb.task, "classes": list(lb.class_values)} if lb else None,
        }


def parse_feature_set(data: Any, source: str = "<feature set>") -> FeatureSet:
    if not isinstance(data, dict):
        raise FeatureSetError(
            f"{source}: the document must be a mapping with name, version, entity, timestamp and features"
        )
    try:
        return FeatureSet.model_validate(data)
    except ValidationError as err:
        raise FeatureSetError(format_validation_error(err, "", where=source).replace("'.", "'")) from None


def load_feature_set(path: str | Path) -> FeatureSet:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FeatureSetError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise FeatureSetError(f"{path}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    fs = parse_feature_set(data, str(path))
    if fs.name != path.stem:
        raise FeatureSetError(
            f"{path}: field 'name' is {fs.name!r} but the file is named {path.stem!r}; rename one so they match"
        )
    return fs


class FeatureSetCatalog:
    """All feature sets in a directory, loaded once."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._sets: dict[str, FeatureSet] = {}
        if not self.directory.is_dir():
            raise FeatureSetError(f"{self.directory}: feature set directory not found")
        for path in sorted(self.directory.glob("*.yaml")):
            fs = load_feature_set(path)
            self._sets[fs.name] = fs

    def __contains__(self, name: object) -> bool:
        return name in self._sets

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._sets.values())

    def names(self) -> list[str]:
        return sorted(self._sets)

    def get(self, name: str) -> FeatureSet:
        try:
            return self._sets[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise FeatureSetError(f"unknown feature set {name!r}; defined in {self.directory}: {known}") from None
