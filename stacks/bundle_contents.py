"""What goes into the Lambda code bundle: plain data, no CDK import (tests read it cheaply)."""

from __future__ import annotations

CODE_INCLUDE = ("driftline", "lambdas")
"""Top-level folders copied into every function's code bundle."""
NOT_IN_LAMBDA = ("local", "cli", "demo", "datasets", "notebook.py", "serving/reference_model.py")
"""Parts of the ``driftline`` package that never run in Lambda: the local platform, the CLI, the demo,
the synthetic data generator, the notebook API and a test helper (tests/unit/test_import_layers.py
checks that nothing deployed imports them)."""
