#!/usr/bin/env bash
# Builds the pinned test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) and helm from source through the Go module proxy.
# Binaries are cached by version outside the clone; a component already present is skipped.
#
#   hack/build-control-plane.sh            # build what is missing, print the bin dir
#   GREENLIGHT_TOOLS_DIR=/path hack/...    # cache somewhere else
#
# Needs Go (>= 1.24) and a reachable Go module proxy (GOPROXY).
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"

TOOLS_DIR="${GREENLIGHT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/greenlight/tools}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[build-control-plane] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed. Install Go >= 1.24 (https://go.dev/doc/install) and make sure the Go module proxy (GOPROXY=$(printf %s "${GOPROXY:-https://proxy.golang.org}")) is reachable."

bin_for() { # component version -> cached path
  printf '%s/%s-%s/%s' "$TOOLS_DIR" "$1" "$2" "$1"
}

# build_module NAME VERSION MODULE PACKAGE [LDFLAGS] [REPLACES_FROM_K8S]
build_module() {
  local name=$1 version=$2 module=$3 package=$4 ldflags=${5:-} k8s_replaces=${6:-}
  local out; out=$(bin_for "$name" "$version")
  if [[ -x $out ]]; then
    log "$name $version: cached at $out"
    return
  fi
  log "$name $version: building $package (this can take many minutes on a small machine)"
  local start=$SECONDS work build_log
  work=$(mktemp -d)
  build_log="$TOOLS_DIR/build-$name-$version.log"
  # go's output (hundreds of "downloading" lines) goes to a log; its tail is shown on failure.
  # (set -e does not apply inside an `if` condition, hence the explicit `|| exit 1`.)
  if ! (
    cd "$work" || exit 1
    go mod init greenlight.dev/build-"$name" || exit 1
    if [[ -n $k8s_replaces ]]; then
      printf '%s\n' "$k8s_replaces" >>go.mod || exit 1
    fi
    go get "$module@$version" || exit 1
    mkdir -p "$(dirname "$out")" || exit 1
    go build -trimpath -tags selinux,notest -ldflags "-s -w $ldflags" -o "$out.tmp" "$package" || exit 1
    mv "$out.tmp" "$out"
  ) >"$build_log" 2>&1; then
    rm -rf "$work"
    tail -n 25 "$build_log" >&2
    local hint=""
    [[ $module == k8s.io/kubernetes ]] &&
      hint=" If this Kubernetes minor does not compile with this Go, try the next minor (KUBERNETES_VERSION=v1.<minor+1>.<patch>)."
    die "building $name $version failed (full log: $build_log). Check that the Go module proxy is reachable (GOPROXY=$(go env GOPROXY)) and that Go $(go env GOVERSION) can build $module@$version.$hint"
  fi
  rm -rf "$work"
  log "$name $version: built in $((SECONDS - start)) s (log: $build_log)"
}

k8s_replace_block() {
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION's go.mod through the module proxy"
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  echo "replace ("
  grep -Eo 'k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$gomod" |
    awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
}

k8s_ldflags() {
  local v=$KUBERNETES_VERSION minor
  minor=$(cut -d. -f2 <<<"$v")
  local f=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  printf '%s' "$f"
}

main() {
  local total=$SECONDS
  mkdir -p "$TOOLS_DIR"
  build_module etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3
  build_module kwok "$KWOK_VERSION" sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok
  build_module helm "$HELM_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  local need_k8s=0 c
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [[ -x $(bin_for "$c" "$KUBERNETES_VERSION") ]] || need_k8s=1
  done
  if ((need_k8s)); then
    local replaces ldflags
    replaces=$(k8s_replace_block)
    ldflags=$(k8s_ldflags)
    for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
      build_module "$c" "$KUBERNETES_VERSION" k8s.io/kubernetes "k8s.io/kubernetes/cmd/$c" "$ldflags" "$replaces"
    done
  else
    for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
      log "$c $KUBERNETES_VERSION: cached at $(bin_for "$c" "$KUBERNETES_VERSION")"
    done
  fi
  # One directory of symlinks, named plainly, for PATH and the test fixtures.
  local bin="$TOOLS_DIR/bin-k8s-$KUBERNETES_VERSION"
  mkdir -p "$bin"
  ln -sf "$(bin_for etcd "$ETCD_VERSION")" "$bin/etcd"
  ln -sf "$(bin_for kwok "$KWOK_VERSION")" "$bin/kwok"
  ln -sf "$(bin_for helm "$HELM_VERSION")" "$bin/helm"
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    ln -sf "$(bin_for "$c" "$KUBERNETES_VERSION")" "$bin/$c"
  done
  log "all components ready in $((SECONDS - total)) s"
  echo "$bin"
}

main "$@"
