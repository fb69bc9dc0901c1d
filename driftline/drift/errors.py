"""Errors the drift engine raises, each phrased as what is wrong, where, and how to fix it."""

from __future__ import annotations


class DriftInputError(ValueError):
    """Data or arguments the engine cannot use (unknown column, unsupported container, ...)."""


class ProfileMismatchError(ValueError):
    """A reference profile built for another model or feature-set version than the data checked."""


class ProfileFormatError(ValueError):
    """A saved profile that is not a driftline profile, or is damaged."""
