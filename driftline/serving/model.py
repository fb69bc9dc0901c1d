"""One model version ready to answer: its ONNX Runtime session, validator and output mapping.

Sessions are built once per version and reused for every request. Thread settings are fixed for
Lambda: one intra-op and one inter-op thread and sequential execution, because a Lambda sandbox
serves one request at a time and thread pools only add start-up and scheduling jitter (p99 spikes)
to single-row predictions.

The signature is checked at load (``docs/architecture.md``, "Model input and output"): input ``X``
float32 ``[N, F]`` with ``F`` = the schema's model features; output ``probabilities`` (classification)
or ``variable`` (regression). A mismatch is a broken registration, reported as 503 with the reason.
The predicted label is the class with the highest probability (``Label.class_values`` order), which is
what the contract's ``label`` output holds; computing it from ``probabilities`` avoids a second output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnxruntime as ort

from driftline.features.encoding import ONNX_INPUT_NAME
from driftline.serving.typed_records import TypedRecords
from driftline.serving.validation import InputValidator


class ModelLoadError(RuntimeError):
    """The artifact is not a model this endpoint can serve (phrased for the operator)."""


def session_options() -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


class LoadedModel:
    """An ONNX model version with everything needed to turn request rows into predictions."""

    def __init__(self, model: str, version: int, schema: Mapping[str, Any], onnx_bytes: bytes) -> None:
        self.model = model
        self.version = version
        self.schema = schema
        self.validator = InputValidator(schema)
        self.typed = TypedRecords.build(self.validator)
        try:
            self.session = ort.InferenceSession(
                onnx_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types for corrupt bytes
            raise ModelLoadError(f"{model} v{version}: ONNX Runtime cannot load the artifact ({e})") from None
        self._check_signature()
        label = schema.get("label") or {}
        n_classes = self._n_classes
        classes = list(label.get("classes") or ()) or list(range(n_classes))
        if self.task == "classification" and len(classes) != n_classes:
            raise ModelLoadError(
                f"{model} v{version}: the model outputs {n_classes} class probabilities but "
                f"the schema lists {len(classes)} classes ({classes})"
            )
        self.classes = classes
        self.class_keys = [str(c) for c in classes]
        self.binary = n_classes == 2

    def _check_signature(self) -> None:
        inputs = self.session.get_inputs()
        where = f"{self.model} v{self.version}"
        if len(inputs) != 1 or inputs[0].name != ONNX_INPUT_NAME:
            raise ModelLoadError(
                f"{where}: expected one input named '{ONNX_INPUT_NAME}', found {[i.name for i in inputs]}"
            )
        if inputs[0].type != "tensor(float)":
            raise ModelLoadError(f"{where}: input '{ONNX_INPUT_NAME}' must be float32, is {inputs[0].type}")
        shape = inputs[0].shape
        n = self.validator.n_inputs
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != n):
            raise ModelLoadError(f"{where}: input shape {shape} does not match the input schema's {n} model features")
        outputs = {o.name: o for o in self.session.get_outputs()}
        if "probabilities" in outputs:
            self.task = "classification"
            self.output = "probabilities"
            dim = outputs["probabilities"].shape[-1] if outputs["probabilities"].shape else None
            self._n_classes = dim if isinstance(dim, int) else self._probe_classes()
        elif "variable" in outputs:
            self.task = "regression"
            self.output = "variable"
            self._n_classes = 0
        else:
            raise ModelLoadError(
                f"{where}: outputs {sorted(outputs)} follow neither the classification "
                f"('probabilities') nor the regression ('variable') signature"
            )
        self._outputs = [self.output]
        # The compiled session's run, without the Python wrapper's per-call checks (input names,
        # graph capture, OrtValue ownership: ~7 us of a ~16 us single-row run since onnxruntime 1.32).
        # Safe here: the signature was just checked and the input is always a float32 numpy matrix.
        # Falls back to the public method if a future onnxruntime drops the attribute.
        inner = getattr(self.session, "_sess", None)
        self._run = inner.run if inner is not None and hasattr(inner, "run") else self.session.run

    def _probe_classes(self) -> int:
        X = np.zeros((1, self.validator.n_inputs), dtype=np.float32)
        return int(self.session.run(["probabilities"], {ONNX_INPUT_NAME: X})[0].shape[-1])

    def run(self, X: np.ndarray) -> np.ndarray:
        """The raw output matrix for an encoded ``[N, F]`` float32 input."""
        out: np.ndarray = self._run(self._outputs, {ONNX_INPUT_NAME: X}, None)[0]
        return out

    def predictions(self, out: np.ndarray) -> list[dict[str, Any]]:
        """Per-row prediction objects in the capture-record format."""
        if self.task == "regression":
            return [{"value": v} for v in out.reshape(-1).tolist()]
        probs = out.tolist()
        classes, keys = self.classes, self.class_keys
        if self.binary:  # argmax without numpy: the first of equal maxima, a NaN counts as the maximum
            k0, k1 = keys
            c0, c1 = classes
            isnan = math.isnan
            return [
                {"label": c0 if p0 >= p1 or isnan(p0) else c1, "probability": p1, "probabilities": {k0: p0, k1: p1}}
                for p0, p1 in probs
            ]
        best = out.argmax(axis=1).tolist()
        return [
            {"label": classes[b], "probability": p[b], "probabilities": dict(zip(keys, p, strict=True))}
            for b, p in zip(best, probs, strict=True)
        ]
