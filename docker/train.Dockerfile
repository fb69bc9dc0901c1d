# Training function image (pandas + pyarrow + scikit-learn + skl2onnx exceed the 250 MB zip limit).
# Built only by `cdk deploy` (needs Docker); `cdk synth` just stages this context.
FROM public.ecr.aws/lambda/python:3.12

ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=0
COPY pyproject.toml uv.lock README.md ${LAMBDA_TASK_ROOT}/
RUN pip install --no-cache-dir uv==0.13.8 \
 && cd ${LAMBDA_TASK_ROOT} \
 && uv export --frozen --no-hashes --no-dev --no-emit-project --format requirements-txt > /tmp/requirements.txt \
 && uv pip install --system --no-cache --compile-bytecode -r /tmp/requirements.txt \
 && pip uninstall -y uv

COPY driftline ${LAMBDA_TASK_ROOT}/driftline
COPY lambdas ${LAMBDA_TASK_ROOT}/lambdas
COPY examples/feature_sets ${LAMBDA_TASK_ROOT}/feature_sets
RUN python -m compileall -q ${LAMBDA_TASK_ROOT}/driftline ${LAMBDA_TASK_ROOT}/lambdas

CMD ["lambdas.train.handler"]
