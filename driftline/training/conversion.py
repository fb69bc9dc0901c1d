"""A model fitted on a DataFrame -> an ONNX graph with Driftline's one serving signature.

Serving, champion scoring, canary evaluation and drift all feed one float32 matrix ``X`` [N, F]
(:mod:`driftline.features.encoding`). A notebook pipeline instead takes one column per feature
by name, categoricals as strings. Rather than teach every consumer a second input form, the
user's graph (one typed input per column) is wrapped in an adapter, so the served graph keeps the
contract of docs/architecture.md:

- in front, each column the user's graph reads is cut from ``X`` (``Gather``); categorical codes
  become their strings with ``CategoryMapper`` (null and unknown -> ``""``);
- behind, the user's class labels become the feature set's class indices (``LabelEncoder``) and
  the probability columns are put in the feature set's class order (``Gather``); a regressor's
  value is reshaped to ``variable`` [N, 1].

Null categoricals reach the user's graph as ``""``, while scikit-learn saw ``NaN``. The converters
of the two steps that handle those nulls in a notebook pipeline (``SimpleImputer`` and
``OneHotEncoder`` on string columns) are given a copy of the step that treats ``""`` as its
``NaN``, so the graph computes what scikit-learn computed; the parity check confirms it.
"""

from __future__ import annotations

import copy
import functools
import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.features.encoding import ONNX_INPUT_NAME, model_features
from driftline.training.errors import TrainingRejectedError
from driftline.training.onnx_export import float32_thresholds, sklearn_converters

__all__ = ["ConversionPlan", "adapt_onnx", "check_estimator", "class_order", "convert_estimator"]

MATRIX_INPUT = "dl_features"
"""The graph input of an estimator fitted on numeric columns without a ColumnTransformer."""
NULL_CATEGORY = ""
"""What a null or unknown category becomes inside the graph (strings cannot be NaN)."""
_PREFIX = "user_"
_MIN_OPSET = 9  # every adapter op (Gather, Cast, IsNaN, Where, ArgMax, Reshape) exists from opset 9
_ML_OPSET = 2


@dataclass(frozen=True)
class ConversionPlan:
    """What the estimator needs from the feature set: its input columns and its class order."""

    columns: tuple[str, ...]
    classifier: bool
    classes: tuple[Any, ...] | None  # the estimator's classes_, in its order


def _schema_columns(schema: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {f["name"]: f for f in model_features(schema)}


def _same_class(a: Any, b: Any) -> bool:
    return bool(a == b) or str(a) == str(b)


def class_order(theirs: Sequence[Any], ours: Sequence[Any]) -> list[int]:
    """For each of the estimator's classes, its index in the feature set's classes (-1: none)."""
    order = []
    for c in theirs:
        match = [i for i, o in enumerate(ours) if _same_class(c, o)]
        order.append(match[0] if match else -1)
    return order


def _check_classes(theirs: Sequence[Any], schema: Mapping[str, Any]) -> None:
    label = schema["label"]
    ours = list(label["classes"])
    order = class_order(theirs, ours)
    if -1 in order or sorted(order) != list(range(len(ours))):
        raise TrainingRejectedError(
            f"the model's classes {list(theirs)} differ from the classes {ours} of label {label['name']!r} "
            f"in the feature set; fit it on the label column of load_training_set (every class needs rows), "
            f"or correct 'classes' in the feature set"
        )


def check_estimator(estimator: Any, schema: Mapping[str, Any]) -> ConversionPlan:
    """Check a fitted estimator against the feature set; refuse with the fix when it does not fit.

    Raises
    ------
    TrainingRejectedError
        Not fitted, fitted without column names, columns outside the feature set, a classifier for
        a regression label (or the reverse), or class labels that differ from the feature set's.
    """
    from sklearn.base import is_classifier, is_regressor

    label = schema.get("label")
    if not label:
        raise TrainingRejectedError("the feature set defines no label; a model needs one to be evaluated")
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        if not hasattr(estimator, "n_features_in_"):
            raise TrainingRejectedError(
                f"the {type(estimator).__name__} is not fitted; fit it on the frame from "
                f"driftline.load_training_set first"
            )
        raise TrainingRejectedError(
            f"the {type(estimator).__name__} was fitted on an array without column "
            f"names; fit it on the DataFrame from driftline.load_training_set (feature "
            f"columns by name) so serving can feed each feature to the right input"
        )
    columns = tuple(str(n) for n in names)
    known = _schema_columns(schema)
    extra = [c for c in columns if c not in known]
    if extra:
        raise TrainingRejectedError(
            f"the estimator was fitted on column(s) {', '.join(extra)} that are not model features of feature "
            f"set {schema['feature_set']!r} (features: {', '.join(known)}); drop them before fitting (the "
            f"label, timestamp, entity and 'split' columns are not features)"
        )
    classifier = label["task"] != "regression"
    if classifier and not is_classifier(estimator):
        raise TrainingRejectedError(
            f"label {label['name']!r} is a {label['task']} label but the {type(estimator).__name__} is not a classifier"
        )
    if not classifier and not is_regressor(estimator):
        raise TrainingRejectedError(
            f"label {label['name']!r} is a regression target but the {type(estimator).__name__} is not a regressor"
        )
    classes = None
    if classifier:
        if not hasattr(estimator, "predict_proba"):
            raise TrainingRejectedError(
                f"the {type(estimator).__name__} has no predict_proba: serving answers class probabilities; use "
                f"SVC(probability=True), SGDClassifier(loss='log_loss'), or wrap it in CalibratedClassifierCV"
            )
        classes = tuple(np.asarray(estimator.classes_).tolist())
        _check_classes(classes, schema)
    empty = [
        f["name"] for f in known.values() if f["type"] == "categorical" and NULL_CATEGORY in (f["categories"] or ())
    ]
    if empty:
        raise TrainingRejectedError(
            f"categorical feature(s) {', '.join(empty)} list the empty string as a category; "
            f"inside the model it stands for null, so rename that category"
        )
    return ConversionPlan(columns=columns, classifier=classifier, classes=classes)


# ---------------------------------------------------------------- converters for string nulls
def _is_string_input(operator: Any) -> bool:
    from skl2onnx.common.data_types import StringTensorType

    return isinstance(operator.inputs[0].type, StringTensorType)


def _imputer_converter() -> Any:
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    def converter(scope: Any, operator: Any, container: Any) -> None:
        op = operator.raw_operator
        if _is_string_input(operator) and not isinstance(op.missing_values, str):
            op = copy.copy(op)
            op.missing_values = NULL_CATEGORY
            operator.raw_operator = op
        elif _is_double_input(operator) and _is_nan(op.missing_values):
            _impute_double(scope, operator, container)
            return
        convert_sklearn_imputer(scope, operator, container)

    return converter


def _imputer_shapes() -> Any:
    """skl2onnx's shape calculator for SimpleImputer, plus the MissingIndicator columns it leaves out."""
    from skl2onnx.common._registration import get_shape_calculator

    default = get_shape_calculator("SklearnSimpleImputer")

    def calculate(operator: Any) -> None:
        default(operator)
        op = operator.raw_operator
        indicator = getattr(op, "indicator_", None) if getattr(op, "add_indicator", False) else None
        if indicator is not None:
            out = operator.outputs[0].type
            n = out.shape[0]
            kept = int((~np.isnan(np.asarray(op.statistics_, dtype=np.float64))).sum())
            operator.outputs[0].type = out.__class__([n, kept + len(indicator.features_)])

    return calculate


def _is_double_input(operator: Any) -> bool:
    from skl2onnx.common.data_types import DoubleTensorType

    return isinstance(operator.inputs[0].type, DoubleTensorType)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


def _impute_double(scope: Any, operator: Any, container: Any) -> None:
    """NaN -> the fitted statistic, in float64: ONNX's ``Imputer`` op (what skl2onnx emits) has no double
    kernel in ONNX Runtime, and imputing in float32 would round values that trees then split on."""
    from onnx import TensorProto
    from skl2onnx.operator_converters.common import concatenate_variables

    op = operator.raw_operator
    stats = np.asarray(op.statistics_, dtype=np.float64)
    keep = ~np.isnan(stats)  # scikit-learn drops all-NaN columns unless keep_empty_features
    source = concatenate_variables(scope, operator.inputs, container)
    original = source
    if not keep.all():
        idx = scope.get_unique_variable_name("imputer_keep")
        container.add_initializer(idx, TensorProto.INT64, [int(keep.sum())], np.flatnonzero(keep).tolist())
        kept = scope.get_unique_variable_name("imputer_kept")
        container.add_node("Gather", [source, idx], kept, axis=1, name=scope.get_unique_operator_name("Gather"))
        source, stats = kept, stats[keep]
    fill = scope.get_unique_variable_name("imputer_fill")
    container.add_initializer(fill, TensorProto.DOUBLE, [1, len(stats)], stats.tolist())
    nan = scope.get_unique_variable_name("imputer_isnan")
    container.add_node("IsNaN", source, nan, name=scope.get_unique_operator_name("IsNaN"))
    indicator = getattr(op, "indicator_", None) if op.add_indicator else None
    imputed = operator.outputs[0].full_name if indicator is None else scope.get_unique_variable_name("imputed")
    container.add_node("Where", [nan, fill, source], imputed, name=scope.get_unique_operator_name("Where"))
    if indicator is not None:  # MissingIndicator: 1.0 where the original value was missing, per fitted column
        columns = np.asarray(indicator.features_, dtype=np.int64)
        idx = scope.get_unique_variable_name("indicator_idx")
        container.add_initializer(idx, TensorProto.INT64, [len(columns)], columns.tolist())
        picked, flags, as_double = (scope.get_unique_variable_name(n) for n in ("picked", "flags", "flag_values"))
        container.add_node("Gather", [original, idx], picked, axis=1, name=scope.get_unique_operator_name("Gather"))
        container.add_node("IsNaN", picked, flags, name=scope.get_unique_operator_name("IsNaN"))
        container.add_node("Cast", flags, as_double, to=TensorProto.DOUBLE, name=scope.get_unique_operator_name("Cast"))
        container.add_node(
            "Concat",
            [imputed, as_double],
            operator.outputs[0].full_name,
            axis=1,
            name=scope.get_unique_operator_name("Concat"),
        )


def _one_hot_converter() -> Any:
    from skl2onnx.operator_converters.one_hot_encoder import convert_sklearn_one_hot_encoder

    def converter(scope: Any, operator: Any, container: Any) -> None:
        op = operator.raw_operator
        if _is_string_input(operator):
            # A null or unknown category reaches the graph as "": with handle_unknown 'error' or 'warn'
            # (and no infrequent categories) ONNX Runtime would fail the request; encode it as all zeros,
            # what scikit-learn's 'ignore' (and 'warn') does. The parity check's null probes confirm it.
            plain = not getattr(op, "_infrequent_enabled", False)
            cats = []
            for c in op.categories_:
                arr = np.asarray(c, dtype=object).copy()
                null = np.asarray([v is None or (isinstance(v, float) and np.isnan(v)) for v in arr], dtype=bool)
                arr[null] = NULL_CATEGORY
                cats.append(arr)
            op = copy.copy(op)
            op.categories_ = cats
            if plain and op.handle_unknown in ("error", "warn"):
                op.handle_unknown = "ignore"
            operator.raw_operator = op
        convert_sklearn_one_hot_encoder(scope, operator, container)

    return converter


_BOOSTERS = (  # (library, skl2onnx alias prefix, estimator classes, onnxmltools module and converter)
    (
        "lightgbm",
        "LightGbm",
        ("LGBMClassifier", "LGBMRegressor"),
        "onnxmltools.convert.lightgbm.operator_converters.LightGbm",
        "convert_lightgbm",
    ),
    (
        "xgboost",
        "XGBoost",
        ("XGBClassifier", "XGBRegressor"),
        "onnxmltools.convert.xgboost.operator_converters.XGBoost",
        "convert_xgboost",
    ),
)


@functools.cache
def _register_booster_converters() -> None:
    """Let skl2onnx convert LightGBM / XGBoost estimators inside pipelines (when installed); once per process."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for library, alias, (classifier, regressor), module, name in _BOOSTERS:
        try:
            lib = importlib.import_module(library)
            convert = getattr(importlib.import_module(module), name)
        except ImportError:
            continue
        update_registered_converter(
            getattr(lib, classifier),
            f"{alias}{classifier}",
            calculate_linear_classifier_output_shapes,
            convert,
            options=options,
        )
        update_registered_converter(
            getattr(lib, regressor), f"{alias}{regressor}", calculate_linear_regressor_output_shapes, convert
        )


class _DoubleTreeInput:
    """Forwards to skl2onnx's container, fixing its tree ensembles when a column arrives as float64.

    skl2onnx's double path stores thresholds in a float attribute of an op whose output is always
    float, and declares a double output. What each estimator compares decides the fix:
    scikit-learn's decision trees cast inputs to float32 and compare with float64 thresholds, so
    the node gets a float32 cast of its input and the float32-exact thresholds; HistGradientBoosting
    compares float64 with float64, so the node keeps its double input and gets double thresholds
    (``nodes_values_as_tensor``, ai.onnx.ml 3). The float output is cast back to the declared double.
    """

    def __init__(self, inner: Any, float32_input: bool) -> None:
        self._inner = inner
        self._float32_input = float32_input

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, *args: Any, **attrs: Any) -> Any:
        if op_type not in ("TreeEnsembleRegressor", "TreeEnsembleClassifier"):
            return self._inner.add_node(op_type, inputs, outputs, *args, **attrs)
        from onnx import TensorProto, numpy_helper

        source = inputs if isinstance(inputs, str) else inputs[0]
        values = np.asarray(attrs.pop("nodes_values", attrs.pop("nodes_values_as_tensor", [])), dtype=np.float64)
        if self._float32_input:
            cast = source + "_float32"
            self._inner.add_node("Cast", source, cast, to=TensorProto.FLOAT, name=cast)
            source = cast
            attrs["nodes_values"] = values.astype(np.float32)
        else:
            attrs["nodes_values_as_tensor"] = numpy_helper.from_array(values, "nodes_values_as_tensor")
            attrs["op_version"] = 3
        if op_type == "TreeEnsembleClassifier":
            return self._inner.add_node(op_type, source, outputs, *args, **attrs)
        out = outputs if isinstance(outputs, str) else outputs[0]
        tmp = out + "_float"
        self._inner.add_node(op_type, source, tmp, *args, **attrs)
        return self._inner.add_node("Cast", tmp, out, to=TensorProto.DOUBLE, name=tmp + "_cast")


def _trees_of(estimator: Any) -> list[Any]:
    trees = getattr(estimator, "estimators_", None)
    if trees is None:
        return [estimator] if hasattr(estimator, "tree_") else []
    return [t for t in np.asarray(trees, dtype=object).ravel() if hasattr(t, "tree_")]


def _float32_tree_copy(estimator: Any) -> Any:
    """A copy whose tree thresholds are float32-exact.

    scikit-learn's trees cast inputs to float32 and compare with float64 thresholds; skl2onnx's
    double-input path casts to float32 too but stores thresholds rounded to the nearest float32.
    With thresholds already float32-exact (see :func:`float32_thresholds`) both sides decide alike.
    """
    adjusted = copy.deepcopy(estimator)
    for tree in _trees_of(adjusted):
        split = tree.tree_.children_left >= 0
        tree.tree_.threshold[split] = float32_thresholds(tree.tree_.threshold[split])
    return adjusted


def _tree_converters(base: Mapping[type, Any]) -> dict[type, Any]:
    """Decision-tree ensembles fed float64 columns: float32-exact thresholds, float output restored."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter
    from sklearn import ensemble, tree

    out = {}
    for cls in (
        ensemble.RandomForestRegressor,
        ensemble.ExtraTreesRegressor,
        ensemble.GradientBoostingRegressor,
        ensemble.HistGradientBoostingRegressor,
        ensemble.HistGradientBoostingClassifier,
        tree.DecisionTreeRegressor,
        tree.ExtraTreeRegressor,
        ensemble.RandomForestClassifier,
        ensemble.ExtraTreesClassifier,
        ensemble.GradientBoostingClassifier,
        tree.DecisionTreeClassifier,
        tree.ExtraTreeClassifier,
    ):
        convert = base.get(cls) or get_converter(sklearn_operator_name_map[cls])

        def converter(scope: Any, operator: Any, container: Any, convert: Any = convert) -> None:
            if _is_double_input(operator):
                sklearn_trees = bool(_trees_of(operator.raw_operator))
                if sklearn_trees:
                    operator.raw_operator = _float32_tree_copy(operator.raw_operator)
                container = _DoubleTreeInput(container, float32_input=sklearn_trees)
                if not sklearn_trees:  # HistGradientBoosting: keep float64 thresholds (ai.onnx.ml 3)
                    convert(scope, operator, container, op_version=3)
                    return
            convert(scope, operator, container)

        out[cls] = converter
    return out


def _shape_calculators() -> dict[type, Any]:
    from sklearn.impute import SimpleImputer

    return {SimpleImputer: _imputer_shapes()}


def _converters() -> dict[type, Any]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    base = sklearn_converters()
    return {**base, **_tree_converters(base), SimpleImputer: _imputer_converter(), OneHotEncoder: _one_hot_converter()}


# ---------------------------------------------------------------- failure messages
def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path or type(obj).__name__, obj
    for attr in ("steps", "transformer_list"):
        for name, step in getattr(obj, attr, None) or ():
            yield from _walk(step, f"{path} > {name}" if path else name)
    for name, step, _cols in getattr(obj, "transformers_", None) or getattr(obj, "transformers", None) or ():
        if not isinstance(step, str):
            yield from _walk(step, f"{path} > {name}" if path else name)


def _conversion_error(estimator: Any, error: Exception) -> TrainingRejectedError:
    from skl2onnx._supported_operators import sklearn_operator_name_map

    text = " ".join(str(error).split())[:400]
    culprit = None
    for path, step in _walk(estimator):
        kind = type(step).__name__
        if type(step) not in sklearn_operator_name_map and not hasattr(step, "steps"):
            culprit = (path, kind)
            break
        if kind in text:
            culprit = (path, kind)
    hint = (
        "replace it with scikit-learn steps skl2onnx converts (ColumnTransformer, SimpleImputer, "
        "StandardScaler, OneHotEncoder, ... and any estimator in skl2onnx's list), register an ONNX converter "
        "for it with skl2onnx.update_registered_converter, or export the model to ONNX yourself and register "
        "the .onnx file"
    )
    if culprit and culprit[1] == "FunctionTransformer":
        hint = (
            "a FunctionTransformer runs arbitrary Python that ONNX cannot express; compute that feature "
            "upstream (in the feature set) or use a built-in transformer; otherwise " + hint
        )
    where = f"step {culprit[0]!r} ({culprit[1]})" if culprit else f"the {type(estimator).__name__}"
    return TrainingRejectedError(f"{where} cannot be converted to ONNX ({type(error).__name__}: {text}); {hint}")


# ---------------------------------------------------------------- conversion
def _target_opsets() -> dict[str, int]:
    """The newest default-domain opset skl2onnx knows, and ai.onnx.ml 3 (double tree thresholds)."""
    from skl2onnx import get_latest_tested_opset_version

    return {"": int(get_latest_tested_opset_version()), "ai.onnx.ml": 3}


def convert_estimator(estimator: Any, schema: Mapping[str, Any], name: str = "driftline") -> bytes:
    """Convert a fitted estimator or pipeline (DataFrame input) to the serving signature.

    Raises
    ------
    TrainingRejectedError
        The estimator does not fit the feature set (see :func:`check_estimator`) or a step cannot be
        converted (the step is named with what to use instead).
    """
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    plan = check_estimator(estimator, schema)
    known = _schema_columns(schema)
    first = estimator.steps[0][1] if hasattr(estimator, "steps") else estimator
    matrix = None
    if type(first).__name__ != "ColumnTransformer":
        # Without a ColumnTransformer skl2onnx takes one matrix: the columns in the order fitted
        text = [c for c in plan.columns if known[c]["type"] == "categorical"]
        if text:
            raise TrainingRejectedError(
                f"the {type(first).__name__} receives the string column(s) "
                f"{', '.join(text)} directly; start the pipeline with a ColumnTransformer "
                f"that encodes them (e.g. OneHotEncoder)"
            )
        matrix = list(plan.columns)
    _register_booster_converters()
    # float64 numbers first (scikit-learn computes in float64, so its splits and sums are matched
    # exactly); some converters (KBinsDiscretizer, PolynomialFeatures, KNNImputer...) only build float
    # graphs: then float32, which the parity check judges like any graph
    try:
        return _convert_with(estimator, schema, plan, matrix, DoubleTensorType, name)
    except TrainingRejectedError as first_error:
        try:
            return _convert_with(estimator, schema, plan, matrix, FloatTensorType, name)
        except TrainingRejectedError:
            raise first_error from None


def _convert_with(
    estimator: Any,
    schema: Mapping[str, Any],
    plan: ConversionPlan,
    matrix: list[str] | None,
    number_type: Any,
    name: str,
) -> bytes:
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    known = _schema_columns(schema)
    if matrix is not None:
        initial = [(MATRIX_INPUT, number_type([None, len(matrix)]))]
    else:
        initial = [
            (c, StringTensorType([None, 1]) if known[c]["type"] == "categorical" else number_type([None, 1]))
            for c in plan.columns
        ]
    try:
        model = convert_sklearn(
            estimator,
            name=name,
            initial_types=initial,
            target_opset=_target_opsets(),
            options={"zipmap": False} if plan.classifier else None,
            custom_conversion_functions=_converters(),
            custom_shape_calculators=_shape_calculators(),
        )
    except Exception as e:  # skl2onnx raises many types (RuntimeError, NotImplementedError, ValueError...)
        raise _conversion_error(estimator, e) from None
    data = _fold(_adapt(model, schema, plan.classes, matrix_columns=matrix), schema)
    try:
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # e.g. an op without a kernel for these input types
        raise TrainingRejectedError(
            f"the converted {type(estimator).__name__} cannot be loaded by onnxruntime "
            f"({type(e).__name__}: {' '.join(str(e).split())[:300]})"
        ) from None
    return data


def _fold(data: bytes, schema: Mapping[str, Any]) -> bytes:
    """The categorical preprocessing as one table lookup when it is separable (driftline.training.specialize)."""
    import onnx

    from driftline.training.specialize import fold_categories

    fed = {n.output[0] for n in onnx.load_from_string(data).graph.node if n.op_type == "CategoryMapper"}
    cats = {
        f["name"]: list(f["categories"] or ())
        for f in model_features(schema)
        if f["type"] == "categorical" and _PREFIX + f["name"] in fed
    }
    return fold_categories(data, cats, _PREFIX, NULL_CATEGORY, "dl_codes") if cats else data


def _tensor_kind(value_info: Any) -> tuple[str, int]:
    """(element type name, rank) of a graph input/output; ('map'/'sequence', -1) for non-tensors."""
    import onnx

    t = value_info.type
    if not t.HasField("tensor_type"):
        return ("sequence" if t.HasField("sequence_type") else "map"), -1
    elem = onnx.helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type) if t.tensor_type.elem_type != 8 else None
    kind = "string" if elem is None else ("int" if np.issubdtype(elem, np.integer) else "float")
    return kind, len(t.tensor_type.shape.dim)


def _graph_classes(model: Any) -> list[Any] | None:
    """Class labels stored in a classifier node of the graph (tree ensembles, linear models...)."""
    import onnx

    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name in ("classlabels_strings", "classlabels_int64s", "classlabels_ints"):
                value = onnx.helper.get_attribute_value(attr)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in value]
    return None


def adapt_onnx(data: bytes, schema: Mapping[str, Any], class_indices: bool = False) -> bytes:
    """An ONNX model exported elsewhere -> the serving signature (or refused with the reason).

    Accepted: one input per model feature it reads, named after the feature (categoricals as string
    tensors, the rest float), or a single float input of all F model features in feature-set
    order; outputs ``label`` + ``probabilities`` (classifiers, without ZipMap) or one value tensor.
    ``class_indices``: the graph's labels are class positions (boosters trained on encoded labels).
    The served label is the most probable class (first on ties), as scikit-learn's ``predict``.
    """
    import onnx

    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as e:
        raise TrainingRejectedError(
            f"the file is not a valid ONNX model ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
        ) from None
    label = schema.get("label")
    if not label:
        raise TrainingRejectedError("the feature set defines no label; a model needs one to be evaluated")
    classifier = label["task"] != "regression"
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    known = _schema_columns(schema)
    if len(inputs) == 1 and inputs[0].name not in known:
        kind, rank = _tensor_kind(inputs[0])
        if kind != "float" or rank != 2:
            raise TrainingRejectedError(
                f"the model's single input {inputs[0].name!r} is not a float matrix; "
                f"name one input per feature instead (see docs/notebook.md)"
            )
        dims = inputs[0].type.tensor_type.shape.dim
        width = dims[1].dim_value if dims[1].HasField("dim_value") else None
        if width is not None and width != len(known):
            raise TrainingRejectedError(
                f"the model's single input {inputs[0].name!r} takes {width} column(s), but feature set "
                f"{schema['feature_set']!r} has {len(known)} model features ({', '.join(known)}); name one input per "
                f"feature it reads, or take all of them in this order"
            )
        raw = _graph_classes(model) if classifier else None
        classes = raw
        if raw is not None and class_indices:
            classes = [label["classes"][int(c)] if 0 <= int(c) < len(label["classes"]) else c for c in raw]
        return _fold(_adapt(model, schema, classes, single_matrix=True), schema)
    unknown = [i.name for i in inputs if i.name not in known]
    if unknown:
        raise TrainingRejectedError(
            f"the model's input(s) {', '.join(unknown)} are not model features of feature "
            f"set {schema['feature_set']!r} (features: {', '.join(known)}); name each "
            f"input after the feature it reads"
        )
    for i in inputs:
        kind, _ = _tensor_kind(i)
        want = "string" if known[i.name]["type"] == "categorical" else "float"  # float or double
        if kind != want:
            raise TrainingRejectedError(
                f"input {i.name!r} is a {kind} tensor but feature {i.name!r} is "
                f"{known[i.name]['type']}: it must be a {want} tensor [N, 1]"
            )
    classes = _graph_classes(model) if classifier else None
    return _fold(_adapt(model, schema, classes), schema)


def _raise_default_opset(model: Any, default: int) -> Any:
    """A graph below the adapter's opset: declare it when the graph has no default-domain node (a pure
    ai.onnx.ml tree ensemble, as onnxmltools writes XGBoost), else let ONNX's converter upgrade it."""
    from onnx import helper

    if not any(n.domain in ("", "ai.onnx") for n in model.graph.node):
        kept = [o for o in model.opset_import if o.domain not in ("", "ai.onnx")]
        del model.opset_import[:]
        model.opset_import.extend([*kept, helper.make_opsetid("", _MIN_OPSET + 4)])
        return model
    try:
        from onnx import version_converter

        return version_converter.convert_version(model, _MIN_OPSET + 4)
    except Exception:
        raise TrainingRejectedError(
            f"the model uses ONNX opset {default} and cannot be upgraded; export it with opset {_MIN_OPSET} or newer"
        ) from None


def _gather_split_columns(nodes: list[Any], inits: list[Any]) -> list[Any]:
    """A Concat (axis 1) of columns the adapter's Split cut from one matrix becomes one Gather of them.

    The user's graph joins the numeric columns again right after the adapter split them: one node
    instead of two, per request.
    """
    from onnx import helper, numpy_helper

    splits = {n.name: n for n in nodes if n.op_type == "Split" and n.name.startswith("dl_split_")}
    where = {out: (name, j) for name, n in splits.items() for j, out in enumerate(n.output)}
    out = []
    for n in nodes:
        axis = next((a.i for a in n.attribute if a.name == "axis"), None)
        sources = {where[i][0] for i in n.input if i in where}
        if n.op_type == "Concat" and axis in (1, -1) and len(sources) == 1 and all(i in where for i in n.input):
            split = splits[sources.pop()]
            idx = f"{n.output[0]}_columns"
            inits.append(numpy_helper.from_array(np.asarray([where[i][1] for i in n.input], dtype=np.int64), idx))
            out.append(helper.make_node("Gather", [split.input[0], idx], list(n.output), axis=1))
            continue
        out.append(n)
    used = {i for n in out for i in n.input}
    return [n for n in out if not (n.op_type == "Split" and n.name in splits and not (set(n.output) & used))]


def _opset(model: Any, domain: str) -> int:
    return next((o.version for o in model.opset_import if (o.domain or "") == domain), 0)


def _split(source: str, outputs: list[str], opset: int, name: str, inits: list[Any]) -> Any:
    """One Split of ``source`` [N, k] into k columns [N, 1] (the ``split`` sizes: an input from opset 13)."""
    from onnx import helper, numpy_helper

    if opset >= 13:
        sizes = f"{name}_sizes"
        inits.append(numpy_helper.from_array(np.ones(len(outputs), dtype=np.int64), sizes))
        return helper.make_node("Split", [source, sizes], outputs, axis=1, name=name)
    return helper.make_node("Split", [source], outputs, axis=1, split=[1] * len(outputs), name=name)


def _front_nodes(
    feats: Sequence[Mapping[str, Any]],
    feeds: set[str],
    dtypes: Mapping[str, int],
    inits: list[Any],
    opset: int,
    matrix_columns: Sequence[str] | None = None,
) -> list[Any]:
    """``X`` -> the user's per-column inputs, in as few nodes as possible (each node costs per request).

    Numbers: ``X`` cast once per input type the graph declares (float, double), then one Split into
    columns. Categories: their columns gathered at once, NaN -> -1, cast to int64, one Split, then
    one ``CategoryMapper`` per feature (codes -> strings; null and unknown -> ``NULL_CATEGORY``).
    Columns the graph does not read go to unused Split outputs.
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    if matrix_columns is not None:  # one input: the fitted columns, in their order
        position = {f["name"]: j for j, f in enumerate(feats)}
        inits.append(
            numpy_helper.from_array(np.asarray([position[c] for c in matrix_columns], dtype=np.int64), "dl_matrix_idx")
        )
        nodes.append(helper.make_node("Gather", [ONNX_INPUT_NAME, "dl_matrix_idx"], ["dl_matrix"], axis=1))
        nodes.append(helper.make_node("Cast", ["dl_matrix"], [_PREFIX + MATRIX_INPUT], to=dtypes[MATRIX_INPUT]))
        return nodes
    numeric_types = sorted({dtypes[f["name"]] for f in feats if f["name"] in feeds and f["type"] != "categorical"})
    for elem in numeric_types:
        source = ONNX_INPUT_NAME
        if elem != TensorProto.FLOAT:
            source = f"dl_x_{elem}"
            nodes.append(helper.make_node("Cast", [ONNX_INPUT_NAME], [source], to=elem))
        outs = [
            _PREFIX + f["name"]
            if f["name"] in feeds and f["type"] != "categorical" and dtypes[f["name"]] == elem
            else f"dl_unused_{elem}_{j}"
            for j, f in enumerate(feats)
        ]
        nodes.append(_split(source, outs, opset, f"dl_split_{elem}", inits))
    cats = [(j, f) for j, f in enumerate(feats) if f["type"] == "categorical" and f["name"] in feeds]
    if cats:
        inits.append(numpy_helper.from_array(np.asarray([j for j, _ in cats], dtype=np.int64), "dl_cat_idx"))
        inits.append(numpy_helper.from_array(np.asarray(-1.0, dtype=np.float32), "dl_minus_one"))
        nodes += [
            helper.make_node("Gather", [ONNX_INPUT_NAME, "dl_cat_idx"], ["dl_cats"], axis=1),
            helper.make_node("IsNaN", ["dl_cats"], ["dl_cats_nan"]),
            helper.make_node("Where", ["dl_cats_nan", "dl_minus_one", "dl_cats"], ["dl_cats_filled"]),
            helper.make_node("Cast", ["dl_cats_filled"], ["dl_codes"], to=TensorProto.INT64),
        ]
        codes = [f"dl_code_{j}" for j, _ in cats]
        if len(cats) == 1:
            nodes.append(helper.make_node("Identity", ["dl_codes"], codes))
        else:
            nodes.append(_split("dl_codes", codes, opset, "dl_split_codes", inits))
        for (_, f), code in zip(cats, codes, strict=True):
            nodes.append(
                helper.make_node(
                    "CategoryMapper",
                    [code],
                    [_PREFIX + f["name"]],
                    domain="ai.onnx.ml",
                    cats_int64s=list(range(len(f["categories"] or ()))),
                    cats_strings=[str(c) for c in f["categories"] or ()],
                    default_string=NULL_CATEGORY,
                )
            )
    return nodes


def _outputs(model: Any, classifier: bool) -> tuple[str | None, str]:
    """(label output, probabilities or value output) of the user's graph."""
    label_out, score_out = None, None
    for o in model.graph.output:
        kind, rank = _tensor_kind(o)
        if rank == -1:
            raise TrainingRejectedError(
                f"output {o.name!r} is a {kind} (ZipMap); convert the classifier with "
                f"options={{'zipmap': False}} so probabilities are a float tensor"
            )
        if kind == "float" and score_out is None:
            score_out = o.name
        elif kind in ("int", "string") and label_out is None:
            label_out = o.name
    if score_out is None or (classifier and label_out is None):
        raise TrainingRejectedError(
            f"the model's outputs {[o.name for o in model.graph.output]} are not "
            f"{'a label tensor and a float probability matrix' if classifier else 'a float value tensor'}"
        )
    return label_out, score_out


def _adapt(
    model: Any,
    schema: Mapping[str, Any],
    classes: Sequence[Any] | None,
    single_matrix: bool = False,
    matrix_columns: Sequence[str] | None = None,
) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    label = schema["label"]
    classifier = label["task"] != "regression"
    default = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if default < _MIN_OPSET:
        model = _raise_default_opset(model, default)
    _, score_out = _outputs(model, classifier)
    feeds = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    dtypes = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    model = onnx.compose.add_prefix(model, _PREFIX)
    graph = model.graph
    nodes: list[Any] = []
    inits: list[Any] = []
    feats = model_features(schema)
    if single_matrix:
        nodes.append(helper.make_node("Cast", [ONNX_INPUT_NAME], [_PREFIX + feeds[0]], to=dtypes[feeds[0]]))
    else:
        nodes += _front_nodes(feats, set(feeds), dtypes, inits, _opset(model, ""), matrix_columns)
    front = len(nodes)
    outputs = []
    if classifier:
        ours = list(label["classes"])
        theirs = list(classes) if classes is not None else ours
        _check_classes(theirs, schema)
        order = class_order(theirs, ours)
        positions = [order.index(i) for i in range(len(ours))]  # our class i is their column positions[i]
        nodes.append(helper.make_node("Cast", [_PREFIX + score_out], ["dl_scores"], to=TensorProto.FLOAT))
        # The label is the most probable class, first on ties, as scikit-learn's predict picks it
        # (a graph's own label output may break ties differently, e.g. forests at exactly 0.5).
        if positions == list(range(len(ours))):  # same class order: no reordering nodes
            nodes.append(helper.make_node("Identity", ["dl_scores"], ["probabilities"]))
            nodes.append(helper.make_node("ArgMax", ["dl_scores"], ["label"], axis=1, keepdims=0))
        else:
            inits.append(numpy_helper.from_array(np.asarray(positions, dtype=np.int64), "dl_class_columns"))
            nodes.append(helper.make_node("Gather", ["dl_scores", "dl_class_columns"], ["probabilities"], axis=1))
            inits.append(numpy_helper.from_array(np.asarray(order, dtype=np.int64), "dl_class_index"))
            nodes.append(helper.make_node("ArgMax", ["dl_scores"], ["dl_their_label"], axis=1, keepdims=0))
            nodes.append(helper.make_node("Gather", ["dl_class_index", "dl_their_label"], ["label"], axis=0))
        outputs = [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(ours)]),
        ]
    else:
        inits.append(numpy_helper.from_array(np.asarray([-1, 1], dtype=np.int64), "dl_value_shape"))
        nodes.append(helper.make_node("Cast", [_PREFIX + score_out], ["dl_value"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Reshape", ["dl_value", "dl_value_shape"], ["variable"]))
        outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]
    x = helper.make_tensor_value_info(ONNX_INPUT_NAME, TensorProto.FLOAT, [None, len(feats)])
    all_nodes = _gather_split_columns(nodes[:front] + list(graph.node) + nodes[front:], inits)
    new_graph = helper.make_graph(all_nodes, graph.name, [x], outputs, initializer=list(graph.initializer) + inits)
    opsets = {o.domain or "": o.version for o in model.opset_import}
    opsets["ai.onnx.ml"] = max(opsets.get("ai.onnx.ml", 0), _ML_OPSET)
    merged = helper.make_model(
        new_graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()], producer_name="driftline"
    )
    merged.ir_version = model.ir_version
    merged.functions.extend(model.functions)
    try:
        onnx.checker.check_model(merged)
    except Exception as e:  # the adapter itself is wrong: a bug, not the user's fault, but never a half model
        raise TrainingRejectedError(f"the adapted ONNX model is invalid ({type(e).__name__}: {str(e)[:300]})") from None
    return bytes(merged.SerializeToString())
