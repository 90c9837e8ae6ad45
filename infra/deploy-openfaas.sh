#!/usr/bin/env bash
# Deploy vid2mp3 on OpenFaaS, in order: backing services, secrets, the functions, the events.
#
#   infra/deploy-openfaas.sh [--dry-run] [--install-platform] [--connector] [--deploy-only]
#                            [--registry REGISTRY] [--secrets DIR]
#
# --dry-run           print each command instead of running it (nothing is contacted)
# --install-platform  first install OpenFaaS (Helm chart, with infra/openfaas/values.yaml) and the
#                     RabbitMQ cluster operator, and log faas-cli in (cluster admin)
# --connector         OpenFaaS Standard/Enterprise: events through the RabbitMQ connector and the
#                     functions' topic annotations, instead of our dispatcher (the CE way)
# --deploy-only       faas-cli deploy (images already pushed) instead of faas-cli up
# --registry          where the images go (default ghcr.io/vid2mp3; stack.yml reads $REGISTRY)
# --secrets DIR       one file per secret (default ./secrets; see docs/deploy.md for the names)
#
# faas-cli talks to $OPENFAAS_URL (default http://127.0.0.1:8080), logged in (faas-cli login).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

NAMESPACE=vid2mp3
FUNCTION_NAMESPACE=openfaas-fn
DEFAULT_REGISTRY=ghcr.io/vid2mp3
REGISTRY="${REGISTRY:-$DEFAULT_REGISTRY}"
SECRETS_DIR="${VID2MP3_SECRETS:-secrets}"
DRY_RUN=0
INSTALL_PLATFORM=0
CONNECTOR=0
DEPLOY_ONLY=0

RABBITMQ_OPERATOR_VERSION=v2.11.0

# The functions' secrets, as OpenFaaS secrets vid2mp3-<name> (read through <KEY>_FILE).
APP_SECRETS=(jwt-secret database-url storage-url events-url aws-access-key-id aws-secret-access-key smtp-url openai-api-key)
# MinIO's root credentials are the functions' S3 keys; the databases' passwords.
STORAGE_SECRETS=(aws-access-key-id aws-secret-access-key)
BACKING_SECRETS=(mysql-root-password mysql-password mongodb-root-password)

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --install-platform) INSTALL_PLATFORM=1 ;;
    --connector) CONNECTOR=1 ;;
    --deploy-only) DEPLOY_ONLY=1 ;;
    --registry) REGISTRY="${2:?--registry needs a value}"; shift ;;
    --secrets) SECRETS_DIR="${2:?--secrets needs a directory}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "deploy-openfaas: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
export REGISTRY

# One word, quoted for the shell when it needs to be (single quotes, readable in the output).
quote() {
  case "$1" in
    "" | *[!A-Za-z0-9_./:=@%+,-]*) printf "'%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf '%s' "$1" ;;
  esac
}

# Print a command (operators "|", "||" and "&&" given as separate words), then run it unless
# --dry-run. Every other word is quoted, so what is printed is exactly what runs.
run() {
  local cmd="" word
  for word in "$@"; do
    case "$word" in
      "|" | "||" | "&&") cmd+=" $word" ;;
      *) cmd+=" $(quote "$word")" ;;
    esac
  done
  printf '+%s\n' "$cmd"
  if [ "$DRY_RUN" -eq 0 ]; then
    eval "$cmd"
  fi
}

check_secret_files() {
  local name missing=0
  for name in "$@"; do
    if [ ! -f "$SECRETS_DIR/$name" ]; then
      echo "deploy-openfaas: missing secret file $SECRETS_DIR/$name" >&2
      missing=1
    fi
  done
  if [ "$missing" -eq 1 ] && [ "$DRY_RUN" -eq 0 ]; then
    echo "deploy-openfaas: create the files above (docs/deploy.md lists what goes in each)" >&2
    return 1
  fi
}

apply_secret() {
  local name="$1" key args=()
  shift
  check_secret_files "$@"
  for key in "$@"; do
    args+=("--from-file=$key=$SECRETS_DIR/$key")
  done
  run kubectl create secret generic "$name" --namespace "$NAMESPACE" "${args[@]}" \
    --dry-run=client --output yaml "|" kubectl apply -f -
}

install_platform() {
  run kubectl apply -f https://raw.githubusercontent.com/openfaas/faas-netes/master/namespaces.yml
  run helm repo add openfaas https://openfaas.github.io/faas-netes/
  run helm repo update
  run helm upgrade --install openfaas openfaas/openfaas --namespace openfaas \
    -f infra/openfaas/values.yaml --wait
  run kubectl rollout status deployment/gateway --namespace openfaas --timeout=5m
  run kubectl get secret basic-auth --namespace openfaas \
    --output 'jsonpath={.data.basic-auth-password}' "|" base64 --decode \
    "|" faas-cli login --username admin --password-stdin
  run kubectl apply -f "https://github.com/rabbitmq/cluster-operator/releases/download/$RABBITMQ_OPERATOR_VERSION/cluster-operator.yml"
}

if [ "$INSTALL_PLATFORM" -eq 1 ]; then
  install_platform
fi

# Backing services: RabbitMQ (through its operator), MySQL, MongoDB, MinIO.
run kubectl apply -f infra/k8s/namespace.yaml
apply_secret vid2mp3-secrets "${STORAGE_SECRETS[@]}"
apply_secret vid2mp3-backing "${BACKING_SECRETS[@]}"
run kubectl apply -f infra/k8s/rabbitmq.yaml -f infra/k8s/mysql.yaml -f infra/k8s/mongodb.yaml \
  -f infra/k8s/minio.yaml
run kubectl wait --for=condition=AllReplicasReady rabbitmqcluster/vid2mp3-rabbitmq \
  --namespace "$NAMESPACE" --timeout=10m
for statefulset in mysql mongodb minio; do
  run kubectl rollout status "statefulset/$statefulset" --namespace "$NAMESPACE" --timeout=5m
done

# OpenFaaS secrets, mounted at /var/openfaas/secrets/vid2mp3-<name>; update when they exist.
check_secret_files "${APP_SECRETS[@]}"
for name in "${APP_SECRETS[@]}"; do
  run faas-cli secret create "vid2mp3-$name" --from-file "$SECRETS_DIR/$name" \
    "||" faas-cli secret update "vid2mp3-$name" --from-file "$SECRETS_DIR/$name"
done

if [ "$DEPLOY_ONLY" -eq 1 ]; then
  run faas-cli deploy -f stack.yml
else
  run faas-cli up -f stack.yml
fi

# Events. CE: our dispatcher, from RabbitMQ to /async-function/<name> through the gateway.
# Standard/Enterprise: the RabbitMQ connector, with the functions' "topic" annotations.
if [ "$CONNECTOR" -eq 1 ]; then
  run helm upgrade --install rabbitmq-connector openfaas/rabbitmq-connector --namespace openfaas \
    -f infra/openfaas/rabbitmq-connector-values.yaml
  run kubectl rollout status deployment/rabbitmq-connector --namespace openfaas --timeout=5m
else
  if [ "$REGISTRY" = "$DEFAULT_REGISTRY" ]; then
    run kubectl apply -f infra/openfaas/dispatcher.yaml
  else
    run sed "s#$DEFAULT_REGISTRY/#$REGISTRY/#" infra/openfaas/dispatcher.yaml "|" kubectl apply -f -
  fi
  run kubectl rollout status deployment/vid2mp3-dispatcher --namespace "$FUNCTION_NAMESPACE" \
    --timeout=5m
fi
run faas-cli list --verbose
