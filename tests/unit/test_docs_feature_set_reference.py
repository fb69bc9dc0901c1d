"""docs/features.md, "Feature-set YAML reference", against driftline/features/schema.py.

Every YAML example in the section must be a valid feature set, the examples together must use every
key, and each pydantic model has a table under a heading naming it, with one row per field whose
default and allowed values match the model. A new key without docs, a changed default or a
broken example fails here.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from driftline.features.schema import (
    DriftOverride,
    Feature,
    FeatureSet,
    IngestPolicy,
    Label,
    ServingPolicy,
    parse_feature_set,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"
HEADING = "## Feature-set YAML reference"
MODELS: list[type[BaseModel]] = [FeatureSet, Feature, Label, DriftOverride, IngestPolicy, ServingPolicy]


def _section() -> str:
    text = DOC.read_text()
    assert HEADING in text, f"{DOC} has no {HEADING!r} section"
    body = text.split(HEADING, 1)[1]
    nxt = re.search(r"^## ", body, flags=re.MULTILINE)
    return body[: nxt.start()] if nxt else body


def _yaml_blocks(section: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)


def _table_rows(section: str, model: type[BaseModel]) -> dict[str, list[str]]:
    """The first table after the heading that names ``(`Model`)``: key -> cells."""
    lines = section.splitlines()
    marker = f"(`{model.__name__}`)"
    start = next((i for i, ln in enumerate(lines) if ln.startswith("### ") and marker in ln), None)
    assert start is not None, f"no '### ... {marker}' heading in the reference section"
    i = start + 1
    while i < len(lines) and not lines[i].startswith("|"):
        assert not lines[i].startswith("#"), f"no table under the {marker} heading"
        i += 1
    rows: dict[str, list[str]] = {}
    while i < len(lines) and lines[i].startswith("|"):
        cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
        key = re.fullmatch(r"`([a-z_]+)`", cells[0])
        if key:
            rows[key.group(1)] = cells
        i += 1
    return rows


def _rendered(value: Any) -> str:
    """How a default is written in the tables (as YAML would spell it)."""
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    if value == ():
        return "`[]`"
    return f"`{value}`"


def _keys_used(data: Any, model: type[BaseModel], used: dict[str, set[str]]) -> None:
    """Record which fields of ``model`` (and of the nested models) ``data`` sets."""
    if not isinstance(data, dict):
        return
    used.setdefault(model.__name__, set()).update(data)
    nested: dict[tuple[type[BaseModel], str], type[BaseModel]] = {
        (FeatureSet, "features"): Feature,
        (FeatureSet, "labels"): Label,
        (FeatureSet, "ingest"): IngestPolicy,
        (FeatureSet, "serving"): ServingPolicy,
        (Feature, "drift"): DriftOverride,
    }
    for key, value in data.items():
        child = nested.get((model, key))
        if child is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            _keys_used(item, child, used)


def test_every_yaml_example_is_a_valid_feature_set() -> None:
    blocks = _yaml_blocks(_section())
    assert len(blocks) >= 2, "expected the smallest and the complete example"
    for block in blocks:
        fs = parse_feature_set(yaml.safe_load(block), "docs/features.md example")
        assert fs.features


def test_the_examples_use_every_key() -> None:
    used: dict[str, set[str]] = {}
    for block in _yaml_blocks(_section()):
        _keys_used(yaml.safe_load(block), FeatureSet, used)
    for model in MODELS:
        missing = sorted(set(model.model_fields) - used.get(model.__name__, set()))
        assert not missing, f"no example in the reference sets {model.__name__} keys {missing}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_is_documented_with_its_default_and_values(model: type[BaseModel]) -> None:
    section = _section()
    rows = _table_rows(section, model)
    assert set(rows) == set(model.model_fields), (
        f"{model.__name__} table rows {sorted(rows)} differ from its fields {sorted(model.model_fields)}"
    )
    for name, field in model.model_fields.items():
        cells = rows[name]
        assert len(cells) == 5, f"{model.__name__}.{name}: expected key, type, default, allowed, meaning"
        default = cells[2]
        if field.is_required():
            assert default == "required", f"{model.__name__}.{name} is required, the docs say {default!r}"
        elif field.default_factory is not None:
            assert default.startswith("see"), f"{model.__name__}.{name}: nested defaults: 'see ...'"
        else:
            assert default.startswith(_rendered(field.default)), (
                f"{model.__name__}.{name}: default is {field.default!r}, the docs say {default!r}"
            )
        allowed = cells[3]
        for option in _literal_options(field.annotation):
            assert f"`{option}`" in allowed, f"{model.__name__}.{name}: allowed value {option!r} not listed"
        for bound in _bounds(field.metadata):
            assert re.search(rf"(?<![\d.]){re.escape(f'{bound:g}')}(?![\d.])", allowed), (
                f"{model.__name__}.{name}: bound {bound} not in {allowed!r}"
            )


def _literal_options(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return []


def _bounds(metadata: list[Any]) -> list[float]:
    return [float(getattr(m, a)) for m in metadata for a in ("ge", "gt", "le", "lt") if hasattr(m, a)]
