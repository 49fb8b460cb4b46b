#!/usr/bin/env bash
# `make demo`: the local control plane, the operator, and the tiny example study run to the end.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV_BIN=.venv/bin
NAMESPACE=${DEMO_NAMESPACE:-demo}
STUDY_FILE=examples/tiny-study.yaml
TIMEOUT_S=${DEMO_TIMEOUT_SECONDS:-180}

export KUBECONFIG
KUBECONFIG=$(python3 hack/cluster.py up)
echo "kubeconfig: $KUBECONFIG"

# The Study API as `make install-api` installs it: the CRD and the legal-hold admission policy.
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/studies.bentham.io --timeout=60s >/dev/null
kubectl apply --server-side -f manifests/legal-hold.yaml >/dev/null

mkdir -p .cluster/logs
"$VENV_BIN/bentham-operator" --namespace "$NAMESPACE" >.cluster/logs/operator.log 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null; wait $operator 2>/dev/null || true' EXIT
echo "operator: pid $operator, log .cluster/logs/operator.log"

kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
study=$(kubectl create --dry-run=client -o jsonpath='{.metadata.name}' -f "$STUDY_FILE")
kubectl delete study "$study" -n "$NAMESPACE" --ignore-not-found --wait=true >/dev/null
kubectl apply -n "$NAMESPACE" -f "$STUDY_FILE"

deadline=$((SECONDS + TIMEOUT_S))
while :; do
  state=$(kubectl get study "$study" -n "$NAMESPACE" -o jsonpath='{.status.state}')
  kubectl get study "$study" -n "$NAMESPACE" --no-headers 2>/dev/null | sed 's/^/  /'
  case "$state" in
    complete) break ;;
    failed|cancelled) echo "study ended $state"; kubectl describe study "$study" -n "$NAMESPACE"; exit 1 ;;
  esac
  if ((SECONDS > deadline)); then echo "demo: timed out after ${TIMEOUT_S}s" >&2; exit 1; fi
  sleep 1
done

echo
kubectl get studies -n "$NAMESPACE" -o wide
echo
kubectl get study "$study" -n "$NAMESPACE" -o jsonpath='{.status.progress}' | python3 -m json.tool
echo
kubectl get events -n "$NAMESPACE" --field-selector involvedObject.name="$study" --sort-by=.lastTimestamp \
  -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message | head -20
