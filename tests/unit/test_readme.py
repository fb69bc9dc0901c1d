"""The README's configuration reference covers every configuration key (it is the front door)."""

from __future__ import annotations

import types
import typing
from pathlib import Path

from pydantic import BaseModel

from driftline.config import ModelConfig, PlatformConfig

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = typing.get_args(ann)
        inner = args[0] if args and isinstance(ann, types.GenericAlias) and ann.__origin__ is tuple else ann
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            sub = f"{prefix}{name}[]." if inner is ModelConfig else f"{prefix}{name}."
            out += _keys(inner, sub)
        else:
            out.append(prefix + name)
    return out


def test_every_config_key_is_in_the_readme_reference() -> None:
    keys = [k for k in _keys(PlatformConfig) if k != "env_name"]
    assert len(keys) > 40
    missing = [
        k
        for k in keys
        if f"`{k}`" not in README
        and f"`{k}`," not in README
        and not any(k in line for line in README.splitlines() if line.startswith("| `"))
    ]
    assert not missing, missing


def test_readme_names_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
