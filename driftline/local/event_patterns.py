"""EventBridge event patterns and target inputs, evaluated the way EventBridge does.

moto delivers ``PutEvents`` only to SQS and CloudWatch Logs targets, and its own matcher treats
``true`` and ``1`` as equal; the local runtime routes Lambda and Step Functions targets itself,
so it needs the real semantics:

- every key of the pattern must match; nested objects descend into the event;
- a leaf is a list of alternatives; an event array matches when any element matches any alternative;
- strings, numbers (compared numerically), booleans (never equal to numbers) and null match exactly;
- content filters: ``prefix``, ``suffix``, ``equals-ignore-case``, ``wildcard``, ``anything-but``,
  ``numeric``, ``exists``, ``cidr``; ``$or`` combines sub-patterns.
"""

from __future__ import annotations

import ipaddress
import json
import operator
import re
from collections.abc import Callable
from typing import Any

_MISSING = object()
_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    ">=": operator.ge,
    ">": operator.gt,
}


class PatternError(ValueError):
    """An event pattern EventBridge would reject (``InvalidEventPatternException``)."""


def matches(pattern: dict[str, Any] | str | None, event: dict[str, Any]) -> bool:
    """True when ``event`` matches ``pattern`` (a dict or its JSON text). No pattern matches nothing."""
    if pattern is None:
        return False
    if isinstance(pattern, str):
        try:
            pattern = json.loads(pattern)
        except ValueError as e:
            raise PatternError(f"event pattern is not valid JSON: {e}") from None
    if not isinstance(pattern, dict) or not pattern:
        raise PatternError("an event pattern must be a non-empty JSON object")
    return _match_object(pattern, event)


def _match_object(pattern: dict[str, Any], node: Any) -> bool:
    for key, rule in pattern.items():
        if key == "$or":
            if not isinstance(rule, list) or len(rule) < 2:
                raise PatternError("'$or' needs a list of at least two sub-patterns")
            if not any(_match_object(sub, node) for sub in rule):
                return False
            continue
        value = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
        if isinstance(rule, dict):
            if value is _MISSING or not isinstance(value, dict) or not _match_object(rule, value):
                return False
        elif isinstance(rule, list):
            if not rule:
                raise PatternError(f"the pattern for {key!r} is an empty list; give at least one value")
            if not _match_leaf(rule, value):
                return False
        else:
            raise PatternError(f"the pattern for {key!r} must be a list of values or an object, got {json.dumps(rule)}")
    return True


def _match_leaf(alternatives: list[Any], value: Any) -> bool:
    candidates = value if isinstance(value, list) else [value]
    for alt in alternatives:
        if isinstance(alt, dict):
            if len(alt) != 1:
                raise PatternError(f"a content filter has exactly one key, got {json.dumps(alt)}")
            name, arg = next(iter(alt.items()))
            if name == "exists":
                if not isinstance(arg, bool):
                    raise PatternError("'exists' takes true or false")
                if (value is not _MISSING) == arg:
                    return True
                continue
            if value is _MISSING:
                continue
            if any(_content_filter(name, arg, c) for c in candidates):
                return True
        elif value is not _MISSING and any(_equal(alt, c) for c in candidates):
            return True
    return False


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    return bool(type(expected) is type(actual) and expected == actual)


def _str_filter(arg: Any, actual: Any, test: Callable[[str, str], bool]) -> bool:
    if not isinstance(actual, str):
        return False
    if isinstance(arg, dict) and set(arg) == {"equals-ignore-case"}:
        return test(actual.lower(), str(arg["equals-ignore-case"]).lower())
    if isinstance(arg, list):
        return any(isinstance(a, str) and test(actual, a) for a in arg)
    if not isinstance(arg, str):
        raise PatternError(f"expected a string, got {json.dumps(arg)}")
    return test(actual, arg)


def _wildcard(actual: str, pattern: str) -> bool:
    parts = re.split(r"(?<!\\)\*", pattern)
    regex = ".*".join(re.escape(p.replace("\\*", "*")) for p in parts)
    return re.fullmatch(regex, actual, flags=re.DOTALL) is not None


def _numeric_filter(arg: Any, actual: Any) -> bool:
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    if not isinstance(arg, list) or len(arg) % 2 or not arg:
        raise PatternError(f'\'numeric\' takes operator/value pairs such as [">", 0, "<=", 5], got {arg}')
    for op, bound in zip(arg[::2], arg[1::2], strict=True):
        if op not in _NUMERIC_OPS or isinstance(bound, bool) or not isinstance(bound, int | float):
            raise PatternError(f"'numeric' has an unknown operator or non-numeric bound: {op!r} {bound!r}")
        if not _NUMERIC_OPS[op](float(actual), float(bound)):
            return False
    return True


def _content_filter(name: str, arg: Any, actual: Any) -> bool:
    if name == "prefix":
        return _str_filter(arg, actual, str.startswith)
    if name == "suffix":
        return _str_filter(arg, actual, str.endswith)
    if name == "equals-ignore-case":
        return _str_filter(arg, actual, lambda a, b: a.lower() == b.lower())
    if name == "wildcard":
        return _str_filter(arg, actual, _wildcard)
    if name == "anything-but":
        if isinstance(arg, dict):
            ((inner, inner_arg),) = arg.items()
            return not _content_filter(inner, inner_arg, actual)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_equal(x, actual) for x in excluded)
    if name == "numeric":
        return _numeric_filter(arg, actual)
    if name == "cidr":
        if not isinstance(actual, str):
            return False
        try:
            return ipaddress.ip_address(actual) in ipaddress.ip_network(str(arg), strict=False)
        except ValueError:
            return False
    raise PatternError(
        f"unknown content filter {name!r} (supported: prefix, suffix, equals-ignore-case, "
        "wildcard, anything-but, numeric, exists, cidr)"
    )


# ---- target input (Input / InputPath / InputTransformer) ----

_PATH_TOKEN = re.compile(r"\.([A-Za-z0-9_\-$@]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def json_path(doc: Any, path: str) -> Any:
    """Resolve the simple JSONPath EventBridge accepts in ``InputPath``/``InputPathsMap``.

    Returns None for a path that does not exist (EventBridge then passes null).
    """
    if not path.startswith("$"):
        raise PatternError(f"input path {path!r} must start with '$'")
    node, pos = doc, 1
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            raise PatternError(f"input path {path!r} is not supported at position {pos} (use $.a.b, $.a[0] or $['a'])")
        key: str | int = int(m.group(2)) if m.group(2) is not None else (m.group(1) or m.group(3) or m.group(4) or "")
        pos = m.end()
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and -len(node) <= key < len(node) else None
        else:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def target_input(target: dict[str, Any], event: dict[str, Any], rule_name: str = "", rule_arn: str = "") -> str:
    """The JSON text a target receives for ``event``, applying Input, InputPath or InputTransformer."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        return json.dumps(json_path(event, str(target["InputPath"])))
    transformer = target.get("InputTransformer")
    if transformer:
        values: dict[str, Any] = {
            name: json_path(event, path) for name, path in (transformer.get("InputPathsMap") or {}).items()
        }
        values.setdefault("aws.events.rule-name", rule_name)
        values.setdefault("aws.events.rule-arn", rule_arn)
        values.setdefault("aws.events.event.ingestion-time", event.get("time"))
        template = str(transformer.get("InputTemplate", ""))

        def fill(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in {"aws.events.event", "aws.events.event.json"}:
                return json.dumps(event)
            if name not in values:
                return m.group(0)
            v = values[name]
            return v if isinstance(v, str) else json.dumps(v)

        return re.sub(r"<([A-Za-z0-9_.\-]+)>", fill, template)
    return json.dumps(event)
