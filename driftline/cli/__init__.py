"""The ``driftline`` console script."""
