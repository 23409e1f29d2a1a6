#!/usr/bin/env bash
# Deploy the HITL Patch Service to Kubernetes with kustomize.
#
#   deploy/deploy.sh staging|production [--yes] [--dry-run]
#
#   --yes      do not ask for confirmation (production asks by default; required without a terminal)
#   --dry-run  validate against the API server (kubectl apply --dry-run=server), change nothing
#
# Environment:
#   IMAGE_TAG        deploy this image tag instead of the overlay's pinned one (e.g. 0.1.1)
#   KUBE_CONTEXT     refuse to run unless the current kubectl context is exactly this
#   ROLLOUT_TIMEOUT  how long to wait for the rollout (default 10m)
#   KUBECTL          kubectl binary to use (default: kubectl on PATH)
#
# Refuses to deploy while the Secrets postgres-immunity-secret (username, password) and
# hitl-api-keys (jwt-secret, internal-api-key) are missing, empty, too short or placeholders;
# it prints the commands that create them. It never prints a secret value.
set -euo pipefail

readonly NAMESPACE="maximus-immunity"
readonly APP="hitl-patch-service"
readonly DEPLOYMENT="hitl-patch-service"
readonly CRONJOB="hitl-patch-service-ml-train"
readonly IMAGE="vertice-dev/hitl-patch-service"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
KUBECTL="${KUBECTL:-kubectl}"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-10m}"

info() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
  exit 2
}

ENVIRONMENT=""
ASSUME_YES=0
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    staging | production) [[ -z "$ENVIRONMENT" ]] || usage; ENVIRONMENT="$arg" ;;
    --yes | -y) ASSUME_YES=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage ;;
    *) printf 'unknown argument: %s\n\n' "$arg" >&2; usage ;;
  esac
done
[[ -n "$ENVIRONMENT" ]] || usage
OVERLAY="$SCRIPT_DIR/kustomize/overlays/$ENVIRONMENT"
[[ -f "$OVERLAY/kustomization.yaml" ]] || die "overlay not found: $OVERLAY"

# --------------------------------------------------------------------------- kubectl and context
command -v "$KUBECTL" >/dev/null 2>&1 || die "kubectl not found (install it, or set KUBECTL=/path/to/kubectl)"
"$KUBECTL" version --client >/dev/null 2>&1 || die "'$KUBECTL version --client' failed"

CONTEXT="$("$KUBECTL" config current-context 2>/dev/null)" || die "no current kubectl context (kubectl config use-context NAME)"
[[ -n "$CONTEXT" ]] || die "no current kubectl context (kubectl config use-context NAME)"
if [[ -n "${KUBE_CONTEXT:-}" && "$CONTEXT" != "$KUBE_CONTEXT" ]]; then
  die "current context is '$CONTEXT' but KUBE_CONTEXT='$KUBE_CONTEXT'"
fi
info "environment: $ENVIRONMENT   context: $CONTEXT   namespace: $NAMESPACE"
"$KUBECTL" version >/dev/null 2>&1 || die "cannot reach the API server of context '$CONTEXT'"

if [[ "$ENVIRONMENT" == "production" && "$ASSUME_YES" -ne 1 ]]; then
  [[ -t 0 ]] || die "production deploy without a terminal: pass --yes to confirm"
  read -r -p "Deploy to PRODUCTION in context '$CONTEXT'? Type the context name to continue: " answer
  [[ "$answer" == "$CONTEXT" ]] || die "not confirmed"
fi

# --------------------------------------------------------------------------- namespace
if "$KUBECTL" get namespace "$NAMESPACE" >/dev/null 2>&1; then
  info "namespace $NAMESPACE exists"
elif [[ "$DRY_RUN" -eq 1 ]]; then
  info "namespace $NAMESPACE would be created"
else
  info "creating namespace $NAMESPACE"
  "$KUBECTL" create namespace "$NAMESPACE"
fi

# --------------------------------------------------------------------------- secrets
secret_help() {
  cat >&2 <<HELP

Create the Secrets first (values are generated locally and never stored in git):

  kubectl create secret generic postgres-immunity-secret -n $NAMESPACE \\
    --from-literal=username=maximus \\
    --from-literal=password="\$(openssl rand -base64 32)"
  # the password must be the one PostgreSQL (postgres-immunity-service) has for that user

  kubectl create secret generic hitl-api-keys -n $NAMESPACE \\
    --from-literal=jwt-secret="\$(openssl rand -base64 64 | tr -d '\\n')" \\
    --from-literal=internal-api-key="\$(openssl rand -base64 32)"

To replace a placeholder, add --dry-run=client -o yaml | kubectl apply -f - to the same command.
HELP
}

# is_placeholder VALUE [KIND]: true for values that are obviously not real secrets.
# KIND "name" (a user name) skips the list of weak whole words.
is_placeholder() {
  local lower
  lower="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')"
  case "$lower" in
    *changeme* | *change-me* | *change_me* | *replace* | *placeholder* | *example* | *dummy* | \
      *default* | *insecure* | *not-a-secret* | *todo* | *fixme* | *xxxx* | *redacted* | "<"*">")
      return 0 ;;
  esac
  if [[ "${2:-}" != "name" ]]; then
    case "$lower" in
      secret | password | passw0rd | admin | test | dev | maximus | 123456*) return 0 ;;
    esac
  fi
  return 1
}

SECRET_PROBLEMS=0
# check_secret_key SECRET KEY MIN_LENGTH [KIND]
check_secret_key() {
  local secret="$1" key="$2" min="$3" kind="${4:-secret}" encoded value
  if ! encoded="$("$KUBECTL" get secret "$secret" -n "$NAMESPACE" -o "jsonpath={.data.$key}" 2>/dev/null)"; then
    warn "Secret $secret is missing in namespace $NAMESPACE"
    SECRET_PROBLEMS=1
    return 0
  fi
  if [[ -z "$encoded" ]]; then
    warn "Secret $secret has no key '$key' (or it is empty)"
    SECRET_PROBLEMS=1
    return 0
  fi
  if ! value="$(printf '%s' "$encoded" | base64 -d 2>/dev/null)"; then
    warn "Secret $secret key '$key' is not valid base64"
    SECRET_PROBLEMS=1
    return 0
  fi
  if is_placeholder "$value" "$kind"; then
    warn "Secret $secret key '$key' holds a placeholder value"
    SECRET_PROBLEMS=1
  elif ((${#value} < min)); then
    warn "Secret $secret key '$key' is shorter than $min characters"
    SECRET_PROBLEMS=1
  fi
}

info "checking Secrets"
check_secret_key postgres-immunity-secret username 1 name
check_secret_key postgres-immunity-secret password 16
check_secret_key hitl-api-keys jwt-secret 32
check_secret_key hitl-api-keys internal-api-key 24
if [[ "$SECRET_PROBLEMS" -ne 0 ]]; then
  secret_help
  die "refusing to deploy: fix the Secrets above"
fi

# --------------------------------------------------------------------------- monitoring CRDs
if ! "$KUBECTL" get crd servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com >/dev/null 2>&1; then
  die "the prometheus-operator CRDs (ServiceMonitor, PrometheusRule) are not installed: install kube-prometheus-stack, or remove components/monitoring from $OVERLAY/kustomization.yaml"
fi

# --------------------------------------------------------------------------- build
WORK="$(mktemp -d)"
TAG_DIR=""
cleanup() { rm -rf "$WORK" ${TAG_DIR:+"$TAG_DIR"}; }
trap cleanup EXIT
BUILD_DIR="$OVERLAY"
if [[ -n "${IMAGE_TAG:-}" ]]; then
  [[ "$IMAGE_TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "IMAGE_TAG '$IMAGE_TAG' is not a valid image tag"
  [[ "$IMAGE_TAG" != "latest" ]] || die "refusing IMAGE_TAG=latest: deploy a pinned tag"
  # A throw-away kustomization on top of the overlay (kustomize only takes relative paths).
  TAG_DIR="$(mktemp -d "$SCRIPT_DIR/kustomize/.image-tag.XXXXXX")"
  cat >"$TAG_DIR/kustomization.yaml" <<KUST
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../overlays/$ENVIRONMENT
images:
  - name: $IMAGE
    newTag: "$IMAGE_TAG"
KUST
  BUILD_DIR="$TAG_DIR"
fi
info "building $OVERLAY${IMAGE_TAG:+ with image tag $IMAGE_TAG}"
"$KUBECTL" kustomize "$BUILD_DIR" >"$WORK/manifests.yaml"
grep -q "kind: Secret$" "$WORK/manifests.yaml" && warn "the overlay renders a Secret: it must hold no real value"
DEPLOY_IMAGE="$(sed -n "s|^ *image: \($IMAGE:.*\)$|\1|p" "$WORK/manifests.yaml" | sort -u)"
info "image: $DEPLOY_IMAGE"

# --------------------------------------------------------------------------- apply
if [[ "$DRY_RUN" -eq 1 ]]; then
  info "dry run: kubectl apply --dry-run=server"
  "$KUBECTL" apply --dry-run=server -f "$WORK/manifests.yaml"
  info "dry run done, nothing changed"
  exit 0
fi

info "applying"
"$KUBECTL" apply -f "$WORK/manifests.yaml"

info "waiting for the rollout (timeout $ROLLOUT_TIMEOUT)"
if ! "$KUBECTL" rollout status "deployment/$DEPLOYMENT" -n "$NAMESPACE" --timeout="$ROLLOUT_TIMEOUT"; then
  cat >&2 <<FAIL

The rollout did not finish. Look at:
  kubectl get pods -n $NAMESPACE -l app=$APP
  kubectl logs -n $NAMESPACE -l app=$APP -c db-migrate --tail=100     # migrations (init container)
  kubectl logs -n $NAMESPACE -l app=$APP -c hitl-service --tail=100
  kubectl get events -n $NAMESPACE --sort-by=.lastTimestamp
Roll back with:
  kubectl rollout undo deployment/$DEPLOYMENT -n $NAMESPACE
FAIL
  die "rollout of deployment/$DEPLOYMENT failed"
fi

cat <<DONE

Deployed $DEPLOY_IMAGE to $ENVIRONMENT (context $CONTEXT).

Verify:
  kubectl get pods,svc,hpa,pdb,ingress -n $NAMESPACE -l app=$APP
  kubectl rollout status deployment/$DEPLOYMENT -n $NAMESPACE
  kubectl port-forward -n $NAMESPACE svc/$APP 8027:8027 &
  curl -fsS http://localhost:8027/health
  curl -fsS http://localhost:8027/ready
  curl -fsS http://localhost:8027/metrics | grep '^hitl_'
  kubectl get cronjob $CRONJOB -n $NAMESPACE

Roll back:
  kubectl rollout history deployment/$DEPLOYMENT -n $NAMESPACE
  kubectl rollout undo deployment/$DEPLOYMENT -n $NAMESPACE
  kubectl rollout undo deployment/$DEPLOYMENT -n $NAMESPACE --to-revision=N
  (database migrations are not undone by a rollback: see deploy/README.md, "Rollback")
DONE
