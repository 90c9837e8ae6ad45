# shellcheck shell=bash
# The sourcing scripts read the settings assigned here.
# shellcheck disable=SC2034
#
# What infra/deploy-knative.sh and infra/deploy-openfaas.sh share: sourced by both (from the
# repository root), never run on its own.
#
# --help prints the script's header comment. A script with options of its own defines
# `own_option OPTION` (returns 1 for an option it does not know) before calling parse_options.

SCRIPT_NAME="$(basename "$0" .sh)"

NAMESPACE=vid2mp3
DEFAULT_REGISTRY=ghcr.io/vid2mp3
REGISTRY="${REGISTRY:-$DEFAULT_REGISTRY}"
SECRETS_DIR="${VID2MP3_SECRETS:-secrets}"
DRY_RUN=0
INSTALL_PLATFORM=0

RABBITMQ_OPERATOR_VERSION=v2.11.0

# The backing services' passwords, in the Secret vid2mp3-backing.
BACKING_SECRETS=(mysql-root-password mysql-password mongodb-root-password)

# The script's header comment, from its second line to the last comment line of the header.
usage() {
  sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
}

# The options both scripts take; anything else goes to the script's `own_option`.
parse_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      --install-platform) INSTALL_PLATFORM=1 ;;
      --registry) REGISTRY="${2:?--registry needs a value}"; shift ;;
      --secrets) SECRETS_DIR="${2:?--secrets needs a directory}"; shift ;;
      -h | --help) usage; exit 0 ;;
      *)
        if ! declare -F own_option >/dev/null || ! own_option "$1"; then
          echo "$SCRIPT_NAME: unknown option $1" >&2
          usage >&2
          exit 2
        fi
        ;;
    esac
    shift
  done
}

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

# Fails (unless --dry-run) when a secret file is missing, after naming every missing one.
check_secret_files() {
  local name missing=0
  for name in "$@"; do
    if [ ! -f "$SECRETS_DIR/$name" ]; then
      echo "$SCRIPT_NAME: missing secret file $SECRETS_DIR/$name" >&2
      missing=1
    fi
  done
  if [ "$missing" -eq 1 ] && [ "$DRY_RUN" -eq 0 ]; then
    echo "$SCRIPT_NAME: create the files above (docs/deploy.md lists what goes in each)" >&2
    return 1
  fi
}

# A Kubernetes Secret NAME in the namespace, one key per secret file: apply_secret NAME KEY...
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

# Apply one manifest, pointing its images at --registry when it is not the default.
apply_manifest() {
  if [ "$REGISTRY" = "$DEFAULT_REGISTRY" ]; then
    run kubectl apply -f "$1"
  else
    run sed "s#$DEFAULT_REGISTRY/#$REGISTRY/#" "$1" "|" kubectl apply -f -
  fi
}

install_rabbitmq_operator() {
  run kubectl apply -f "https://github.com/rabbitmq/cluster-operator/releases/download/$RABBITMQ_OPERATOR_VERSION/cluster-operator.yml"
}

# Backing services: RabbitMQ (through its operator), MySQL, MongoDB, MinIO; waits until they serve.
deploy_backing_services() {
  local statefulset
  run kubectl apply -f infra/k8s/rabbitmq.yaml -f infra/k8s/mysql.yaml -f infra/k8s/mongodb.yaml \
    -f infra/k8s/minio.yaml
  run kubectl wait --for=condition=AllReplicasReady rabbitmqcluster/vid2mp3-rabbitmq \
    --namespace "$NAMESPACE" --timeout=10m
  for statefulset in mysql mongodb minio; do
    run kubectl rollout status "statefulset/$statefulset" --namespace "$NAMESPACE" --timeout=5m
  done
}
