#!/usr/bin/env bash
# Build the Kubernetes control plane the cluster tests run (etcd, kube-apiserver,
# kube-controller-manager) plus kubectl and helm, from source through the Go module proxy.
# Nothing to do when the binaries of the pinned versions are already in the cache.
# Usage: scripts/controlplane.sh [--bin-dir]   (--bin-dir: only print where they go)
set -euo pipefail
cd "$(dirname "$0")/.."

MODS=tests/cluster/bins  # go.mod files written by tests/cluster/bins/gen_gomod.py
HELM_VERSION=v3.22.0

pinned() { awk -v m="$2" '$1 == m { print $2 }' "$MODS/$1/go.mod"; }
K8S_VERSION=$(pinned kubernetes k8s.io/kubernetes)
ETCD_VERSION=$(pinned etcd go.etcd.io/etcd/server/v3)
[ -n "$K8S_VERSION" ] && [ -n "$ETCD_VERSION" ] || { echo "controlplane: no pinned version in $MODS/*/go.mod" >&2; exit 1; }
TAG="k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
BIN_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/concierge/controlplane/$TAG/bin"

if [ "${1:-}" = "--bin-dir" ]; then echo "$BIN_DIR"; exit 0; fi

BINARIES=(etcd kube-apiserver kube-controller-manager kubectl helm)
missing=()
for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "controlplane: binaries in $BIN_DIR" >&2
  echo "$BIN_DIR"
  exit 0
fi

GO=$(command -v go || true)
[ -n "$GO" ] || [ ! -x /usr/local/go/bin/go ] || GO=/usr/local/go/bin/go
[ -n "$GO" ] || { echo "controlplane: Go is required to build ${missing[*]} (https://go.dev/doc/install; no 'go' on PATH nor /usr/local/go/bin/go)" >&2; exit 1; }

# Static binaries: the tests run them on any Linux; the versions stamped in are what
# `kubectl version` reports and what Helm checks a chart's kubeVersion against.
export CGO_ENABLED=0
k8s_minor=${K8S_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
done

mkdir -p "$BIN_DIR"
timed() {  # timed <binary> <command...>: build into a temporary name, then move into place
  local name=$1 start=$SECONDS; shift
  echo "controlplane: building $name" >&2
  "$@"
  mv -f "$BIN_DIR/.$name.tmp" "$BIN_DIR/$name"
  echo "controlplane: built $name in $((SECONDS - start))s" >&2
}
for b in "${missing[@]}"; do
  case $b in
    etcd) timed etcd bash -c "cd $MODS/etcd && '$GO' build -trimpath -ldflags='-s -w' -o '$BIN_DIR/.etcd.tmp' go.etcd.io/etcd/server/v3" ;;
    kube-apiserver | kube-controller-manager | kubectl)
      timed "$b" bash -c "cd $MODS/kubernetes && '$GO' build -trimpath -ldflags='$k8s_ldflags' -o '$BIN_DIR/.$b.tmp' k8s.io/kubernetes/cmd/$b" ;;
    helm)  # Helm's go.mod has no replaces, so a plain `go install` works
      timed helm bash -c "tmp=\$(mktemp -d) && GOBIN=\$tmp '$GO' install -trimpath -ldflags='-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION' helm.sh/helm/v3/cmd/helm@$HELM_VERSION && mv \$tmp/helm '$BIN_DIR/.helm.tmp' && rmdir \$tmp" ;;
  esac
done
echo "controlplane: binaries in $BIN_DIR" >&2
echo "$BIN_DIR"
