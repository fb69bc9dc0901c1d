"""What every coercer returns, and the rules they share.

A coercer turns one raw column (as read from the upload) into its curated type. Coercions are
deliberately narrow: a value is accepted only when it means the same thing in the declared type
(``3`` or ``"3"`` or ``3.0`` for an int; ``"true"``/``1`` for a bool; ISO 8601 text for a
timestamp, naive times taken as UTC). ``"abc"`` for a float, ``3.5`` for an int or an epoch number
for a timestamp are errors on that row, never silent guesses. NaN in a float column is treated as
null; infinities are errors.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["Coerced"]

Coerced = tuple[pa.Array, np.ndarray]
"""(typed array with nulls where the value failed, mask of the present values that failed)."""
