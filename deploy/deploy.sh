#!/usr/bin/env bash
# Deploy the HITL Patch Service to Kubernetes with kustomize.
#
#   deploy/deploy.sh staging|production [--yes] [--dry-run]
#
#   --yes      do not ask for confirmation (production asks by default; required without a terminal)
#   --dry-run  validate against the API server (kubectl apply --dry-run=server), change nothing
#
# Environment:
#   IMAGE_TAG          deploy this image tag instead of the overlay's pinned one (e.g. 0.1.1)
#   KUBE_CONTEXT       refuse to run unless the current kubectl context is exactly this
#   ROLLOUT_TIMEOUT    how long to wait for the rollout (default 10m)
#   MIGRATION_TIMEOUT  seconds to wait for the migration Job (default 600)
#   SECRETS_TIMEOUT    how long to wait for External Secrets to sync, with that component (default 2m)
#   KUBECTL            kubectl binary to use (default: kubectl on PATH)
#
# Refuses to deploy while the Secrets postgres-immunity-secret (the service's restricted database role:
# username, password), postgres-immunity-owner-secret (the tables' owner, for the migration Job: username,
# password; another user) and hitl-api-keys (jwt-secret, internal-api-key, audit-checkpoint-key) are missing,
# empty, too short or placeholders; it prints the commands that create them. It never prints a secret value.
#
# Order: build, (External Secrets first, with that component), check the Secrets, apply, wait for the
# migration Job (a failed run of the same release is deleted first, so that applying retries it), then for
# the rollout.
set -euo pipefail

readonly NAMESPACE="maximus-immunity"
readonly APP="hitl-patch-service"
readonly DEPLOYMENT="hitl-patch-service"
readonly CRONJOB="hitl-patch-service-ml-train"
readonly IMAGE="vertice-dev/hitl-patch-service"
readonly MIGRATION_JOB_PREFIX="hitl-patch-service-db-migrate-"
readonly OWNER_SECRET="postgres-immunity-owner-secret"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
KUBECTL="${KUBECTL:-kubectl}"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-10m}"
MIGRATION_TIMEOUT="${MIGRATION_TIMEOUT:-600}"
MIGRATION_POLL="${MIGRATION_POLL:-5}"
SECRETS_TIMEOUT="${SECRETS_TIMEOUT:-2m}"

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

# Workloads' references, read from the manifests: what to check and wait for.
MIGRATION_JOB="$(sed -n "s/^  name: \(${MIGRATION_JOB_PREFIX}[a-z0-9]*\)$/\1/p" "$WORK/manifests.yaml" | sort -u)"
USES_OWNER_SECRET=0
grep -q "name: $OWNER_SECRET$" "$WORK/manifests.yaml" && USES_OWNER_SECRET=1
USES_CHECKPOINT_KEY=0
grep -q "key: audit-checkpoint-key$" "$WORK/manifests.yaml" && USES_CHECKPOINT_KEY=1
USES_EXTERNAL_SECRETS=0
grep -q "^kind: ExternalSecret$" "$WORK/manifests.yaml" && USES_EXTERNAL_SECRETS=1

# config_value NAME_PREFIX KEY: a data value of the rendered ConfigMap whose name starts with NAME_PREFIX.
config_value() {
  awk -v prefix="$1" -v key="$2" '
    function done() { if (is_cm && named && !printed) { print value; printed = 1; exit } }
    /^---$/ { done(); is_cm = 0; named = 0; value = ""; next }
    /^kind: ConfigMap$/ { is_cm = 1 }
    index($0, "  name: " prefix) == 1 { named = 1 }
    index($0, "  " key ": ") == 1 { value = substr($0, length(key) + 5) }
    END { done() }
  ' "$WORK/manifests.yaml"
}
if [[ -n "$MIGRATION_JOB" ]]; then
  for key in POSTGRES_HOST POSTGRES_PORT POSTGRES_DB; do
    if [[ "$(config_value "$MIGRATION_JOB_PREFIX" "$key")" != "$(config_value "$APP-config-" "$key")" ]]; then
      die "the migration Job would use another $key than the service: set POSTGRES_* in the overlay that lists components/migrations (deploy/README.md, \"Migrations\")"
    fi
  done
fi

# --------------------------------------------------------------------------- external secrets
if [[ "$USES_EXTERNAL_SECRETS" -eq 1 ]]; then
  "$KUBECTL" get crd externalsecrets.external-secrets.io >/dev/null 2>&1 \
    || die "the External Secrets Operator CRDs are not installed: install it, or remove components/external-secrets from the overlay"
  if [[ "$DRY_RUN" -eq 1 ]]; then
    info "dry run: ExternalSecrets not applied; Secrets they would create are only warned about"
  else
    info "applying the ExternalSecrets first, waiting for the operator to sync them (timeout $SECRETS_TIMEOUT)"
    "$KUBECTL" apply -f "$WORK/manifests.yaml" -l app.kubernetes.io/component=secrets
    "$KUBECTL" wait --for=condition=Ready externalsecret -l app.kubernetes.io/component=secrets -n "$NAMESPACE" \
      --timeout="$SECRETS_TIMEOUT" || die "the ExternalSecrets did not become Ready: kubectl describe externalsecret -n $NAMESPACE"
  fi
fi

# --------------------------------------------------------------------------- secrets
secret_help() {
  cat >&2 <<HELP

Create the Secrets first (values are generated locally and never stored in git):

  # The tables' owner: the migration Job migrates with it and creates the role below (needs CREATEROLE)
  kubectl create secret generic $OWNER_SECRET -n $NAMESPACE \\
    --from-literal=username=maximus \\
    --from-literal=password='<the password PostgreSQL has for maximus>'

  # The restricted role the service connects as (another user; the Job creates it if missing)
  kubectl create secret generic postgres-immunity-secret -n $NAMESPACE \\
    --from-literal=username=hitl_app \\
    --from-literal=password="\$(openssl rand -base64 32)"

  kubectl create secret generic hitl-api-keys -n $NAMESPACE \\
    --from-literal=jwt-secret="\$(openssl rand -base64 64 | tr -d '\\n')" \\
    --from-literal=internal-api-key="\$(openssl rand -base64 32)" \\
    --from-literal=audit-checkpoint-key="\$(openssl rand -base64 48 | tr -d '\\n')"

To replace a placeholder or add a key, add --dry-run=client -o yaml | kubectl apply -f - to the same command.
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
SECRET_VALUE=""
# check_secret_key SECRET KEY MIN_LENGTH [KIND]: the decoded value is left in SECRET_VALUE (never printed).
check_secret_key() {
  local secret="$1" key="$2" min="$3" kind="${4:-secret}" encoded value
  SECRET_VALUE=""
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
  SECRET_VALUE="$value"
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
APP_USER="$SECRET_VALUE"
check_secret_key postgres-immunity-secret password 16
if [[ "$USES_OWNER_SECRET" -eq 1 ]]; then
  check_secret_key "$OWNER_SECRET" username 1 name
  if [[ -n "$APP_USER" && "$SECRET_VALUE" == "$APP_USER" ]]; then
    warn "Secrets postgres-immunity-secret and $OWNER_SECRET name the same database user: the service must connect as a role that does not own the tables"
    SECRET_PROBLEMS=1
  fi
  check_secret_key "$OWNER_SECRET" password 16
fi
check_secret_key hitl-api-keys jwt-secret 32
check_secret_key hitl-api-keys internal-api-key 24
if [[ "$USES_CHECKPOINT_KEY" -eq 1 ]]; then
  check_secret_key hitl-api-keys audit-checkpoint-key 32
fi
SECRET_VALUE="" APP_USER=""
if [[ "$SECRET_PROBLEMS" -ne 0 ]]; then
  if [[ "$DRY_RUN" -eq 1 && "$USES_EXTERNAL_SECRETS" -eq 1 ]]; then
    warn "dry run: the Secrets above are not ready yet (the External Secrets Operator creates them on a real deploy)"
  else
    secret_help
    die "refusing to deploy: fix the Secrets above"
  fi
fi

# --------------------------------------------------------------------------- monitoring CRDs
if ! "$KUBECTL" get crd servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com >/dev/null 2>&1; then
  die "the prometheus-operator CRDs (ServiceMonitor, PrometheusRule) are not installed: install kube-prometheus-stack, or remove components/monitoring from $OVERLAY/kustomization.yaml"
fi

# --------------------------------------------------------------------------- apply
if [[ "$DRY_RUN" -eq 1 ]]; then
  info "dry run: kubectl apply --dry-run=server"
  "$KUBECTL" apply --dry-run=server -f "$WORK/manifests.yaml"
  info "dry run done, nothing changed"
  exit 0
fi

# A Job's pod template is immutable and a failed Job does not run again: a failed run of this very release
# (same name) is deleted, so that applying creates it anew (after the cause was fixed). A completed one is kept.
job_conditions() {
  "$KUBECTL" get job "$MIGRATION_JOB" -n "$NAMESPACE" \
    -o jsonpath='{range .status.conditions[*]}{.type}={.status}{" "}{end}' 2>/dev/null || true
}
if [[ -n "$MIGRATION_JOB" && " $(job_conditions) " == *" Failed=True "* ]]; then
  info "deleting the failed migration Job $MIGRATION_JOB so that it runs again"
  "$KUBECTL" delete job "$MIGRATION_JOB" -n "$NAMESPACE" --wait=true
fi

info "applying"
"$KUBECTL" apply -f "$WORK/manifests.yaml"

if [[ -n "$MIGRATION_JOB" ]]; then
  info "waiting for the migration Job $MIGRATION_JOB (timeout ${MIGRATION_TIMEOUT}s)"
  waited=0
  while :; do
    conditions=" $(job_conditions) "
    [[ "$conditions" == *" Complete=True "* ]] && break
    if [[ "$conditions" == *" Failed=True "* || "$waited" -ge "$MIGRATION_TIMEOUT" ]]; then
      cat >&2 <<FAIL

The migration Job did not complete. The service keeps running the previous release (its new pods stay
unready until the schema is at head). Look at:
  kubectl logs -n $NAMESPACE job/$MIGRATION_JOB
  kubectl describe job $MIGRATION_JOB -n $NAMESPACE
Fix the cause (owner credentials, CREATEROLE, the database) and run deploy.sh again: it retries the Job.
FAIL
      die "migration Job $MIGRATION_JOB failed or timed out"
    fi
    sleep "$MIGRATION_POLL"
    waited=$((waited + MIGRATION_POLL))
  done
  info "migrations done"
fi

info "waiting for the rollout (timeout $ROLLOUT_TIMEOUT)"
if ! "$KUBECTL" rollout status "deployment/$DEPLOYMENT" -n "$NAMESPACE" --timeout="$ROLLOUT_TIMEOUT"; then
  cat >&2 <<FAIL

The rollout did not finish. Look at:
  kubectl get pods -n $NAMESPACE -l app=$APP
  kubectl logs -n $NAMESPACE job/$MIGRATION_JOB                      # migrations (-c db-migrate)
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
