"""The prediction endpoint's core: request parsing, schema-driven validation, champion resolution,
ONNX Runtime inference, traffic policies, inference capture and the OpenAPI document.

Import discipline: this package runs in the serving Lambda, so it imports only the standard
library, numpy, onnxruntime, boto3 (through ``driftline.aws``), ``driftline.registry.store``,
``driftline.registry.artifacts``, ``driftline.features.encoding`` and ``driftline.features.online``;
never pandas, scikit-learn, pyarrow or pydantic (``tests/integration/test_serving_imports.py`` checks it).
``driftline.serving.reference_model`` is the one exception: a test/demo helper that needs ``onnx``
and is never imported by the handler.
"""
