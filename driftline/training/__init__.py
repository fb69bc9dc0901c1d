"""Training: time-split fit, ONNX export with a parity check, evaluation, registration.

- :func:`driftline.training.core.train_model` — pure: table in, artifacts (bytes) and metrics out.
- :func:`driftline.training.publish.train_and_register` — uploads artifacts and registers the version
  (``candidate``, or ``rejected`` with the reason), scoring the champion on the same holdout.
Imports scikit-learn and pandas-capable code: only the training image and the CLI load this package.
"""
