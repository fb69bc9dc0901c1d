"""Helpers shared by test modules of different folders (integration, e2e): one definition each."""
