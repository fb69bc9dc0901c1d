"""Sample weights into an estimator's ``fit``: built-in pipelines and user trainers take them the same way.

Feedback rows may weigh more or less than uploaded rows (``training.feedback.weight``). scikit-learn
routes a pipeline's fit parameters by step name (``<final step>__sample_weight``); an estimator whose
``fit`` takes no ``sample_weight`` trains unweighted, and the split record says so rather than failing
a retraining over a weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fit_weight_kwargs"]


def fit_weight_kwargs(estimator: Any, weights: np.ndarray | None) -> tuple[dict[str, Any], str]:
    """The keyword arguments that pass ``weights`` to ``estimator.fit``, and what happened to them.

    Returns
    -------
    tuple[dict[str, Any], str]
        ``({}, "none")`` without weights or when every weight is 1 (the same fit); ``({...}, "applied")``;
        ``({}, "ignored: ...")`` when the final estimator's ``fit`` takes no ``sample_weight``.
    """
    from sklearn.utils.validation import has_fit_parameter

    if weights is None or bool(np.all(weights == 1.0)):
        return {}, "none"
    steps = getattr(estimator, "steps", None)
    name, final = steps[-1] if isinstance(steps, list) and steps else (None, estimator)
    try:
        takes = has_fit_parameter(final, "sample_weight")
    except (TypeError, ValueError, AttributeError):  # a user object whose fit cannot be inspected
        takes = False
    if not takes:
        return {}, f"ignored: {type(final).__name__}.fit takes no sample_weight, every row weighed 1"
    return {f"{name}__sample_weight" if name else "sample_weight": weights}, "applied"
