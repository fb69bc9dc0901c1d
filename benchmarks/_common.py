"""Tiny helpers shared by the benchmark scripts: a plain-text table and flat JSON output."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, title: str = "") -> None:
    """Print rows (dicts) as an aligned table; ``columns`` picks and orders the keys."""
    if not rows:
        return
    cols = list(columns or rows[0].keys())
    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    if title:
        print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def write_json(path: str | Path | None, results: Mapping[str, Any]) -> None:
    """Write flat JSON (keys carry units, e.g. ``check_s``, ``peak_rss_mb``, ``ratio_vs_scipy``)."""
    if path is None:
        return
    flat = {k: v for k, v in results.items() if isinstance(v, int | float | str | bool) or v is None}
    Path(path).write_text(json.dumps(flat, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {path}")
