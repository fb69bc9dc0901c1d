"""Schema-driven validation and encoding of request rows, in one pass over the values.

The rules come from the ``input_schema`` stored with the model version (``FeatureSet.input_schema()``),
so a request is judged by exactly the definition the model was trained on. Each problem is reported
with its row index, field, what was expected and what came, so a client can fix every mistake in one
round trip. Values that pass are encoded on the spot with the same mapping as
:func:`driftline.features.encoding.encode_columns` (category -> index in ``categories``, bool -> 1/0,
null/unknown -> NaN); ``tests/unit/test_serving_validation.py`` checks the two agree bit for bit.

Plain Python and numpy only: this runs on every request.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from driftline.features.encoding import FLOAT32_MAX, MODEL_INPUT_TYPES, category_index
from driftline.serving.body import NonFinite
from driftline.serving.errors import unprocessable

__all__ = ["COLUMNAR_MIN_ROWS", "FastField", "FieldSpec", "InputKind", "InputValidator", "ValidatedRows", "describe"]


class InputKind(IntEnum):
    """How a model input is read on the fast paths: the four model input types, as small ints so the
    per-row loop compares them cheaply."""

    FLOAT = 0
    INT = 1
    CATEGORICAL = 2
    BOOL = 3


_MISSING = object()
# the per-row loop compares kinds by identity with these (every FastField holds an InputKind member)
_FLOAT, _INT, _CAT, _BOOL = InputKind.FLOAT, InputKind.INT, InputKind.CATEGORICAL, InputKind.BOOL
_KIND = {"float": _FLOAT, "int": _INT, "categorical": _CAT, "bool": _BOOL}
_NAN = float("nan")
_NONE_TYPE = type(None)
_DICT_ONLY = {dict}
_ALLOWED = {_FLOAT: frozenset({float, int}), _INT: frozenset({int}), _CAT: frozenset({str}), _BOOL: frozenset({bool})}
"""Value types the column path takes as they are (anything else goes to the row path)."""
COLUMNAR_MIN_ROWS = 8
"""From this many rows a batch is checked column by column (numpy); below, row by row is faster."""


def describe(value: Any) -> str:
    """How a received value is shown in an error message (JSON spelling plus its JSON type)."""
    if value is _MISSING:
        return "nothing (the field is missing)"
    if value is None:
        return "null"
    if value is True or value is False:
        return f"{'true' if value else 'false'} (boolean)"
    if isinstance(value, NonFinite):
        return f"{value.literal} (not a valid JSON number)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'"{shown}" (string)'
    if isinstance(value, int):
        text = str(value) if value.bit_length() < 200 else "a very large integer"
        return f"{text} (integer)"
    if isinstance(value, float):
        return f"{value!r} (number)"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True)
class FieldSpec:
    """One feature of the input schema, compiled for checking."""

    name: str
    type: str
    nullable: bool
    min: float | None
    max: float | None
    codes: Mapping[Any, float] | None
    request_time: bool
    is_input: bool
    expected: str

    @classmethod
    def from_schema(cls, f: Mapping[str, Any]) -> FieldSpec:
        ftype = str(f["type"])
        lo = None if f.get("min") is None else float(f["min"])
        hi = None if f.get("max") is None else float(f["max"])
        nullable = bool(f.get("nullable", True))
        codes = category_index(f) if ftype == "categorical" else None
        if ftype in ("int", "float"):
            what = "an integer" if ftype == "int" else "a finite number"
            if lo is not None and hi is not None:
                expected = f"{what} between {_fmt_num(lo)} and {_fmt_num(hi)}"
            elif lo is not None:
                expected = f"{what} >= {_fmt_num(lo)}"
            elif hi is not None:
                expected = f"{what} <= {_fmt_num(hi)}"
            else:
                expected = what
        elif ftype == "bool":
            expected = "true or false"
        elif ftype == "categorical":
            cats = list(codes or ())
            shown = ", ".join(f'"{c}"' for c in cats[:12]) + (", ..." if len(cats) > 12 else "")
            expected = f"one of {shown}"
        elif ftype == "timestamp":
            expected = "an ISO-8601 timestamp string"
        else:
            expected = "a string"
        if nullable:
            expected += " or null"
        return cls(
            name=str(f["name"]),
            type=ftype,
            nullable=nullable,
            min=lo,
            max=hi,
            codes=codes,
            request_time=bool(f.get("request_time", False)),
            is_input=ftype in MODEL_INPUT_TYPES,
            expected=expected,
        )


class FastField(NamedTuple):
    """One model input as the fast paths check it (:attr:`InputValidator.fast_fields`, in model-input order).

    Everything a plainly valid value is checked against, precomputed once per schema. The column path and
    :class:`~driftline.serving.typed_records.TypedRecords` read it by name; the per-row loop unpacks plain
    tuple copies of it in this field order (hence a NamedTuple: names for readers, a fixed order for the
    loop). A value these bounds do not plainly accept goes to :meth:`InputValidator.check`, which decides
    and words the problem.
    """

    name: str
    """The field's name, the key of its value in a request row."""
    kind: InputKind
    """Which fast check applies (and how the value is encoded)."""
    lo: float
    """Smallest number accepted as it is: the schema's ``min``, never below ``-FLOAT32_MAX`` (what the
    model's float32 input holds). Only read for ``FLOAT`` and ``INT``."""
    hi: float
    """Largest number accepted as it is: the schema's ``max``, never above ``FLOAT32_MAX``."""
    codes: Mapping[Any, float]
    """Category -> model code (:func:`~driftline.features.encoding.category_index`); empty unless
    ``CATEGORICAL``."""
    nullable: bool
    """Whether null is accepted (encoded as NaN)."""
    spec: FieldSpec
    """The full field, for the slow path's checks and messages."""

    @classmethod
    def of(cls, spec: FieldSpec) -> FastField:
        """The fast-path description of a model input (``spec.is_input``)."""
        f32 = FLOAT32_MAX
        return cls(
            name=spec.name,
            kind=_KIND[spec.type],
            lo=-f32 if spec.min is None else max(spec.min, -f32),
            hi=f32 if spec.max is None else min(spec.max, f32),
            codes=spec.codes or {},
            nullable=spec.nullable,
            spec=spec,
        )


@dataclass
class ValidatedRows:
    """Rows that passed: the model input matrix and the values as received (for capture).

    Rows are dicts, or msgspec structs when :mod:`driftline.serving.typed_records` decoded the body
    (``typed_records.row_dict`` turns one back into the object sent)."""

    X: np.ndarray
    rows: list[Any]


class InputValidator:
    """Checks request rows against an ``input_schema`` and encodes them for the model."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        feats = schema.get("features")
        if not isinstance(feats, list) or not feats:
            raise ValueError("input_schema has no 'features' list")
        self.schema = schema
        self.fields = [FieldSpec.from_schema(f) for f in feats]
        self.by_name = {f.name: f for f in self.fields}
        self.names = frozenset(self.by_name)
        self.inputs = [f for f in self.fields if f.is_input]
        self.others = [f for f in self.fields if not f.is_input]
        self.entity: list[str] = [str(e) for e in schema.get("entity") or ()]
        self.reject_unknown = schema.get("unknown_category", "reject") != "map_unknown"
        self.n_inputs = len(self.inputs)
        self.fast_fields = [FastField.of(f) for f in self.inputs]
        """The model inputs as the fast paths check them (also read by the typed records decoder)."""
        # the same, as plain tuples for the per-row loop: CPython unpacks an exact tuple faster than a
        # NamedTuple, and that loop runs once per field of every row
        self._row_fields: list[tuple[Any, ...]] = [tuple(f) for f in self.fast_fields]
        input_names = [f.name for f in self.inputs]
        self._getter: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            operator.itemgetter(*input_names) if len(input_names) > 1 else lambda r: (r[input_names[0]],)
        )
        inf = float("inf")
        self._lo = np.array([[-inf if f.kind in (_CAT, _BOOL) else f.lo] for f in self.fast_fields])
        self._hi = np.array([[inf if f.kind in (_CAT, _BOOL) else f.hi] for f in self.fast_fields])

    # ------------------------------------------------------------------ one value
    def check(self, spec: FieldSpec, v: Any) -> tuple[float, str | None]:  # noqa: C901 - one branch per feature type and JSON value kind, run per value on the request path: helper calls would cost every value
        """(encoded value, None) when ``v`` is acceptable, else (NaN, hint or '')."""
        t = spec.type
        if v is None:
            return (_NAN, None) if spec.nullable else (_NAN, "the field is not nullable")
        if t in ("float", "int"):
            tv = type(v)
            if tv is int:
                try:
                    x = float(v)
                except OverflowError:
                    return _NAN, "the number is too large"
            elif tv is float:
                x = v
                if not math.isfinite(x):
                    return _NAN, "NaN and Infinity are not accepted; send null for a missing value"
                if t == "int" and not x.is_integer():
                    return _NAN, ""
            elif isinstance(v, str):
                return _NAN, "send numbers as JSON numbers, not strings"
            elif isinstance(v, NonFinite):
                return _NAN, "NaN and Infinity are not accepted; send null for a missing value"
            else:
                return _NAN, ""
            if (spec.min is not None and x < spec.min) or (spec.max is not None and x > spec.max):
                return _NAN, "out of range"
            if abs(x) > FLOAT32_MAX:
                return _NAN, "the number does not fit the model's 32-bit input"
            return x, None
        if t == "categorical":
            codes = spec.codes
            assert codes is not None
            if type(v) is str:
                code = codes.get(v)
                if code is not None:
                    return code, None
                if not self.reject_unknown:
                    return _NAN, None
                close = difflib.get_close_matches(v, [str(c) for c in codes], n=1)
                return _NAN, f'unknown category; did you mean "{close[0]}"?' if close else "unknown category"
            return _NAN, ""
        if t == "bool":
            if v is True:
                return 1.0, None
            if v is False:
                return 0.0, None
            return _NAN, ""
        if t == "timestamp":
            if isinstance(v, str):
                try:
                    datetime.fromisoformat(v)
                    return _NAN, None
                except ValueError:
                    return _NAN, "not an ISO-8601 timestamp"
            return _NAN, ""
        return (_NAN, None) if isinstance(v, str) else (_NAN, "")

    # ------------------------------------------------------------------ rows
    def validate(
        self, rows: Sequence[Any], *, origins: Sequence[Mapping[str, str]] | None = None, first_row: int = 0
    ) -> ValidatedRows:
        """Validate and encode ``rows`` (dicts); raise a 422 listing every problem found."""
        if len(rows) >= COLUMNAR_MIN_ROWS:
            done = self._validate_columns(rows)
            if done is not None:
                return done
        return self._validate_rows(rows, origins, first_row)

    def _validate_columns(self, rows: Sequence[Any]) -> ValidatedRows | None:  # noqa: C901 - one early exit per way a batch leaves the columnar fast path; the row path words the problem
        """The same acceptance and encoding as :meth:`_validate_rows`, a column at a time with numpy,
        for batches where every value is plainly valid (the common case). ``None`` as soon as anything
        is not: the row path then finds and words every problem. Faster from a few rows up
        (docs/performance.md); ``tests/unit/test_serving_validation.py`` checks the two paths agree on
        random batches."""
        if set(map(type, rows)) != _DICT_ONLY:
            return None
        if self.others:
            names = self.names
            if not all(map(names.issuperset, rows)):
                return None
        elif set(map(len, rows)) != {self.n_inputs}:  # with every input present: no extra field
            return None
        try:
            cols: list[Any] = list(zip(*map(self._getter, rows), strict=True))
        except KeyError:  # a missing field: the row path words it
            return None
        nulls = 0
        n = len(rows)
        for j, field in enumerate(self.fast_fields):
            col = cols[j]
            types = set(map(type, col))
            if _NONE_TYPE in types:
                if not field.nullable:
                    return None
                types.discard(_NONE_TYPE)
                nulls += col.count(None)
            if not types <= _ALLOWED[field.kind]:
                return None
            if field.kind is _CAT:  # unknown categories and nulls -> NaN, told apart by the null count below
                cols[j] = list(map(field.codes.get, col, repeat(_NAN, n)))
        try:
            mat = np.array(cols, dtype=np.float64)  # None -> NaN; True/False -> 1/0
        except OverflowError:
            return None
        # every cell inside its bounds, except exactly the nulls (NaN fails both comparisons)
        if int(np.count_nonzero((mat >= self._lo) & (mat <= self._hi))) + nulls != mat.size:
            return None
        X = np.ascontiguousarray(mat.T, dtype=np.float32)
        for spec in self.others:
            for row in rows:
                v = row.get(spec.name, _MISSING)
                if v is not _MISSING and self.check(spec, v)[1] is not None:
                    return None
        return ValidatedRows(X=X, rows=list(rows))

    def _validate_rows(  # noqa: C901 - the per-value loop of the request path, inlined on purpose (typed_records and the columnar path take the common cases)
        self, rows: Sequence[Any], origins: Sequence[Mapping[str, str]] | None, first_row: int
    ) -> ValidatedRows:
        flat: list[float] = []
        append = flat.append
        problems: list[dict[str, Any]] = []
        names = self.names
        check = self.check
        fast = self._row_fields
        good: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            idx = first_row + i
            if type(row) is not dict:
                problems.append(
                    _problem(idx, None, "an object with the model's fields", row, "each row must be a JSON object")
                )
                continue
            if not names.issuperset(row):
                for k in row:
                    if k not in names:
                        close = difflib.get_close_matches(str(k), list(names), n=1)
                        fix = f'did you mean "{close[0]}"?' if close else "remove it"
                        problems.append(
                            _problem(
                                idx,
                                str(k),
                                "no such field (not in the input schema)",
                                row[k],
                                fix,
                                source=origins[i].get(k) if origins else None,
                            )
                        )
            get = row.get
            for name, kind, lo, hi, codes, nullable, spec in fast:  # a FastField, unpacked in field order
                v = get(name, _MISSING)
                tv = type(v)
                # fast paths: the common, valid values (NaN fails the range test and falls through)
                if kind is _FLOAT:
                    if (tv is float or tv is int) and lo <= v <= hi:
                        append(float(v))
                        continue
                elif kind is _INT:
                    if tv is int and lo <= v <= hi:
                        append(float(v))
                        continue
                elif kind is _CAT:
                    if tv is str:
                        code = codes.get(v)
                        if code is not None:
                            append(code)
                            continue
                elif tv is bool:
                    append(1.0 if v else 0.0)
                    continue
                if v is None and nullable:
                    append(_NAN)
                    continue
                if v is _MISSING:
                    problems.append(self._missing(idx, spec, origins[i] if origins else None))
                    append(_NAN)
                    continue
                x, hint = check(spec, v)
                if hint is not None:
                    problems.append(
                        _problem(
                            idx,
                            spec.name,
                            spec.expected,
                            v,
                            hint,
                            source=origins[i].get(spec.name) if origins else None,
                        )
                    )
                append(x)
            for spec in self.others:
                v = row.get(spec.name, _MISSING)
                if v is _MISSING:
                    continue
                _, hint = check(spec, v)
                if hint is not None:
                    problems.append(
                        _problem(
                            idx,
                            spec.name,
                            spec.expected,
                            v,
                            hint,
                            source=origins[i].get(spec.name) if origins else None,
                        )
                    )
            good.append(row)
        if problems:
            n_rows = len({p["row"] for p in problems})
            raise unprocessable(
                f"{len(problems)} problem(s) in {n_rows} row(s); see 'details' (one entry per row and field)",
                problems,
                code="invalid_rows",
            )
        X = np.array(flat, dtype=np.float32).reshape(len(rows), self.n_inputs)
        return ValidatedRows(X=X, rows=good)

    def _missing(self, idx: int, spec: FieldSpec, origin: Mapping[str, str] | None) -> dict[str, Any]:
        if origin is None:
            hint = "every model feature must be present; send null for a missing value" + (
                "" if spec.nullable else " (this one is not nullable)"
            )
            return _problem(idx, spec.name, spec.expected, _MISSING, hint)
        if spec.request_time:
            hint = "a request-time feature: supply it in 'features' or in the entity object"
        else:
            hint = "the online store has no value for this entity; supply it in 'features' or in the entity object"
        return _problem(
            idx, spec.name, spec.expected, _MISSING, hint, source="request" if spec.request_time else "online_store"
        )


def _problem(
    row: int, field: str | None, expected: str, got: Any, hint: str, *, source: str | None = None
) -> dict[str, Any]:
    where = f"row {row}" + (f", field '{field}'" if field is not None else "")
    message = f"{where}: expected {expected}, got {describe(got)}" + (f" ({hint})" if hint else "")
    out: dict[str, Any] = {"row": row, "field": field, "expected": expected, "got": describe(got), "message": message}
    if source:
        out["source"] = source
    return out
