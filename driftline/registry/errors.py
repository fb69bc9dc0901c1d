"""The registry's refusals, each with the HTTP status an API answers it with.

Separate from :mod:`driftline.registry.store` so the pure transition rules
(:mod:`driftline.registry.transitions`) raise the same errors the store does without importing it.
"""

from __future__ import annotations

__all__ = [
    "ConcurrentUpdateError",
    "InvalidTransitionError",
    "NotAllowedError",
    "QualityGateFailedError",
    "RegistryError",
    "UnknownModelError",
    "UnknownVersionError",
]


class RegistryError(Exception):
    """Base class; ``status_code`` is the HTTP status an API should answer with."""

    status_code = 400


class UnknownModelError(RegistryError):
    status_code = 404


class UnknownVersionError(RegistryError):
    status_code = 404


class NotAllowedError(RegistryError):
    status_code = 403


class InvalidTransitionError(RegistryError):
    status_code = 409


class QualityGateFailedError(InvalidTransitionError):
    """Approve/promote of a version that did not pass the quality gate, without an override (409)."""


class ConcurrentUpdateError(RegistryError):
    """Another writer changed the aliases between our read and our write; re-read and retry."""

    status_code = 409
