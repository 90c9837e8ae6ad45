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

# shellcheck source=SCRIPTDIR/lib.sh
source infra/lib.sh

FUNCTION_NAMESPACE=openfaas-fn
CONNECTOR=0
DEPLOY_ONLY=0

# The functions' secrets, as OpenFaaS secrets vid2mp3-<name> (read through <KEY>_FILE).
APP_SECRETS=(jwt-secret database-url storage-url events-url aws-access-key-id aws-secret-access-key smtp-url openai-api-key)
# MinIO's root credentials are the functions' S3 keys.
STORAGE_SECRETS=(aws-access-key-id aws-secret-access-key)

own_option() {
  case "$1" in
    --connector) CONNECTOR=1 ;;
    --deploy-only) DEPLOY_ONLY=1 ;;
    *) return 1 ;;
  esac
}

parse_options "$@"
export REGISTRY

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
  install_rabbitmq_operator
}

if [ "$INSTALL_PLATFORM" -eq 1 ]; then
  install_platform
fi

# Backing services: RabbitMQ (through its operator), MySQL, MongoDB, MinIO.
run kubectl apply -f infra/k8s/namespace.yaml
apply_secret vid2mp3-secrets "${STORAGE_SECRETS[@]}"
apply_secret vid2mp3-backing "${BACKING_SECRETS[@]}"
deploy_backing_services

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

# Events. CE: our dispatcher, from RabbitMQ to /async-function/<name> through the gateway (it
# runs the outbox relay too).
# Standard/Enterprise: the RabbitMQ connector, with the functions' "topic" annotations.
if [ "$CONNECTOR" -eq 1 ]; then
  run helm upgrade --install rabbitmq-connector openfaas/rabbitmq-connector --namespace openfaas \
    -f infra/openfaas/rabbitmq-connector-values.yaml
  run kubectl rollout status deployment/rabbitmq-connector --namespace openfaas --timeout=5m
  # The connector only delivers; the outbox relay (in the dispatcher on CE) runs on its own.
  apply_manifest infra/openfaas/relay.yaml
else
  apply_manifest infra/openfaas/dispatcher.yaml
  run kubectl rollout status deployment/vid2mp3-dispatcher --namespace "$FUNCTION_NAMESPACE" \
    --timeout=5m
fi
run faas-cli list --verbose
