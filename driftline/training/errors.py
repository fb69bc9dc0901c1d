"""Why a training run refused to produce a candidate."""

from __future__ import annotations


class TrainingRejectedError(Exception):
    """The data or the configuration cannot produce a trustworthy model.

    The message is recorded verbatim as the rejected version's ``reason`` and returned to the
    workflow, so it says what is wrong, where, and how to fix it.
    """

    def __init__(self, reason: str, *, code: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
