"""The scikit-learn pipeline as a skops file: never pickle or joblib for anything loaded back.

skops refuses to instantiate types it was not told to trust. :func:`load_pipeline` trusts a type
only when its exact name resolves to a *class* defined in scikit-learn, NumPy or SciPy, or is one of
a few plain builtin containers; a name prefix is never enough (``builtins.eval`` or a function of
one of those packages would otherwise be called while loading). When the caller knows the file's
SHA-256 (every registry artifact does), it is checked before skops reads a byte.
"""

from __future__ import annotations

import hashlib
import importlib
from typing import Any

__all__ = ["UntrustedArtifactError", "dump_pipeline", "load_pipeline", "trusted_type"]

TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")
SAFE_BUILTINS = frozenset(
    f"builtins.{n}"
    for n in (
        "bool",
        "bytes",
        "bytearray",
        "complex",
        "dict",
        "float",
        "frozenset",
        "int",
        "list",
        "set",
        "slice",
        "str",
        "tuple",
        "NoneType",
    )
)


class UntrustedArtifactError(RuntimeError):
    """A skops file names a type outside the trusted classes, or its bytes are not the recorded ones."""


def dump_pipeline(pipeline: Any) -> bytes:
    import skops.io as sio

    data: bytes = sio.dumps(pipeline)
    return data


def trusted_type(name: str) -> bool:
    """Whether ``name`` (``module.Class``) is a class of a trusted package or a plain builtin container."""
    if name in SAFE_BUILTINS:
        return True
    module_name, _, attr = name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] not in TRUSTED_PACKAGES or not attr or any(p in ("__main__", "tests", "testing") for p in parts):
        return False  # importing a package's __main__ runs it: deciding trust must never execute a program
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (Exception, SystemExit):  # a module that fails (or exits) on import is not a trusted class
        return False
    return isinstance(obj, type) and obj.__module__.split(".")[0] in TRUSTED_PACKAGES


def load_pipeline(data: bytes, sha256: str | None = None) -> Any:
    """Load a skops file of trusted classes only; ``sha256`` (hex) is verified first when given.

    Raises
    ------
    UntrustedArtifactError
        The digest differs, or the file needs a type :func:`trusted_type` refuses.
    """
    import skops.io as sio

    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise UntrustedArtifactError("the skops file's SHA-256 differs from the recorded one; refusing to load it")
    untrusted = sio.get_untrusted_types(data=data)
    foreign = [t for t in untrusted if not trusted_type(t)]
    if foreign:
        raise UntrustedArtifactError(
            f"the skops file needs type(s) that are not scikit-learn/NumPy/SciPy classes: "
            f"{', '.join(sorted(foreign))}; refusing to load it"
        )
    return sio.loads(data, trusted=untrusted)
