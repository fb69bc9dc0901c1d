"""DynamoDB attribute values (``{"S": ...}``, ``{"N": ...}``, ``{"BOOL": ...}``) read and written by name.

botocore's low-level client speaks attribute values, not Python values, and Driftline uses it instead
of boto3's resource layer (which would pull boto3 into every function). Every table adapter decodes
items the same way: a missing or differently typed attribute reads as absent instead of raising, so
an item written by an older release still loads. The control table's item kinds
(:mod:`driftline.control_items`) and the registry (``registry/store.py``) use these.

Standard library only: the serving and ingest Lambdas import this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["get_bool", "get_float", "get_int", "get_json", "get_str", "num", "plain", "text"]

Item = Mapping[str, Any]


def get_str(item: Item, name: str, default: str = "") -> str:
    """The string attribute ``name``, or ``default`` when it is missing or not a string.

    Parameters
    ----------
    item:
        A DynamoDB item (attribute name → attribute value).
    name:
        The attribute to read.
    default:
        What a missing attribute reads as.

    Returns
    -------
    str
        The value.
    """
    v = item.get(name)
    return str(v["S"]) if v and "S" in v else default


def get_float(item: Item, name: str) -> float | None:
    """The number attribute ``name`` as a float, or None when it is missing or not a number.

    Parameters
    ----------
    item:
        A DynamoDB item.
    name:
        The attribute to read.

    Returns
    -------
    float or None
        The value.
    """
    v = item.get(name)
    return float(v["N"]) if v and "N" in v else None


def get_int(item: Item, name: str) -> int | None:
    """The number attribute ``name`` as an int (fractions truncated), or None when it is missing.

    Parameters
    ----------
    item:
        A DynamoDB item.
    name:
        The attribute to read.

    Returns
    -------
    int or None
        The value.
    """
    v = get_float(item, name)
    return None if v is None else int(v)


def get_bool(item: Item, name: str) -> bool | None:
    """The boolean attribute ``name``, or None when it is missing or not a boolean.

    Parameters
    ----------
    item:
        A DynamoDB item.
    name:
        The attribute to read.

    Returns
    -------
    bool or None
        The value.
    """
    v = (item.get(name) or {}).get("BOOL")
    return None if v is None else bool(v)


def get_json(item: Item, name: str, default: Any = None) -> Any:
    """The JSON document stored in the string attribute ``name``, or ``default`` when it is missing or empty.

    Parameters
    ----------
    item:
        A DynamoDB item.
    name:
        The attribute to read.
    default:
        What a missing or empty attribute reads as.

    Returns
    -------
    Any
        The decoded document.

    Raises
    ------
    json.JSONDecodeError
        When the attribute holds something that is not JSON.
    """
    raw = get_str(item, name)
    return json.loads(raw) if raw else default


def text(value: Any) -> dict[str, str]:
    """A string attribute value.

    Parameters
    ----------
    value:
        Anything; stored as ``str(value)``.

    Returns
    -------
    dict
        ``{"S": str(value)}``.
    """
    return {"S": str(value)}


def num(value: float) -> dict[str, str]:
    """A number attribute value; floats keep every digit (``repr``), so a read returns the same float.

    Parameters
    ----------
    value:
        An int or a float.

    Returns
    -------
    dict
        ``{"N": ...}``.
    """
    return {"N": str(value) if isinstance(value, int) else repr(float(value))}


def plain(value: Mapping[str, Any]) -> Any:
    """The Python value of one scalar attribute value (``S``, ``N`` as its text, ``BOOL``; else None).

    Parameters
    ----------
    value:
        An attribute value such as ``{"S": "x"}``.

    Returns
    -------
    Any
        The string, the number's text, the boolean, or None.
    """
    if "BOOL" in value:
        return bool(value["BOOL"])
    return value.get("S", value.get("N"))
