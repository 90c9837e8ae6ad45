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

NAMESPACE=vid2mp3
DEFAULT_REGISTRY=ghcr.io/vid2mp3
REGISTRY="${REGISTRY:-$DEFAULT_REGISTRY}"
SECRETS_DIR="${VID2MP3_SECRETS:-secrets}"
DRY_RUN=0
INSTALL_PLATFORM=0

# Versions installed by --install-platform.
KNATIVE_VERSION=knative-v1.16.0
CERT_MANAGER_VERSION=v1.16.1
RABBITMQ_OPERATOR_VERSION=v2.11.0
RABBITMQ_TOPOLOGY_VERSION=v1.15.0

# The functions' secrets (read through <KEY>_FILE) and the backing services' passwords.
APP_SECRETS=(jwt-secret database-url storage-url aws-access-key-id aws-secret-access-key smtp-url openai-api-key)
BACKING_SECRETS=(mysql-root-password mysql-password mongodb-root-password)

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --install-platform) INSTALL_PLATFORM=1 ;;
    --registry) REGISTRY="${2:?--registry needs a value}"; shift ;;
    --secrets) SECRETS_DIR="${2:?--secrets needs a directory}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "deploy-knative: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

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

# --from-file arguments for a Secret, after checking every file is there.
secret_files() {
  local name missing=0
  for name in "$@"; do
    if [ ! -f "$SECRETS_DIR/$name" ]; then
      echo "deploy-knative: missing secret file $SECRETS_DIR/$name" >&2
      missing=1
    fi
    printf '%s\n' "--from-file=$name=$SECRETS_DIR/$name"
  done
  if [ "$missing" -eq 1 ] && [ "$DRY_RUN" -eq 0 ]; then
    echo "deploy-knative: create the files above (docs/deploy.md lists what goes in each)" >&2
    return 1
  fi
}

apply_secret() {
  local name="$1" files
  shift
  files="$(secret_files "$@")"
  local args=()
  mapfile -t args <<<"$files"
  run kubectl create secret generic "$name" --namespace "$NAMESPACE" "${args[@]}" \
    --dry-run=client --output yaml "|" kubectl apply -f -
}

# Apply Knative manifests, pointing their images at --registry when it is not the default.
apply_images() {
  if [ "$REGISTRY" = "$DEFAULT_REGISTRY" ]; then
    run kubectl apply -f "$1"
  else
    local manifest
    for manifest in "$1"/*.yaml; do
      run sed "s#$DEFAULT_REGISTRY/#$REGISTRY/#" "$manifest" "|" kubectl apply -f -
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
  run kubectl apply -f "https://github.com/rabbitmq/cluster-operator/releases/download/$RABBITMQ_OPERATOR_VERSION/cluster-operator.yml"
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

# Backing services: RabbitMQ (through its operator), MySQL, MongoDB, MinIO.
run kubectl apply -f infra/k8s/rabbitmq.yaml -f infra/k8s/mysql.yaml -f infra/k8s/mongodb.yaml \
  -f infra/k8s/minio.yaml
run kubectl wait --for=condition=AllReplicasReady rabbitmqcluster/vid2mp3-rabbitmq \
  --namespace "$NAMESPACE" --timeout=10m
for statefulset in mysql mongodb minio; do
  run kubectl rollout status "statefulset/$statefulset" --namespace "$NAMESPACE" --timeout=5m
done

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
run kn service list --namespace "$NAMESPACE"
