"""The user's own training code: ``models[].trainer: "module:function"`` from the trainers folder.

The function builds the *unfitted* estimator or pipeline for a feature set and the model's params;
Driftline fits it on the built-in time split's training rows (the DataFrame of
:func:`driftline.training.frames.training_frame`, feature columns by name), converts it like an
imported model and registers it through the same gate. Retraining, ``driftline train``, the
training image and the local platform all call :func:`fit_trainer`, so a drift-triggered
retraining retrains the user's pipeline rather than a built-in algorithm.

The folder is ``trainers_dir`` in cdk.json (relative to it), shipped with the training image and
named to the train function by ``TRAINERS_DIR``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from driftline.config import TRAINER_RE
from driftline.training.errors import TrainingRejectedError

__all__ = ["TRAINERS_DIR_ENV", "TRAINER_RE", "fit_trainer", "load_trainer", "make_estimator", "trainers_dir"]

TRAINERS_DIR_ENV = "TRAINERS_DIR"


_TRAINER_FOLDERS: set[Path] = set()
"""Folders trainers were imported from in this process: their modules may be re-imported, nothing else."""


@contextmanager
def _on_path(directory: Path) -> Iterator[None]:
    entry = str(directory)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def trainers_dir(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``$TRAINERS_DIR``, else ``trainers`` (relative to the working directory)."""
    return Path(explicit or os.environ.get(TRAINERS_DIR_ENV) or "trainers").resolve()


def load_trainer(spec: str, directory: str | Path | None = None) -> Callable[..., Any]:
    """Import ``module:function`` from the trainers folder.

    Raises
    ------
    TrainingRejectedError
        Malformed spec, a module that does not import (with its error), or no such function.
    """
    if not TRAINER_RE.match(spec):
        raise TrainingRejectedError(f"trainer {spec!r} must look like 'module:function' (e.g. 'penguins:build')")
    module_name, func_name = spec.split(":")
    folder = trainers_dir(directory)
    if not folder.is_dir():
        raise TrainingRejectedError(
            f"trainer {spec!r}: the trainers folder {folder} does not exist (trainers_dir "
            f"in cdk.json, {TRAINERS_DIR_ENV} for the train function)"
        )
    root = module_name.split(".")[0]
    if not ((folder / root).is_dir() or (folder / f"{root}.py").is_file()):
        raise TrainingRejectedError(
            f"trainer {spec!r}: no module {root!r} in the trainers folder {folder} (a trainer "
            f"is your own code there, not an installed package)"
        )
    # Imported afresh each run: a long-lived worker (the local platform, a warm Lambda) must train with
    # the trainer as it is now. Only modules loaded from the trainers folder are forgotten, never an
    # installed package.
    for name in [m for m in sys.modules if m == root or m.startswith(root + ".")]:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if origin and any(Path(origin).resolve().is_relative_to(f) for f in (folder, *_TRAINER_FOLDERS)):
            del sys.modules[name]
        else:
            raise TrainingRejectedError(
                f"trainer {spec!r}: {root!r} is already the name of an installed module "
                f"({origin or 'built in'}); rename the trainer module"
            )
    importlib.invalidate_caches()
    _TRAINER_FOLDERS.add(folder)
    with _on_path(folder):
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # the user's module may raise anything while importing
            raise TrainingRejectedError(
                f"trainer {spec!r} does not import from {folder} ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
            ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise TrainingRejectedError(f"trainer {spec!r}: module {module_name!r} has no function {func_name!r}")
    return func  # type: ignore[no-any-return]


def make_estimator(spec: str, feature_set: Any, params: Mapping[str, Any], directory: str | Path | None = None) -> Any:
    """Call the trainer and check that it returned an unfitted scikit-learn-style estimator.

    Raises
    ------
    TrainingRejectedError
        The trainer fails, or returns something without ``fit``/``get_params``.
    """
    func = load_trainer(spec, directory)
    try:
        estimator = func(feature_set, dict(params))
    except Exception as e:  # user code
        raise TrainingRejectedError(
            f"trainer {spec!r} raised {type(e).__name__}: {' '.join(str(e).split())[:300]}"
        ) from None
    if isinstance(estimator, type):
        raise TrainingRejectedError(
            f"trainer {spec!r} returned the class {estimator.__name__}, not an estimator; "
            f"return an instance, e.g. {estimator.__name__}()"
        )
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise TrainingRejectedError(
            f"trainer {spec!r} returned {type(estimator).__name__}, not an estimator; "
            f"return an unfitted scikit-learn estimator or Pipeline"
        )
    return estimator


def fit_trainer(
    spec: str,
    prepared: Any,
    table: Any,
    fs: Any,
    params: Mapping[str, Any],
    fraction: float,
    directory: str | Path | None = None,
    threads: int | None = None,
) -> tuple[Any, bytes, Any]:
    """Build the trainer's estimator, fit it on the training rows, convert it to the serving signature.

    ``prepared`` is the built-in :func:`~driftline.training.dataset.prepare` result of ``table``, so
    the fit uses exactly the time split the evaluation uses. Returns (fitted estimator, ONNX bytes,
    the reference predictor for the parity check).

    Raises
    ------
    TrainingRejectedError
        Anything in :func:`make_estimator`, a failing fit, or a pipeline that cannot be converted.
    """
    from sklearn.base import is_classifier, is_regressor
    from threadpoolctl import threadpool_limits

    from driftline.training.conversion import convert_estimator
    from driftline.training.frames import SPLIT_COLUMN, TRAIN, training_frame
    from driftline.training.imported import EstimatorOnServedRows
    from driftline.training.weights import fit_weight_kwargs

    estimator = make_estimator(spec, fs, params, directory)
    task = fs.label.task
    fits = is_regressor(estimator) if task == "regression" else is_classifier(estimator)
    if not fits:
        want = "a regressor" if task == "regression" else "a classifier"
        raise TrainingRejectedError(
            f"trainer {spec!r} returned a {type(estimator).__name__}, which is not {want}; "
            f"label {fs.label.name!r} is a {task} label"
        )
    frame = training_frame(table, fs, fraction)
    train = frame[frame[SPLIT_COLUMN] == TRAIN]
    if len(train) != len(prepared.y_train):  # both come from the same split; guard the invariant
        raise TrainingRejectedError("the trainer's training rows differ from the evaluation split")
    label = fs.label.name
    features = [f.name for f in fs.features if f.name in frame.columns and f.name != label]
    weighted, _ = fit_weight_kwargs(estimator, getattr(prepared, "w_train", None))
    try:
        with threadpool_limits(limits=threads):
            estimator.fit(train[features], train[label], **weighted)
    except Exception as e:  # user pipelines raise anything on bad data or parameters
        raise TrainingRejectedError(
            f"fitting trainer {spec!r} failed ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
        ) from None
    schema = fs.input_schema()
    return estimator, convert_estimator(estimator, schema), EstimatorOnServedRows(estimator, schema)
