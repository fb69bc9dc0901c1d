"""Driftline: serverless MLOps on AWS. The notebook API is importable from the top level.

``driftline.load_training_set`` and ``driftline.register_model`` load lazily, so ``import
driftline`` stays cheap where only a submodule is used (the Lambda functions import submodules).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelRejectedError", "NotebookError", "RegisteredModel", "load_training_set", "register_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from driftline import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'driftline' has no attribute {name!r}")
