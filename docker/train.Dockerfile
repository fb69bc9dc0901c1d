# syntax=docker/dockerfile:1
# Image of the `train` Lambda: pandas + pyarrow + scikit-learn + skl2onnx + onnxruntime are ~500 MB,
# over the 250 MB zip limit (docs/registry.md, "Packaging"). Built by `cdk deploy` only (needs Docker);
# `cdk synth` stages the context without Docker. Context: the repository root, filtered by .dockerignore
# (and the same patterns in stacks/pipeline_stack.py). Build by hand with:
#   docker build --platform linux/amd64 -f docker/train.Dockerfile -t driftline-train .
#
# The Lambda architecture is x86_64 (driftline/platform.py), so the image is amd64 whatever the host.
FROM --platform=linux/amd64 public.ecr.aws/lambda/python:3.12

# Recorded as the code version in every model's lineage (e.g. --build-arg DRIFTLINE_CODE_VERSION=git:<sha>);
# when empty, training records a SHA-256 of the driftline sources instead.
ARG DRIFTLINE_CODE_VERSION=""
ENV DRIFTLINE_CODE_VERSION=${DRIFTLINE_CODE_VERSION}

# Exactly the locked versions of the runtime and training dependencies (no moto, no CDK, no test tools),
# bytecode precompiled for this Python (a cold `import sklearn` is ~3x slower without it).
COPY pyproject.toml uv.lock ${LAMBDA_TASK_ROOT}/
RUN pip install --no-cache-dir uv==0.13.8 \
 && cd ${LAMBDA_TASK_ROOT} \
 && uv export --frozen --no-hashes --no-dev --extra training --no-emit-project --format requirements-txt -o /tmp/requirements.txt \
 && uv pip install --system --no-cache --compile-bytecode -r /tmp/requirements.txt \
 && pip uninstall -y uv \
 && rm -f /tmp/requirements.txt

# The code and the feature-set definitions (FEATURE_SETS_DIR=feature_sets, relative to the task root).
COPY driftline ${LAMBDA_TASK_ROOT}/driftline
COPY lambdas ${LAMBDA_TASK_ROOT}/lambdas
COPY examples/feature_sets ${LAMBDA_TASK_ROOT}/feature_sets
# The user's own training code (models[].trainer): cdk.json's trainers_dir, passed by the stack
# (stacks/pipeline_stack.py); TRAINERS_DIR=trainers in the function's environment points here.
ARG TRAINERS_DIR=docker/no-trainers
COPY ${TRAINERS_DIR} ${LAMBDA_TASK_ROOT}/trainers
RUN python3 -m compileall -q --invalidation-mode unchecked-hash ${LAMBDA_TASK_ROOT}/driftline ${LAMBDA_TASK_ROOT}/lambdas \
 && python3 -c "import lambdas.train, driftline.training.sagemaker_entry, onnxruntime, sklearn, skl2onnx, skops.io, pyarrow.parquet"

# The Lambda runs the handler below. SageMaker training jobs (models[].training.compute) run this same image
# with ContainerEntrypoint ["python3", "-m", "driftline.training.sagemaker_entry"] and PYTHONPATH=/var/task
# (driftline/retraining/sagemaker.py), so both train with the same code, feature sets and trainers.
CMD ["lambdas.train.handler"]
