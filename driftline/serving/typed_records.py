"""The fast path for ``{"records": [...]}`` bodies: JSON decoded straight into checked, typed rows.

Why: parsing a body into dicts (orjson) and then checking every value in Python is most of a request's
own work (``benchmarks/serving.py`` measures both paths; figures in ``docs/performance.md``). msgspec
decodes the JSON into structs built from the input schema and checks types, ranges, categories, nulls,
missing and unknown fields while it parses, in C.

It only ever *accepts less* than :class:`~driftline.serving.validation.InputValidator`: whenever msgspec
refuses a body (a wrong type or value, an integral float in an int field, an unknown category under the
``map_unknown`` policy, ``entities`` instead of ``records``, too many rows, malformed JSON...),
:meth:`TypedRecords.decode` returns ``None`` and the caller takes the general path, which decides and
words every problem. So what is accepted, what is rejected and every error message are unchanged;
``tests/unit/test_serving_typed_records.py`` checks on random bodies that both paths give the same
matrix and the same row values.

Non-input fields (strings, timestamps) are optional, as in the validator, and checked the same way.
Rows stay msgspec structs (converting them to dicts would cost as much as the decoding saved); capture
turns them into JSON objects in its own thread (:func:`row_dict`).
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import repeat
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from driftline.serving.validation import InputKind, InputValidator, ValidatedRows

__all__ = ["TypedRecords", "row_dict"]

log = logging.getLogger(__name__)
_NAN = float("nan")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def row_dict(row: Any) -> Any:
    """A decoded row as the JSON object the client sent (keys as sent, numbers as sent)."""
    return msgspec.to_builtins(row) if isinstance(row, msgspec.Struct) else row


def _field_type(kind: InputKind, lo: float, hi: float, categories: Sequence[str], nullable: bool) -> Any:
    """The msgspec type accepting exactly the values the validator's fast paths take as they are."""
    t: Any
    if kind == InputKind.CATEGORICAL:
        t = Literal[tuple(categories)]
    elif kind == InputKind.BOOL:
        t = bool
    else:
        # int v: lo <= v <= hi  <=>  ceil(lo) <= v <= floor(hi); msgspec bounds must fit int64 (larger
        # integers, which the validator may accept, go to the general path)
        ilo, ihi = max(math.ceil(lo), _INT64_MIN), min(math.floor(hi), _INT64_MAX)
        as_int = Annotated[int, msgspec.Meta(ge=ilo, le=ihi)]
        t = as_int if kind == InputKind.INT else as_int | Annotated[float, msgspec.Meta(ge=lo, le=hi)]
    return t | None if nullable else t


def _tuple_getter(columns: Sequence[int]) -> Callable[[Any], tuple[Any, ...]]:
    """Attributes ``f<j>`` of a row as a tuple (``attrgetter`` of one name returns a bare value)."""
    names = [f"f{j}" for j in columns]
    if len(names) == 1:
        only = names[0]
        return lambda r: (getattr(r, only),)
    return operator.attrgetter(*names)


class TypedRecords:
    """Decodes ``{"records": [...]}`` for one input schema into :class:`ValidatedRows`, or ``None``."""

    def __init__(
        self,
        decoder: msgspec.json.Decoder[Any],
        width: int,
        categorical: list[tuple[int, dict[Any, float]]],
        timestamps: Sequence[str] = (),
    ) -> None:
        self._decoder = decoder
        self._timestamps = [operator.attrgetter(a) for a in timestamps]
        self._width = width
        self._getter = _tuple_getter(range(width))
        cat = {j for j, _ in categorical}
        self._numeric_idx = [j for j in range(width) if j not in cat]
        self._numeric = _tuple_getter(self._numeric_idx) if self._numeric_idx else None
        self._categorical = [(j, operator.attrgetter(f"f{j}"), codes) for j, codes in categorical]

    @classmethod
    def build(cls, validator: InputValidator) -> TypedRecords | None:
        """``None`` when the schema has fields this path does not model (categories that are not
        strings, non-input fields of another type): those use the general path. Never raises: a schema
        msgspec cannot express must not stop the model from serving."""
        try:
            return cls._build(validator)
        except Exception as e:
            log.warning("typed fast path off for this schema (%s); requests use the general path", e)
            return None

    @classmethod
    def _build(cls, validator: InputValidator) -> TypedRecords | None:
        fields: list[tuple[str, Any, Any]] = []
        categorical: list[tuple[int, dict[Any, float]]] = []
        for j, f in enumerate(validator.fast_fields):
            if f.kind == InputKind.CATEGORICAL:
                cats = list(f.codes)
                if not cats or not all(type(c) is str for c in cats):
                    return None
                categorical.append((j, dict(f.codes)))
            else:
                cats = []
            # attribute names f0..fN: any JSON key (spaces, keywords) works, renamed to the key as sent
            fields.append((f"f{j}", _field_type(f.kind, f.lo, f.hi, cats, f.nullable), msgspec.field(name=f.name)))
        width = len(fields)
        timestamps: list[str] = []
        for k, spec in enumerate(validator.others):  # not model inputs: strings, timestamps; optional
            if spec.type not in ("string", "timestamp"):
                return None
            text: Any = str | None if spec.nullable else str
            fields.append((f"o{k}", text | msgspec.UnsetType, msgspec.field(default=msgspec.UNSET, name=spec.name)))
            if spec.type == "timestamp":
                timestamps.append(f"o{k}")
        row = msgspec.defstruct("Row", fields, forbid_unknown_fields=True, gc=False)
        records = Annotated[list[row], msgspec.Meta(min_length=1)]  # type: ignore[valid-type]
        body = msgspec.defstruct("Body", [("records", records)], forbid_unknown_fields=True, gc=False)
        return cls(msgspec.json.Decoder(body), width, categorical, timestamps)

    def decode(self, text: str | bytes, max_rows: int) -> ValidatedRows | None:
        """The encoded matrix and rows when every row is plainly valid, else ``None`` (general path)."""
        try:
            rows: list[Any] = self._decoder.decode(text).records
        except Exception:  # anything refused (msgspec.ValidationError, DecodeError, lone surrogates...)
            return None
        n = len(rows)
        if n > max_rows:
            return None
        for get in self._timestamps:  # the validator's test: a string datetime.fromisoformat reads
            for value in map(get, rows):
                if type(value) is str:
                    try:
                        datetime.fromisoformat(value)
                    except ValueError:
                        return None
        if n == 1:  # the common single-row request: no transposition
            vals = list(self._getter(rows[0]))
            for j, _, codes in self._categorical:
                vals[j] = codes.get(vals[j], _NAN)
            one = np.array([vals], dtype=np.float64)  # via float64, like the column path (same rounding)
            return ValidatedRows(X=one.astype(np.float32), rows=rows)
        # numbers and booleans: one row-major numpy conversion (None -> NaN, True/False -> 1/0);
        # categories: one column at a time, code lookup (null -> NaN). Via float64, like the row path.
        mat = np.empty((n, self._width), dtype=np.float64)
        if self._numeric is not None:
            mat[:, self._numeric_idx] = np.array(list(map(self._numeric, rows)), dtype=np.float64)
        for j, get, codes in self._categorical:
            mat[:, j] = list(map(codes.get, map(get, rows), repeat(_NAN, n)))
        return ValidatedRows(X=mat.astype(np.float32), rows=rows)
