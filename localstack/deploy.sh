#!/usr/bin/env bash
# Deploy the real Driftline stacks to LocalStack with cdklocal, then run the demo scenario against it.
# Needs: Docker, LOCALSTACK_AUTH_TOKEN, Node >= 20, Python >= 3.11. Usage: bash localstack/deploy.sh [ENV]
set -euo pipefail
cd "$(dirname "$0")/.."
ENV="${1:-dev}"
: "${LOCALSTACK_AUTH_TOKEN:?LocalStack needs an account: export LOCALSTACK_AUTH_TOKEN=...}"
command -v docker >/dev/null || { echo "Docker is required for LocalStack (use 'driftline local up' without it)"; exit 1; }
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:4566

docker compose -f localstack/docker-compose.yml up -d --wait
make install-dev node
node_modules/.bin/cdklocal bootstrap aws://000000000000/us-east-1 -c driftline:env="$ENV"
node_modules/.bin/cdklocal deploy --all -c driftline:env="$ENV" --require-approval never
.venv/bin/python localstack/scenario.py --env "$ENV"
