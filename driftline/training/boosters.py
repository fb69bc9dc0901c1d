"""LightGBM and XGBoost model files -> ONNX with one float input (onnxmltools converts them).

A booster file carries no column names Driftline can match by type, so a booster is trained on the
feature set's encoded matrix: the model features in feature-set order, categoricals as category
codes and NaN for nulls (:func:`driftline.features.encoding.encode_columns`; the notebook helper
``driftline.training.dataset.encode_table`` builds it from a training table). Classifiers are
trained on class indices (the position of each class in the feature set's ``classes``).
"""

from __future__ import annotations

from pathlib import Path

from driftline.training.errors import TrainingRejectedError

__all__ = ["ONNXMLTOOLS_OPSET", "booster_to_onnx"]

ONNXMLTOOLS_OPSET = 15
"""The newest default-domain opset onnxmltools' booster converters support."""


def _missing(package: str) -> TrainingRejectedError:
    return TrainingRejectedError(f"registering this file needs {package} and onnxmltools: pip install "
                                 f"'driftline[boosters]'")


def booster_to_onnx(path: Path, data: bytes) -> bytes:
    """Convert a LightGBM text model (``.txt``) or an XGBoost JSON/UBJ model (``.json``/``.ubj``).

    Raises
    ------
    TrainingRejectedError
        The library is not installed, or the file is not a model of that kind.
    """
    try:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        raise _missing("onnxmltools") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".txt":
            try:
                import lightgbm
            except ImportError:
                raise _missing("lightgbm") from None
            booster = lightgbm.Booster(model_str=data.decode("utf-8"))
            width = int(booster.num_feature())
            model = onnxmltools.convert_lightgbm(booster, initial_types=[("X", FloatTensorType([None, width]))],
                                                 zipmap=False, target_opset=ONNXMLTOOLS_OPSET)
        else:
            try:
                import xgboost
            except ImportError:
                raise _missing("xgboost") from None
            xb = xgboost.Booster()
            xb.load_model(bytearray(data))
            width = int(xb.num_features())
            model = onnxmltools.convert_xgboost(xb, initial_types=[("X", FloatTensorType([None, width]))],
                                                target_opset=ONNXMLTOOLS_OPSET)
    except TrainingRejectedError:
        raise
    except Exception as e:  # the libraries raise their own error types for corrupt files
        kind = "LightGBM text" if suffix == ".txt" else "XGBoost"
        raise TrainingRejectedError(f"{path.name}: not a readable {kind} model ({type(e).__name__}: "
                                    f"{' '.join(str(e).split())[:200]})") from None
    return bytes(model.SerializeToString())
