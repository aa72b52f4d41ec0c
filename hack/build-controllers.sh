#!/usr/bin/env bash
# Builds the pinned workload controllers that greenlight's e2e tests run next to the test
# control plane (see hack/build-control-plane.sh) from source through the Go module proxy, and
# extracts their CRDs from the same module zips:
#
#   jobset            sigs.k8s.io/jobset              (manager: module root, main.go)
#   kueue             sigs.k8s.io/kueue               (manager: cmd/kueue)
#   training-operator github.com/kubeflow/training-operator (manager: cmd/training-operator.v1)
#   kuberay           github.com/ray-project/kuberay/ray-operator (manager: module root, main.go)
#
# Binaries and CRDs are cached by version outside the clone, under
#   $TOOLS_DIR/<name>-<version>/<name>        the manager binary
#   $TOOLS_DIR/<name>-<version>/crds/*.yaml   its CRDs (plain bases, no conversion-webhook patch)
#   $TOOLS_DIR/<name>-<version>/webhooks.yaml its upstream webhook configurations
# and a component already present is skipped. The script prints one directory on stdout:
#   <dir>/<name>         symlink to each built binary
#   <dir>/crds/<name>/   symlink to each component's CRD directory
#   <dir>/webhooks/<name>.yaml  symlink to its upstream webhook configurations (Service-based)
#
#   hack/build-controllers.sh                               # build what is missing, print the dir
#   GREENLIGHT_CONTROLLERS="jobset kueue" hack/...          # binaries to build (default: all four)
#   GREENLIGHT_TOOLS_DIR=/path hack/...                     # cache somewhere else
#
# CRDs are extracted for all four components whatever GREENLIGHT_CONTROLLERS says (that only
# downloads the module zip), so tests can install a component's CRDs without its controller.
# Building needs Go (>= 1.25, kueue v0.17's go directive) and a reachable Go module proxy
# (GOPROXY); when everything asked for is cached it needs neither, prints the dir and exits 0.
set -euo pipefail

JOBSET_VERSION="${JOBSET_VERSION:-v0.10.1}"
KUEUE_VERSION="${KUEUE_VERSION:-v0.17.0}"
TRAINING_OPERATOR_VERSION="${TRAINING_OPERATOR_VERSION:-v1.8.1}"
KUBERAY_VERSION="${KUBERAY_VERSION:-v1.5.0}"
ALL_CONTROLLERS="jobset kueue training-operator kuberay"
CONTROLLERS="${GREENLIGHT_CONTROLLERS:-$ALL_CONTROLLERS}"

TOOLS_DIR="${GREENLIGHT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/greenlight/tools}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[build-controllers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Go is needed only for what is not cached yet: a machine with a full cache needs none.
need_go() {
  command -v go >/dev/null 2>&1 || die "Go is not installed, and $1 is not cached under $TOOLS_DIR. Install Go >= 1.25 (https://go.dev/doc/install) and make sure the Go module proxy (GOPROXY=$(printf %s "${GOPROXY:-https://proxy.golang.org}")) is reachable."
}

# component -> "version module package crd-dir-in-module ldflags"
version_of() {
  case $1 in
    jobset) echo "$JOBSET_VERSION" ;;
    kueue) echo "$KUEUE_VERSION" ;;
    training-operator) echo "$TRAINING_OPERATOR_VERSION" ;;
    kuberay) echo "$KUBERAY_VERSION" ;;
    *) die "unknown controller '$1' (known: $ALL_CONTROLLERS)" ;;
  esac
}
module_of() {
  case $1 in
    jobset) echo sigs.k8s.io/jobset ;;
    kueue) echo sigs.k8s.io/kueue ;;
    training-operator) echo github.com/kubeflow/training-operator ;;
    kuberay) echo github.com/ray-project/kuberay/ray-operator ;;
  esac
}
package_of() {
  case $1 in
    jobset) echo sigs.k8s.io/jobset ;;
    kueue) echo sigs.k8s.io/kueue/cmd/kueue ;;
    training-operator) echo github.com/kubeflow/training-operator/cmd/training-operator.v1 ;;
    kuberay) echo github.com/ray-project/kuberay/ray-operator ;;
  esac
}
crd_dir_of() {
  case $1 in
    jobset | kueue) echo config/components/crd/bases ;;
    training-operator) echo manifests/base/crds ;;
    kuberay) echo config/crd/bases ;;
  esac
}
webhook_manifest_of() { # upstream webhook configurations (Service-based; see the notes)
  case $1 in
    jobset | kueue) echo config/components/webhook/manifests.yaml ;;
    training-operator) echo manifests/base/webhook/manifests.yaml ;;
    kuberay) echo config/webhook/manifests.yaml ;;
  esac
}
ldflags_of() {
  local v; v=$(version_of "$1")
  case $1 in
    jobset) echo "-X sigs.k8s.io/jobset/pkg/version.GitVersion=$v" ;;
    kueue) echo "-X sigs.k8s.io/kueue/pkg/version.GitVersion=$v" ;;
    *) echo "" ;;
  esac
}

dir_for() { printf '%s/%s-%s' "$TOOLS_DIR" "$1" "$(version_of "$1")"; }
bin_for() { printf '%s/%s' "$(dir_for "$1")" "$1"; }

# module_dir MODULE VERSION -> the unpacked module in the module cache (downloads it if needed)
module_dir() {
  local json dir
  need_go "$1@$2"
  json=$(go mod download -json "$1@$2" 2>&1) || true
  dir=$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' <<<"$json")
  if [[ -z $dir || ! -d $dir ]]; then
    printf '%s\n' "$json" | tail -n 10 >&2
    die "could not download $1@$2 through the Go module proxy (GOPROXY=$(go env GOPROXY))"
  fi
  printf '%s' "$dir"
}

# Refuses early, with a clear message, a module whose go directive this Go cannot build
# (GOTOOLCHAIN=local: no toolchain is downloaded).
check_go_directive() {
  local name=$1 moddir=$2 want have
  want=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$moddir/go.mod" | head -n 1)
  have=$(go env GOVERSION); have=${have#go}
  [[ -z $want ]] && return 0
  if [[ $(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1) != "$want" ]]; then
    die "$name $(version_of "$name") needs Go >= $want (its go.mod says 'go $want'), this is Go $have. Install a newer Go; this script does not download toolchains (GOTOOLCHAIN=local)."
  fi
}

# Copies the CRDs (crds/*.yaml) and the upstream webhook configurations (webhooks.yaml, as
# kubebuilder generates them: clientConfig.service, no namespace/object selectors) out of the
# module zip into the cache.
extract_manifests() {
  local name=$1 version moddir crds tmp src n f dir
  version=$(version_of "$name")
  dir=$(dir_for "$name")
  crds="$dir/crds"
  if [[ -d $crds && -f $dir/webhooks.yaml ]]; then
    log "$name $version: CRDs cached at $crds"
    return
  fi
  moddir=$(module_dir "$(module_of "$name")" "$version")
  src="$moddir/$(crd_dir_of "$name")"
  [[ -d $src ]] || die "$name $version: no CRD directory $(crd_dir_of "$name") in $moddir"
  mkdir -p "$dir"
  if [[ ! -d $crds ]]; then
    tmp=$(mktemp -d "$dir/.crds.XXXXXX")
    n=0
    for f in "$src"/*.yaml; do
      [[ $(basename "$f") == kustomization*.yaml ]] && continue
      cp "$f" "$tmp/" && n=$((n + 1))
    done
    ((n > 0)) || die "$name $version: no CRD manifests in $src"
    chmod -R u+w,a+r "$tmp" # files from the module cache are read-only
    chmod 755 "$tmp"
    mv "$tmp" "$crds"
    log "$name $version: $n CRDs copied to $crds"
  fi
  f="$moddir/$(webhook_manifest_of "$name")"
  [[ -f $f ]] || die "$name $version: no webhook manifests $(webhook_manifest_of "$name") in $moddir"
  cp "$f" "$dir/.webhooks.yaml.tmp" && chmod 644 "$dir/.webhooks.yaml.tmp"
  mv "$dir/.webhooks.yaml.tmp" "$dir/webhooks.yaml"
}

# Kueue reads its metrics serving certificate from the hard-coded /etc/kueue/metrics/certs when
# internalCertManagement is off (the only mode in which its webhooks can be called by URL on
# 127.0.0.1), and exits when the files are missing. This one-line patch lets
# $KUEUE_METRICS_CERT_DIR point elsewhere (unset: upstream behaviour), so tests need no root.
patch_kueue() {
  local f=cmd/kueue/main.go
  grep -q 'metricsCertPath := "/etc/kueue/metrics/certs"' "$f" || {
    echo "patch_kueue: the metrics cert path line is not in $f any more; update hack/build-controllers.sh"
    return 1
  }
  sed -i 's|metricsCertPath := "/etc/kueue/metrics/certs"|metricsCertPath := os.Getenv("KUEUE_METRICS_CERT_DIR"); if metricsCertPath == "" { metricsCertPath = "/etc/kueue/metrics/certs" }|' "$f"
}

build_controller() {
  local name=$1 version module package ldflags out moddir
  version=$(version_of "$name")
  module=$(module_of "$name")
  package=$(package_of "$name")
  ldflags=$(ldflags_of "$name")
  out=$(bin_for "$name")
  if [[ -x $out ]]; then
    log "$name $version: cached at $out"
    return
  fi
  moddir=$(module_dir "$module" "$version")
  check_go_directive "$name" "$moddir"
  log "$name $version: building $package (this can take many minutes on a small machine)"
  local start=$SECONDS work build_log
  work=$(mktemp -d)
  mkdir -p "$(dirname "$out")"
  build_log="$TOOLS_DIR/build-$name-$version.log"
  # go's output goes to a log; its tail is shown on failure.
  # (set -e does not apply inside an `if` condition, hence the explicit `|| exit 1`.)
  if ! (
    if declare -F "patch_$name" >/dev/null; then
      # Patched: build inside a writable copy of the module (GOMODCACHE files cannot be overlaid).
      cp -r "$moddir" "$work/src" && chmod -R u+w "$work/src" || exit 1
      cd "$work/src" || exit 1
      "patch_$name" || exit 1
      local rel=${package#"$module"}
      go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "./${rel#/}" || exit 1
    else
      # The controller modules carry no replace directives, so a throwaway module requiring the
      # controller resolves exactly the controller's own build list (MVS over its go.mod).
      cd "$work" || exit 1
      go mod init greenlight.dev/build-"$name" || exit 1
      go get "$module@$version" || exit 1
      go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$package" || exit 1
    fi
    mv "$out.tmp" "$out"
  ) >"$build_log" 2>&1; then
    rm -rf "$work" "$out.tmp"
    tail -n 25 "$build_log" >&2
    die "building $name $version failed (full log: $build_log). Check that the Go module proxy is reachable (GOPROXY=$(go env GOPROXY)) and that Go $(go env GOVERSION) can build $module@$version."
  fi
  rm -rf "$work"
  log "$name $version: built in $((SECONDS - start)) s, $(du -m "$out" | cut -f1) MB (log: $build_log)"
}

main() {
  local total=$SECONDS c
  mkdir -p "$TOOLS_DIR"
  for c in $CONTROLLERS; do version_of "$c" >/dev/null; done # fail early on a typo
  for c in $ALL_CONTROLLERS; do extract_manifests "$c"; done
  for c in $CONTROLLERS; do build_controller "$c"; done
  # One directory of symlinks, named plainly, for the test fixtures.
  local out="$TOOLS_DIR/controllers"
  mkdir -p "$out/crds" "$out/webhooks"
  for c in $ALL_CONTROLLERS; do
    ln -sfn "$(dir_for "$c")/crds" "$out/crds/$c"
    ln -sfn "$(dir_for "$c")/webhooks.yaml" "$out/webhooks/$c.yaml"
    if [[ -x $(bin_for "$c") ]]; then
      ln -sfn "$(bin_for "$c")" "$out/$c"
    else
      rm -f "$out/$c"
    fi
  done
  log "controllers ready in $((SECONDS - total)) s"
  echo "$out"
}

main "$@"
