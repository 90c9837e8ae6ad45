#!/usr/bin/env bash
# Deploy vid2mp3 on Knative, in order: backing services, the broker, the functions, the triggers.
#
#   infra/deploy-knative.sh [--dry-run] [--install-platform] [--registry REGISTRY] [--secrets DIR]
#
# --dry-run           print each command instead of running it (nothing is contacted)
# --install-platform  first install Knative Serving (Kourier), Eventing, cert-manager, the RabbitMQ
#                     cluster and messaging-topology operators and eventing-rabbitmq (cluster admin)
# --registry          where the images were pushed (default ghcr.io/vid2mp3)
# --secrets DIR       one file per secret (default ./secrets; see docs/deploy.md for the names)
#
# Images are built and pushed beforehand (docs/deploy.md: docker build -f infra/Dockerfile ...).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=SCRIPTDIR/lib.sh
source infra/lib.sh

# Versions installed by --install-platform (and RABBITMQ_OPERATOR_VERSION, in lib.sh).
KNATIVE_VERSION=knative-v1.16.0
CERT_MANAGER_VERSION=v1.16.1
RABBITMQ_TOPOLOGY_VERSION=v1.15.0

# The functions' secrets (read through <KEY>_FILE).
APP_SECRETS=(jwt-secret database-url storage-url aws-access-key-id aws-secret-access-key smtp-url openai-api-key)

parse_options "$@"

# Knative manifests, pointing their images at --registry when it is not the default.
apply_images() {
  if [ "$REGISTRY" = "$DEFAULT_REGISTRY" ]; then
    run kubectl apply -f "$1"
  else
    local manifest
    for manifest in "$1"/*.yaml; do
      apply_manifest "$manifest"
    done
  fi
}

install_platform() {
  local kn=https://github.com/knative
  run kubectl apply -f "$kn/serving/releases/download/$KNATIVE_VERSION/serving-crds.yaml"
  run kubectl apply -f "$kn/serving/releases/download/$KNATIVE_VERSION/serving-core.yaml"
  run kubectl apply -f "$kn/net-kourier/releases/download/$KNATIVE_VERSION/kourier.yaml"
  run kubectl patch configmap/config-network --namespace knative-serving --type merge \
    --patch '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
  run kubectl apply -f "$kn/eventing/releases/download/$KNATIVE_VERSION/eventing-crds.yaml"
  run kubectl apply -f "$kn/eventing/releases/download/$KNATIVE_VERSION/eventing-core.yaml"
  run kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
  run kubectl wait --for=condition=Available deployment --all --namespace cert-manager --timeout=5m
  install_rabbitmq_operator
  run kubectl apply -f "https://github.com/rabbitmq/messaging-topology-operator/releases/download/$RABBITMQ_TOPOLOGY_VERSION/messaging-topology-operator-with-certmanager.yaml"
  run kubectl apply -f "https://github.com/knative-extensions/eventing-rabbitmq/releases/download/$KNATIVE_VERSION/rabbitmq-broker.yaml"
  run kubectl wait --for=condition=Available deployment --all --namespace knative-serving --timeout=5m
  run kubectl wait --for=condition=Available deployment --all --namespace knative-eventing --timeout=5m
}

if [ "$INSTALL_PLATFORM" -eq 1 ]; then
  install_platform
fi

# The functions' root filesystem is read-only; /tmp is an emptyDir, which Knative gates.
run kubectl patch configmap/config-features --namespace knative-serving --type merge \
  --patch '{"data":{"kubernetes.podspec-volumes-emptydir":"enabled"}}'

run kubectl apply -f infra/k8s/namespace.yaml
apply_secret vid2mp3-secrets "${APP_SECRETS[@]}"
apply_secret vid2mp3-backing "${BACKING_SECRETS[@]}"
deploy_backing_services

# The broker first: the SinkBinding needs its address, and binding before the Services exist
# gives their first revision K_SINK already.
run kubectl apply -f infra/knative/config.yaml
run kubectl apply -f infra/knative/broker.yaml
run kubectl wait --for=condition=Ready broker/vid2mp3 --namespace "$NAMESPACE" --timeout=5m
run kubectl apply -f infra/knative/sinkbinding.yaml
run kubectl wait --for=condition=Ready sinkbinding/vid2mp3-events --namespace "$NAMESPACE" \
  --timeout=5m
apply_images infra/knative/services
run kubectl wait --for=condition=Ready ksvc --all --namespace "$NAMESPACE" --timeout=10m
run kubectl apply -f infra/knative/triggers.yaml
run kubectl wait --for=condition=Ready trigger --all --namespace "$NAMESPACE" --timeout=5m
# The outbox relay: what a broker outage left unsent goes out once the broker is back.
apply_manifest infra/knative/relay.yaml
run kn service list --namespace "$NAMESPACE"
