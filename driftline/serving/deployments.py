"""Which versions answer for a model right now, re-checked cheaply so promotions apply in seconds.

The registry's aliases item (champion, challenger, traffic policy) is read at most once per
``CHAMPION_TTL_SECONDS`` per model (one DynamoDB GetItem); in between, requests use the cached
answer. A promotion or rollback therefore takes effect within the TTL, without a restart or a
redeploy. Model versions are loaded once (artifact fetched by S3 version id and SHA-256 verified by
:func:`driftline.registry.artifacts.read_verified`) and kept while they are champion or challenger.

Failure policy, chosen so a client never gets a 500 for the platform's state:
- unknown model -> 404 (also cached for the TTL, so random names cannot hammer DynamoDB);
- no champion, or a champion that cannot be loaded (missing or tampered artifact, bad signature)
  -> 503 with the reason; the failure is cached for the TTL, then retried;
- the registry unreachable while a champion is cached -> keep serving it (stale beats down);
- a challenger that cannot be loaded -> the champion answers alone; the reason is logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftline.registry.artifacts import ArtifactIntegrityError, ArtifactNotFoundError, read_verified
from driftline.registry.store import Aliases, ModelVersion, Registry, UnknownModelError, UnknownVersionError
from driftline.serving.errors import ServingError, not_found, unavailable
from driftline.serving.model import LoadedModel, ModelLoadError

log = logging.getLogger(__name__)

MODEL_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
"""Same rule as ``driftline.config.MODEL_NAME_RE`` (copied: config imports pydantic)."""
MAX_NEGATIVE_ENTRIES = 1024


@dataclass(frozen=True)
class Deployment:
    """The answer to "who serves this model": champion, optional challenger and the traffic mode."""

    model: str
    champion: LoadedModel
    challenger: LoadedModel | None
    mode: str
    percent: int
    revision: int


@dataclass
class _Entry:
    checked_at: float
    aliases: Aliases | None  # None: the model is not in the registry
    deployment: Deployment | None = None
    """Built on the first request after each refresh, then reused until the next one."""


class DeploymentCache:
    """Per-process cache of aliases (TTL) and loaded model versions (until replaced)."""

    def __init__(
        self,
        registry: Registry,
        ttl_s: float = 5.0,
        *,
        read_artifact: Callable[[Any], bytes] = read_verified,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._read_artifact = read_artifact
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._models: dict[tuple[str, int], LoadedModel] = {}
        self._versions: dict[tuple[str, int], ModelVersion] = {}
        self._failures: dict[tuple[str, int], tuple[float, str]] = {}
        self._lock = threading.RLock()
        self.challenger_failures = 0
        """Count of challenger loads that failed (drained into a metric by the handler)."""

    # ------------------------------------------------------------------ aliases
    def aliases(self, model: str) -> Aliases:
        """Current aliases (cached for the TTL); 404 for a model the registry does not know."""
        if not MODEL_NAME_RE.match(model):
            raise not_found(
                f"unknown model {model!r}: model names are lowercase letters, digits, '_' and '-'", code="unknown_model"
            )
        entry = self._entries.get(model)
        now = self._clock()
        if entry is None or now - entry.checked_at >= self.ttl_s:
            entry = self._refresh(model, entry, now)
        if entry.aliases is None:
            raise not_found(
                f"unknown model {model!r}: it is not in the registry (train and register a version first)",
                code="unknown_model",
            )
        return entry.aliases

    def _refresh(self, model: str, old: _Entry | None, now: float) -> _Entry:
        with self._lock:
            current = self._entries.get(model)
            if current is not None and current is not old and now - current.checked_at < self.ttl_s:
                return current  # another thread refreshed meanwhile
            try:
                entry = _Entry(now, self.registry.aliases(model))  # one GetItem, also for unknown names
            except UnknownModelError:
                entry = _Entry(now, None)
            except Exception as e:  # DynamoDB throttling, network, permissions
                if old is not None:
                    log.warning(
                        "registry unreachable; serving cached aliases of %s for another %.1fs: %s", model, self.ttl_s, e
                    )
                    old.checked_at = now
                    return old
                raise unavailable(
                    f"the model registry cannot be read right now ({type(e).__name__}); retry shortly",
                    code="registry_unavailable",
                    retry_after_s=1,
                ) from None
            if entry.aliases is None and len(self._entries) >= MAX_NEGATIVE_ENTRIES:
                self._entries = {k: v for k, v in self._entries.items() if v.aliases is not None}
            self._entries[model] = entry
            if entry.aliases is not None:
                self._evict(model, entry.aliases)
            return entry

    def _evict(self, model: str, al: Aliases) -> None:
        keep = {al.champion, al.challenger}
        for key in [k for k in self._models if k[0] == model and k[1] not in keep]:
            del self._models[key]

    # ------------------------------------------------------------------ versions
    def version_info(self, model: str, version: int) -> ModelVersion:
        key = (model, version)
        info = self._versions.get(key)
        if info is None:
            info = self.registry.get_version(model, version)
            self._versions[key] = info
        return info

    def load(self, model: str, version: int, role: str) -> LoadedModel:
        """The loaded version, or a 503 saying why it cannot serve (cached for the TTL)."""
        key = (model, version)
        loaded = self._models.get(key)
        if loaded is not None:
            return loaded
        with self._lock:
            loaded = self._models.get(key)
            if loaded is not None:
                return loaded
            failed = self._failures.get(key)
            now = self._clock()
            if failed is not None and now - failed[0] < self.ttl_s:
                raise unavailable(failed[1], code="model_unavailable", retry_after_s=max(1, int(self.ttl_s)))
            try:
                loaded = self._load(model, version, role)
            except ServingError as e:
                self._failures[key] = (now, e.message)
                raise
            self._failures.pop(key, None)
            self._models[key] = loaded
            return loaded

    def _load(self, model: str, version: int, role: str) -> LoadedModel:
        where = f"{role} {model} v{version}"
        try:
            info = self.version_info(model, version)
        except (UnknownVersionError, UnknownModelError) as e:
            raise unavailable(f"{where} cannot serve: {e}", code="model_unavailable") from None
        except Exception as e:
            raise unavailable(
                f"{where} cannot be looked up in the registry right now ({type(e).__name__}); retry shortly",
                code="registry_unavailable",
                retry_after_s=1,
            ) from None
        ref = info.artifacts.get("onnx")
        if ref is None:
            raise unavailable(f"{where} cannot serve: it has no ONNX artifact registered", code="model_unavailable")
        if not info.input_schema.get("features"):
            raise unavailable(f"{where} cannot serve: it has no input schema registered", code="model_unavailable")
        try:
            data = self._read_artifact(ref)
        except ArtifactIntegrityError as e:  # the details (URI, version id, hashes) go to the log only
            log.error("refusing to load %s: %s", where, e)
            raise unavailable(
                f"{where} cannot serve: its artifact failed the integrity check (see the function's log)",
                code="model_unavailable",
            ) from None
        except ArtifactNotFoundError as e:
            log.error("refusing to load %s: %s", where, e)
            raise unavailable(
                f"{where} cannot serve: its artifact is missing (see the function's log)", code="model_unavailable"
            ) from None
        except Exception as e:
            raise unavailable(
                f"{where} artifact cannot be read right now ({type(e).__name__}); retry shortly",
                code="artifact_unavailable",
                retry_after_s=1,
            ) from None
        try:
            return LoadedModel(model, version, info.input_schema, data)
        except (ModelLoadError, ValueError) as e:
            log.error("refusing to load %s: %s", where, e)
            raise unavailable(
                f"{where} cannot serve: its model cannot be loaded (see the function's log)", code="model_unavailable"
            ) from None

    # ------------------------------------------------------------------ deployment
    def deployment(self, model: str) -> Deployment:
        """Champion (required), challenger (optional) and traffic mode for ``model``."""
        entry = self._entries.get(model)
        if entry is not None and entry.deployment is not None and self._clock() - entry.checked_at < self.ttl_s:
            return entry.deployment
        al = self.aliases(model)
        if al.champion is None:
            raise unavailable(
                f"model {model!r} has no champion yet: approve and promote a version "
                f"(driftline models promote --model {model} --version N)",
                code="no_champion",
                retry_after_s=max(1, int(self.ttl_s)),
            )
        champion = self.load(model, al.champion, "champion")
        challenger = None
        mode = al.traffic_mode if al.challenger is not None else "none"
        if mode in ("shadow", "canary"):
            assert al.challenger is not None
            try:
                challenger = self.load(model, al.challenger, "challenger")
            except ServingError as e:
                self.challenger_failures += 1
                log.warning("challenger of %s not used: %s", model, e.message)
                mode = "none"
        dep = Deployment(
            model=model,
            champion=champion,
            challenger=challenger,
            mode=mode,
            percent=al.traffic_percent,
            revision=al.revision,
        )
        entry = self._entries.get(model)
        if entry is not None and entry.aliases is al:
            entry.deployment = dep
        return dep

    def expire(self) -> None:
        """Re-check every model's aliases on its next request (after a SnapStart restore)."""
        with self._lock:
            for entry in self._entries.values():
                entry.checked_at = float("-inf")

    def loaded_versions(self) -> list[dict[str, Any]]:
        return [{"model": m, "version": v} for (m, v) in sorted(self._models)]
