"""Register a model fitted outside Driftline: the same checks, artifacts and status as built-in training.

An imported model enters the registry exactly like a retrained one: converted to the one serving
signature (:mod:`driftline.training.conversion`), checked for parity on the feature set's
validation rows (the newest rows of the time split, as the endpoint will receive them), scored
with the same metrics, profiled for drift, uploaded with hashes, compared with the champion on the
same rows, and registered as a **candidate**: the gate, approval and canary decide the rest. A
model that fails any check is registered as **rejected** with the reason, so the attempt is on
record, and the error is raised to the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from driftline.config import ModelConfig
from driftline.features.schema import FeatureSet
from driftline.registry.store import Registry
from driftline.training.core import TrainedModel, evaluate, fit_threads, validation_fraction_of
from driftline.training.dataset import prepare, to_arrow
from driftline.training.errors import TrainingRejectedError
from driftline.training.frames import served_frame
from driftline.training.lineage import code_version, library_versions, training_set_lineage
from driftline.training.onnx_export import OnnxModel, parity
from driftline.training.publish import TrainingOutcome, _publish, current_champion

__all__ = [
    "EstimatorOnServedRows",
    "ImportedModel",
    "describe_estimator",
    "null_probes",
    "parity_on_served_rows",
    "register_imported",
]

NULL_PROBE_ROWS = 20
"""Validation rows copied with each nullable categorical set to null, for the parity check."""

MIN_EVALUATION_ROWS = 2


@dataclass(frozen=True)
class ImportedModel:
    """What is being registered: a fitted estimator, or ONNX bytes exported elsewhere."""

    estimator: Any = None
    onnx: bytes | None = None
    source: str = "notebook"  # notebook | file
    artifact_name: str = ""  # the file's name (source=file)
    artifact_sha256: str = ""
    class_indices: bool = False  # the graph's class labels are positions in the feature set's classes
    reference: Callable[[np.ndarray], np.ndarray] | None = None
    """The model's own prediction on the encoded matrix (a booster's ``predict``): parity is checked
    against it, not only against the converted graph."""

    def kind(self) -> str:
        return "onnx" if self.onnx is not None else "estimator"


def describe_estimator(estimator: Any) -> str:
    """``Pipeline(ColumnTransformer, HistGradientBoostingClassifier)``: the steps, for people."""
    steps = getattr(estimator, "steps", None)
    if steps:
        return f"{type(estimator).__name__}({', '.join(describe_estimator(s) for _, s in steps)})"
    return type(estimator).__name__


def _estimator_libraries(estimator: Any) -> dict[str, str]:
    roots = {type(estimator).__module__.split(".")[0]}
    for _, step in getattr(estimator, "steps", None) or ():
        roots.add(type(step).__module__.split(".")[0])
    out = {}
    for root in sorted(roots):
        name = {"sklearn": "scikit-learn"}.get(root, root)
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _key(value: Any) -> Any:
    """A class label as a dict key: 1, 1.0 and True are one class, as they are to scikit-learn."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value


class EstimatorOnServedRows:
    """The user's estimator seen through the served rows: probabilities in the feature set's class order."""

    def __init__(self, estimator: Any, schema: Mapping[str, Any]) -> None:
        self.estimator = estimator
        self.schema = schema
        self.columns = [str(c) for c in estimator.feature_names_in_]
        label = schema["label"]
        if label["task"] != "regression":
            from driftline.training.conversion import class_order

            theirs = np.asarray(estimator.classes_).tolist()
            order = class_order(theirs, label["classes"])  # their class i is our class order[i]
            self.order = [order.index(i) for i in range(len(label["classes"]))]
            self.index = dict(zip(map(_key, theirs), order, strict=True))

    def _frame(self, X: np.ndarray) -> Any:
        return served_frame(self.schema, X)[self.columns]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self._frame(X)))[:, self.order]

    def predict(self, X: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.estimator.predict(self._frame(X)))
        if self.schema["label"]["task"] == "regression":
            return raw.astype(np.float64).reshape(-1)
        return np.asarray([self.index.get(_key(v), -1) for v in raw.tolist()], dtype=np.int64)


def null_probes(schema: Mapping[str, Any], X: np.ndarray, rows: int = NULL_PROBE_ROWS) -> np.ndarray:
    """Copies of the first ``rows`` rows with one nullable categorical (or bool) feature null at a time.

    Validation rows may hold no null (or unknown, which serving maps to null) in a column that can
    have one at serving time; a graph that treats that case differently from scikit-learn must fail
    parity, not the first such request.
    """
    from driftline.features.encoding import model_features

    base = X[:rows]
    probes = []
    for j, f in enumerate(model_features(schema)):
        if f["type"] in ("categorical", "bool") and f.get("nullable", True) and len(base):
            p = base.copy()
            p[:, j] = np.nan
            probes.append(p)
    return np.concatenate(probes) if probes else X[:0]


def parity_on_served_rows(
    reference: Any, runtime: OnnxModel, X: np.ndarray, schema: Mapping[str, Any], classifier: bool
) -> dict[str, Any]:
    """:func:`parity` on the validation rows plus :func:`null_probes` (where scikit-learn answers them).

    Raises
    ------
    TrainingRejectedError
        The graph and the estimator disagree (or the graph fails) on any of those rows.
    """
    probes = null_probes(schema, X)
    if len(probes):
        try:
            reference.predict(probes)
        except Exception:  # e.g. OneHotEncoder(handle_unknown='error'): the notebook cannot score a null either
            report = parity(reference, runtime, X, classifier)
            return {**report, "null_probes": "skipped: the estimator refuses null categories"}
        report = parity(reference, runtime, np.concatenate([X, probes]), classifier)
        return {**report, "null_probes": len(probes)}
    return parity(reference, runtime, X, classifier)


class _OwnPredict:
    """A model's own predict on the encoded matrix, in the shape :func:`parity` compares."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self._predict = predict

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._predict(X), dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self._predict(X), dtype=np.float64)
        return out.argmax(axis=1) if out.ndim == 2 else out


def _convert(imported: ImportedModel, schema: Mapping[str, Any]) -> tuple[bytes, Any | None]:
    from driftline.training.conversion import adapt_onnx, convert_estimator

    if imported.onnx is not None:
        adapted = adapt_onnx(imported.onnx, schema, class_indices=imported.class_indices)
        return adapted, (_OwnPredict(imported.reference) if imported.reference is not None else None)
    return convert_estimator(imported.estimator, schema), EstimatorOnServedRows(imported.estimator, schema)


def _skops(estimator: Any) -> bytes:
    """The fitted scikit-learn object as skops (for inspection and re-scoring); empty when skops cannot save it."""
    if estimator is None:
        return b""
    from driftline.training.skops_io import dump_pipeline

    try:
        return dump_pipeline(estimator)
    except Exception:  # skops refuses some third-party objects; the ONNX graph is what serves
        return b""


def register_imported(
    imported: ImportedModel,
    data: Any,
    fs: FeatureSet,
    cfg: ModelConfig,
    *,
    registry: Registry,
    artifacts_bucket: str,
    created_by: str,
    training_set: Mapping[str, Any] | None = None,
    code: Mapping[str, Any] | None = None,
    validation_fraction: float | None = None,
) -> TrainingOutcome:
    """Check, convert and register ``imported`` for model ``cfg.name``; candidate or rejected.

    Parameters
    ----------
    imported
        The estimator (fitted on the feature columns by name) or the ONNX bytes.
    data
        The labelled training table (pyarrow or pandas): its time split gives the evaluation rows.
    training_set
        Lineage of ``data`` (``uri``, ``sha256``, object versions...); a content hash is added.
    code
        Where the model was fitted: ``path`` and ``sha256`` of the notebook or script, when known.

    Returns
    -------
    TrainingOutcome
        ``status`` is ``candidate`` or ``rejected`` (with ``reason``).
    """
    model = cfg.name
    table = to_arrow(data)
    ts_lineage = training_set_lineage(table, training_set)
    parent = current_champion(registry, model)
    schema = fs.input_schema()
    description = describe_estimator(imported.estimator) if imported.estimator is not None else "onnx"
    lineage: dict[str, Any] = {
        "source": imported.source,
        "imported": {"kind": imported.kind(), "estimator": description},
        "training_set": ts_lineage,
        "code": dict(code or {}),
        "feature_set": {"name": fs.name, "version": fs.version, "fingerprint": fs.fingerprint},
        "code_version": code_version(),
        "libraries": {**library_versions(), **_estimator_libraries(imported.estimator)},
        "parent_version": parent,
        "trigger": imported.source,
    }
    if imported.artifact_name:
        lineage["imported"].update(file=imported.artifact_name, sha256=imported.artifact_sha256)
    algorithm = f"imported:{description}"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        fraction = validation_fraction_of(cfg, validation_fraction)
        lineage["validation_fraction"] = fraction
        prepared = prepare(table, fs, min_rows=MIN_EVALUATION_ROWS, validation_fraction=fraction)
        t = time.perf_counter()
        onnx_bytes, reference = _convert(imported, schema)
        timings["convert"] = time.perf_counter() - t
        classifier = schema["label"]["task"] != "regression"
        runtime = OnnxModel(onnx_bytes)
        runtime.check_signature(prepared.X_val.shape[1], classifier)
        t = time.perf_counter()
        if isinstance(reference, _OwnPredict):
            parity_report = {
                **parity(reference, runtime, prepared.X_val, classifier),
                "checked_against": "the model's own predict",
            }
        elif reference is not None:
            # scikit-learn on one thread for small data, as training does: OpenMP spin-waiting on a
            # shared machine made this check 30x slower
            with threadpool_limits(limits=fit_threads(len(prepared.y_train))):
                parity_report = parity_on_served_rows(reference, runtime, prepared.X_val, schema, classifier)
        else:
            parity_report = {
                "rows": len(prepared.X_val),
                "checked_against": "the ONNX file's own graph",
                **_onnx_file_parity(imported.onnx or b"", runtime, prepared.X_val, schema),
            }
        timings["parity"] = time.perf_counter() - t
        prediction = runtime.predict(prepared.X_val)
        metrics = evaluate(prediction, prepared.y_val)
    except TrainingRejectedError as e:
        mv = registry.register(
            model,
            status="rejected",
            reason=e.reason,
            created_by=created_by,
            algorithm=algorithm,
            params={},
            input_schema=schema,
            feature_set=fs.name,
            feature_set_version=fs.version,
            feature_set_fingerprint=fs.fingerprint,
            lineage=lineage,
            trigger=imported.source,
        )
        return TrainingOutcome(
            model=model,
            version=mv.version,
            status="rejected",
            metrics={},
            champion_version=parent,
            champion_metrics=None,
            reason=e.reason,
            lineage=lineage,
        )
    timings["total"] = time.perf_counter() - t0
    trained = TrainedModel(
        algorithm=algorithm,
        task=schema["label"]["task"],
        params={},
        metrics=metrics,
        parity=parity_report,
        split=prepared.split,
        onnx=onnx_bytes,
        skops=_skops(imported.estimator),
        data=prepared,
        validation_prediction=prediction,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        rows_unlabeled=prepared.rows_unlabeled,
        fit_threads=None,
    )
    return _publish(
        trained,
        fs,
        cfg,
        registry=registry,
        bucket=artifacts_bucket,
        lineage=lineage,
        parent=parent,
        trigger=imported.source,
        created_by=created_by,
        progress=lambda _: None,
    )


def _onnx_file_parity(original: bytes, adapted: OnnxModel, X: np.ndarray, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The adapted graph against the file's own graph fed per column: the adapter must change nothing."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(original, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise TrainingRejectedError(
            f"the ONNX file cannot be loaded by onnxruntime ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
        ) from None
    frame = served_frame(schema, X)
    feeds: dict[str, np.ndarray] = {}
    for inp in session.get_inputs():
        if inp.name in frame.columns:
            col = frame[inp.name].to_numpy()
            if inp.type == "tensor(string)":
                feeds[inp.name] = np.asarray(
                    [("" if not isinstance(v, str) else v) for v in col], dtype=object
                ).reshape(-1, 1)
            else:
                dtype = np.float64 if inp.type == "tensor(double)" else np.float32
                feeds[inp.name] = col.astype(dtype).reshape(-1, 1)
        else:
            feeds[inp.name] = X.astype(np.float64 if inp.type == "tensor(double)" else np.float32)
    try:
        raw = session.run(None, feeds)
    except Exception as e:
        raise TrainingRejectedError(
            f"the ONNX file's graph fails on the validation rows ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
        ) from None
    got = adapted.predict(X)
    numeric = [np.asarray(r, dtype=np.float64) for r in raw if np.asarray(r).dtype.kind == "f"]
    if not numeric:
        raise TrainingRejectedError("the ONNX file's graph answers no float output to compare with")
    if got.probabilities is not None:
        ref = numeric[0].reshape(len(X), -1)
        if ref.shape != got.probabilities.shape:
            raise TrainingRejectedError(
                f"the ONNX file answers probabilities of shape {ref.shape[1:]} per row, but "
                f"label {schema['label']['name']!r} has {got.probabilities.shape[1]} "
                f"classes"
            )
        diff = float(np.abs(np.sort(ref, axis=1) - np.sort(got.probabilities, axis=1)).max()) if len(X) else 0.0
    else:
        assert got.values is not None
        diff = float(np.abs(numeric[0].reshape(-1) - got.values).max()) if len(X) else 0.0
    if diff > 1e-5 * max(1.0, float(np.abs(numeric[0]).max()) if len(X) else 1.0):
        raise TrainingRejectedError(
            f"the adapted ONNX model differs from the file's graph by {diff:.3g} on the "
            f"validation rows; check that each input is the feature it is named after"
        )
    return {"max_abs_diff": diff}
