"""The scikit-learn pipeline as a skops file: never pickle or joblib for anything loaded back.

skops refuses to instantiate types it was not told to trust; :func:`load_pipeline` trusts only
scikit-learn, NumPy and SciPy types and refuses anything else, so a crafted file cannot run code.
Callers pass bytes from :func:`driftline.registry.artifacts.read_verified` (hash checked first).
"""

from __future__ import annotations

from typing import Any

TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


class UntrustedArtifactError(RuntimeError):
    """A skops file names a type outside scikit-learn/NumPy/SciPy."""


def dump_pipeline(pipeline: Any) -> bytes:
    import skops.io as sio

    data: bytes = sio.dumps(pipeline)
    return data


def load_pipeline(data: bytes) -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise UntrustedArtifactError(f"the skops file needs type(s) outside scikit-learn/NumPy/SciPy: "
                                     f"{', '.join(sorted(foreign))}; refusing to load it")
    return sio.loads(data, trusted=untrusted)
