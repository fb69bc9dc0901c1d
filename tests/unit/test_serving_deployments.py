"""Champion resolution: TTL re-checks, hot swaps, negative caching, and 503s with reasons."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from driftline.registry.artifacts import ArtifactIntegrityError, ArtifactRef
from driftline.registry.store import Aliases, ModelVersion, UnknownModelError
from driftline.serving import reference_model
from driftline.serving.deployments import DeploymentCache
from driftline.serving.errors import ServingError
from driftline.serving.model import LoadedModel, ModelLoadError
from driftline.serving.validation import InputValidator

MODEL = "credit-default"


class FakeRegistry:
    def __init__(self) -> None:
        self.aliases_by_model: dict[str, Aliases] = {}
        self.versions: dict[tuple[str, int], ModelVersion] = {}
        self.calls: list[str] = []
        self.down = False

    def exists(self, model: str) -> bool:
        self.calls.append(f"exists {model}")
        if self.down:
            raise ConnectionError("dynamodb unreachable")
        return model in self.aliases_by_model

    def aliases(self, model: str, consistent: bool = False) -> Aliases:
        self.calls.append(f"aliases {model}")
        if self.down:
            raise ConnectionError("dynamodb unreachable")
        if model not in self.aliases_by_model:
            raise UnknownModelError(model)
        return self.aliases_by_model[model]

    def get_version(self, model: str, version: int) -> ModelVersion:
        self.calls.append(f"version {model} {version}")
        return self.versions[(model, version)]

    def add(self, version: int, schema: dict[str, Any]) -> None:
        ref = ArtifactRef(uri=f"s3://b/models/{MODEL}/v{version}/model.onnx", sha256="0" * 64, version_id="x", size=1)
        self.versions[(MODEL, version)] = ModelVersion(
            model=MODEL,
            version=version,
            status="approved",
            created_at="t",
            created_by="me",
            input_schema=schema,
            artifacts={"onnx": ref},
        )

    def set(
        self,
        champion: int | None,
        challenger: int | None = None,
        mode: str = "none",
        percent: int = 0,
        revision: int = 1,
    ) -> None:
        self.aliases_by_model[MODEL] = Aliases(MODEL, champion, challenger, mode, percent, revision)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def schema(credit_fs: Any) -> dict[str, Any]:
    return credit_fs.input_schema()


@pytest.fixture
def env(schema: dict[str, Any]) -> tuple[FakeRegistry, DeploymentCache, Clock, dict[str, Any]]:
    reg, clock = FakeRegistry(), Clock()
    artifacts: dict[str, Any] = {}
    for v in (1, 2, 3):
        reg.add(v, schema)
        artifacts[reg.versions[(MODEL, v)].artifacts["onnx"].uri] = reference_model.build(schema, seed=v)

    def read(ref: ArtifactRef) -> bytes:
        data = artifacts[ref.uri]
        if isinstance(data, Exception):
            raise data
        return bytes(data)

    cache = DeploymentCache(reg, ttl_s=5.0, read_artifact=read, clock=clock)  # type: ignore[arg-type]
    return reg, cache, clock, artifacts


def err(fn: Any, *a: Any) -> ServingError:
    with pytest.raises(ServingError) as e:
        fn(*a)
    return e.value


def test_unknown_and_malformed_model_names_are_404_and_cached(env: Any) -> None:
    reg, cache, clock, _ = env
    assert err(cache.deployment, "Bad Name!").status == 404
    assert reg.calls == []  # rejected without a registry call
    e = err(cache.deployment, "nope")
    assert (e.status, e.code) == (404, "unknown_model")
    err(cache.deployment, "nope")
    assert reg.calls == ["aliases nope"]  # the second miss is answered from the cache
    clock.now += 5.0
    err(cache.deployment, "nope")
    assert reg.calls.count("aliases nope") == 2


def test_no_champion_is_503_with_a_reason(env: Any) -> None:
    reg, cache, _, _ = env
    reg.set(champion=None)
    e = err(cache.deployment, MODEL)
    assert (e.status, e.code) == (503, "no_champion")
    assert "no champion yet" in e.message and e.headers["Retry-After"] == "5"


def test_promotion_takes_effect_after_the_ttl_without_restart(env: Any) -> None:
    reg, cache, clock, _ = env
    reg.set(champion=1)
    assert cache.deployment(MODEL).champion.version == 1
    reg.set(champion=2, revision=2)
    clock.now += 4.9
    assert cache.deployment(MODEL).champion.version == 1  # still within the TTL
    clock.now += 0.2
    assert cache.deployment(MODEL).champion.version == 2
    assert reg.calls.count("aliases credit-default") == 2
    reg.set(champion=1, revision=3)  # rollback: v1 was evicted, so it is loaded again
    clock.now += 5.0
    assert cache.deployment(MODEL).champion.version == 1
    assert cache.loaded_versions() == [{"model": MODEL, "version": 1}]


def test_expire_forces_a_registry_check_on_the_next_request(env: Any) -> None:
    reg, cache, _, _ = env
    reg.set(champion=1)
    cache.deployment(MODEL)
    reg.set(champion=2, revision=2)
    cache.expire()  # what a SnapStart restore does: the snapshot's aliases may be old
    assert cache.deployment(MODEL).champion.version == 2


def test_sessions_are_cached_per_version(env: Any) -> None:
    reg, cache, clock, _ = env
    reg.set(champion=1)
    first = cache.deployment(MODEL).champion
    for _ in range(3):
        clock.now += 10
        assert cache.deployment(MODEL).champion is first
    assert reg.calls.count("version credit-default 1") == 1


def test_tampered_artifact_is_503_with_reason_then_retried_after_the_ttl(env: Any) -> None:
    reg, cache, clock, artifacts = env
    reg.set(champion=1)
    uri = reg.versions[(MODEL, 1)].artifacts["onnx"].uri
    good = artifacts[uri]
    artifacts[uri] = ArtifactIntegrityError("SHA-256 is abc, but def was recorded")
    e = err(cache.deployment, MODEL)
    assert (e.status, e.code) == (503, "model_unavailable")
    assert "champion credit-default v1 cannot serve" in e.message and "integrity check" in e.message
    assert "SHA-256" not in e.message and "abc" not in e.message  # details are for the log, not for clients
    artifacts[uri] = good
    assert err(cache.deployment, MODEL).status == 503  # failure cached for the TTL
    clock.now += 5.0
    assert cache.deployment(MODEL).champion.version == 1


def test_corrupt_onnx_bytes_are_503_not_500(env: Any) -> None:
    reg, cache, _, artifacts = env
    reg.set(champion=1)
    artifacts[reg.versions[(MODEL, 1)].artifacts["onnx"].uri] = b"not a model"
    e = err(cache.deployment, MODEL)
    assert e.status == 503 and "cannot be loaded" in e.message


def test_registry_outage_keeps_serving_the_cached_champion(env: Any) -> None:
    reg, cache, clock, _ = env
    reg.set(champion=1)
    cache.deployment(MODEL)
    reg.down = True
    clock.now += 10
    assert cache.deployment(MODEL).champion.version == 1
    fresh = DeploymentCache(reg, ttl_s=5.0, clock=clock)  # type: ignore[arg-type]
    e = err(fresh.deployment, MODEL)
    assert (e.status, e.code) == (503, "registry_unavailable")


def test_challenger_modes_and_a_broken_challenger(env: Any) -> None:
    reg, cache, clock, artifacts = env
    reg.set(champion=1, challenger=2, mode="canary", percent=20)
    dep = cache.deployment(MODEL)
    assert (dep.champion.version, dep.challenger and dep.challenger.version, dep.mode, dep.percent) == (
        1,
        2,
        "canary",
        20,
    )
    reg.set(champion=1, challenger=3, mode="shadow", revision=2)
    artifacts[reg.versions[(MODEL, 3)].artifacts["onnx"].uri] = ArtifactIntegrityError("tampered")
    clock.now += 5
    dep = cache.deployment(MODEL)
    assert dep.challenger is None and dep.mode == "none"  # the champion answers alone
    assert cache.challenger_failures == 1


# ---------------------------------------------------------------- the loaded model itself
def test_reference_model_predictions_match_the_formula(schema: dict[str, Any]) -> None:
    m = LoadedModel(MODEL, 1, schema, reference_model.build(schema, seed=1))
    rows = reference_model.example_rows(schema, 50, seed=2)
    X = InputValidator(schema).validate(rows).X
    preds = m.predictions(m.run(X))
    p1 = reference_model.expected(schema, X, seed=1)
    assert np.allclose([p["probability"] for p in preds], p1, atol=1e-6)
    assert [p["label"] for p in preds] == [int(p > 0.5) for p in p1]
    assert all(set(p["probabilities"]) == {"0", "1"} for p in preds)
    assert m.task == "classification" and m.classes == [0, 1]


def test_class_names_come_from_the_schema_label(schema: dict[str, Any]) -> None:
    s = {**schema, "label": {"name": "y", "task": "binary_classification", "classes": ["no", "yes"]}}
    m = LoadedModel(MODEL, 1, s, reference_model.build(s))
    (p,) = m.predictions(np.array([[0.2, 0.8]], dtype=np.float32))
    assert p == {
        "label": "yes",
        "probability": pytest.approx(0.8),
        "probabilities": {"no": pytest.approx(0.2), "yes": pytest.approx(0.8)},
    }


def test_binary_label_is_numpy_argmax_including_ties_and_nan(schema: dict[str, Any]) -> None:
    m = LoadedModel(MODEL, 1, schema, reference_model.build(schema))
    nan = float("nan")
    out = np.array([[0.2, 0.8], [0.8, 0.2], [0.5, 0.5], [nan, 0.3], [0.3, nan], [nan, nan]], dtype=np.float32)
    assert [p["label"] for p in m.predictions(out)] == out.argmax(axis=1).tolist()


def test_the_compiled_session_run_gives_what_the_public_run_gives(schema: dict[str, Any]) -> None:
    m = LoadedModel(MODEL, 1, schema, reference_model.build(schema, seed=1))
    X = InputValidator(schema).validate(reference_model.example_rows(schema, 5, seed=3)).X
    assert m._run != m.session.run  # the wrapper's per-call checks are skipped
    assert np.array_equal(m.run(X), m.session.run(["probabilities"], {"X": X})[0])


def test_regression_signature(schema: dict[str, Any]) -> None:
    s = {**schema, "label": {"name": "y", "task": "regression", "classes": []}}
    m = LoadedModel(MODEL, 1, s, reference_model.build(s, task="regression"))
    X = InputValidator(s).validate(reference_model.example_rows(s, 3)).X
    preds = m.predictions(m.run(X))
    assert m.task == "regression" and list(preds[0]) == ["value"]


def test_signature_mismatch_is_refused(schema: dict[str, Any]) -> None:
    fewer = {**schema, "features": schema["features"][:-1]}
    with pytest.raises(ModelLoadError, match="does not match the input schema"):
        LoadedModel(MODEL, 1, schema, reference_model.build(fewer))
    three = {**schema, "label": {"name": "y", "task": "multiclass_classification", "classes": [1, 2, 3]}}
    with pytest.raises(ModelLoadError, match="2 class probabilities but the schema lists 3"):
        LoadedModel(MODEL, 1, three, reference_model.build(schema))
