"""Docstrings say why, not how fast: measured timings date and belong in docs/performance.md and the
benchmarks. A number with a time unit or a speed-up factor in a docstring of shipped code fails here.

Configured durations are not measurements: a docstring may say "the 900 s timeout" or "a 45 s
lease", which this test recognises by the words around the number (see ``CONFIGURED``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEASURED = re.compile(
    r"(~|≈|about |measured[^.]*?)\s?\d+(\.\d+)?\s?(ms|µs|us|s|x)\b"  # "~3 us", "about 10x", "measured ... 8 ms"
    r"|\b\d+(\.\d+)?\s?(ms|µs|us)\b"  # any millisecond/microsecond figure
    r"|\b\d+(\.\d+)?-\d+(\.\d+)?\s?(x|s)\b"  # ranges such as "30-50x", "0.1-0.3 s"
)
CONFIGURED = re.compile(r"timeout|lease|linger|budget|limit|cap\b|window|interval|ttl|delay|retry|cache", re.I)
"""Words that make a duration a setting, not a measurement."""


def _docstrings(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "lineno", 1), doc


def _claims(text: str) -> list[str]:
    out = []
    for m in MEASURED.finditer(text):
        around = text[max(0, m.start() - 40) : m.end() + 40]
        if not CONFIGURED.search(around):
            out.append(" ".join(around.split()))
    return out


def test_no_measured_timings_in_docstrings() -> None:
    files = [p for folder in ("driftline", "lambdas", "stacks") for p in sorted((ROOT / folder).rglob("*.py"))]
    bad = [
        f"{p.relative_to(ROOT)}:{line}: ...{claim}..."
        for p in files
        for line, doc in _docstrings(p)
        for claim in _claims(doc)
    ]
    assert not bad, "move these to docs/performance.md or a benchmark:\n" + "\n".join(bad)


def test_the_scan_tells_measurements_from_settings() -> None:
    assert _claims("orjson is ~10x faster") and _claims("this took 8 ms") and _claims("30-50x slower")
    assert not _claims("waits for the 900 s timeout") and not _claims("a 45 s lease, renewed")
    assert not _claims("one request per model and version")
