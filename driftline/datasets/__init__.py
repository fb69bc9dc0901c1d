"""Example data generators (importable by the demo, tests, training and drift code)."""
