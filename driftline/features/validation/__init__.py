"""Validate a whole uploaded table against its feature set, vectorized (no per-row Python).

Every check produces a boolean mask over the rows; a row is accepted when no error mask marks it.
One module per part:

- :mod:`.result`: :class:`ValidationResult` (masks, typed table, accepted and rejected rows, report)
  and :class:`Check` (one failed check);
- :mod:`.run`: :func:`validate`, which runs every check of a feature set over a table;
- :mod:`.column_checks` and :mod:`.key_checks`: the checks of one column and of the row key;
- :mod:`.failures`: what one check job collects (masks, checks, sample rows);
- :mod:`.coerced` (the coercion rules), :mod:`.numeric`, :mod:`.boolean`, :mod:`.text`,
  :mod:`.timestamp`: the coercers, one per curated type;
- :mod:`.arrays`: Arrow/numpy helpers; :mod:`.parallel`: when work runs on threads.

This package's names are the public API; import from here unless a submodule's own name is what
you need (``parallel.PARALLEL_MIN_ROWS`` is read at call time, so patch it there).
"""

from __future__ import annotations

from driftline.features.validation.arrays import decode_text, take_rows
from driftline.features.validation.boolean import coerce_bool
from driftline.features.validation.coerced import Coerced
from driftline.features.validation.numeric import coerce_float, coerce_int
from driftline.features.validation.result import ROW_NUMBERING, Check, Severity, Status, ValidationResult
from driftline.features.validation.run import validate
from driftline.features.validation.text import coerce_text
from driftline.features.validation.timestamp import coerce_timestamp

__all__ = [
    "ROW_NUMBERING",
    "Check",
    "Coerced",
    "Severity",
    "Status",
    "ValidationResult",
    "coerce_bool",
    "coerce_float",
    "coerce_int",
    "coerce_text",
    "coerce_timestamp",
    "decode_text",
    "take_rows",
    "validate",
]
