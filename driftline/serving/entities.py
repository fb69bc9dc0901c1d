"""Feature values by entity id from the online store, for ``{"entities": [...]}`` requests.

The reader is :class:`driftline.features.online.OnlineStore` (``BatchGetItem`` on the documented
item layout); it is built on the first entity request, so records-only traffic never pays for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from driftline import aws


class EntityLookup(Protocol):
    def get_many(self, feature_set_name: str, entity_ids: Sequence[str]) -> Mapping[str, Mapping[str, Any] | None]:
        """Latest feature values per entity id (``None`` or absent when the store has none)."""
        ...


def default_lookup() -> EntityLookup:
    from driftline.features.online import OnlineStore

    return OnlineStore(aws.env("ONLINE_TABLE"))
