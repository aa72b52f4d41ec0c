#!/usr/bin/env bash
# Build greenlight's image from the Dockerfile with podman (daemonless: no Docker engine), and
# print the image id on stdout. Everything else goes to stderr. Idempotent: reruns reuse the
# cached base and podman's layer cache.
#
#   hack/build-image.sh           build, print the image id
#   hack/build-image.sh --smoke   build, then check the image: `greenlight serve --help`, and
#                                 `greenlight serve` on a read-only root answering /healthz over
#                                 TLS on 127.0.0.1; print its size and Python packages
#
# The base: PYTHON_IMAGE (the Dockerfile's default, python:3.12-slim-bookworm) when it is present
# or can be pulled. Otherwise (no registry reachable) a Debian-python base is assembled once with
# debootstrap from the Debian release and mirror this machine's apt uses, and cached as
# $LOCAL_BASE: minbase + python3 + python3-venv + ca-certificates, with a venv at /opt/venv on
# PATH so that `pip` behaves as in the official python images. Needs root and debootstrap.
#
# pip inside the build reaches the package index the way pip on this machine does: the host's
# `pip config list` (files and PIP_* variables: index-url, proxy, cert, timeouts) is written to a
# temporary pip.conf and passed, with the CA bundle it names, as build secrets (never stored in
# a layer). No index is named here.
#
# Environment:
#   IMAGE               tag to build (localhost/greenlight:dev)
#   PYTHON_IMAGE        preferred base (python:3.12-slim-bookworm)
#   LOCAL_BASE          tag of the assembled fallback base (localhost/greenlight-base:<suite>-python3)
#   DEBIAN_SUITE        release for the fallback base (this machine's VERSION_CODENAME)
#   DEBIAN_MIRROR       mirror for the fallback base (the first one apt's sources name)
#   PODMAN_OPTS         global podman options, e.g. "--storage-driver vfs" where overlay fails
#   BUILD_OPTS          extra `podman build` options, e.g. "--isolation chroot" or "--no-cache"
#   RUN_OPTS            extra `podman run` options for the checks, e.g. "--ulimit nofile=1024:1024"
#                       (unset: probed; see "how containers run here")
#   HOST_PIP            the pip whose configuration the build uses ("python3 -m pip")
#   PULL_TIMEOUT        seconds to try pulling PYTHON_IMAGE (60)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-localhost/greenlight:dev}"
PYTHON_IMAGE="${PYTHON_IMAGE:-python:3.12-slim-bookworm}"
HOST_PIP="${HOST_PIP:-python3 -m pip}"
PULL_TIMEOUT="${PULL_TIMEOUT:-60}"
# shellcheck disable=SC2206  # word splitting of the option strings is the point
PODMAN=(podman ${PODMAN_OPTS:-})
# shellcheck disable=SC2206
EXTRA_BUILD_OPTS=(${BUILD_OPTS:-})
SMOKE=0
case "${1:-}" in
  --smoke) SMOKE=1 ;;
  "") ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

log() { echo "build-image: $*" >&2; }
command -v podman >/dev/null || { log "podman missing: apt-get install -y podman"; exit 1; }

WORK="$(mktemp -d /var/tmp/greenlight-image.XXXXXX)"
CONTAINER=""
cleanup() {
  if [[ -n "$CONTAINER" ]]; then
    timeout 30 "${RUN_PODMAN[@]}" rm -f -t 5 "$CONTAINER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the base -------------------------------------------------------------------------------

debian_suite() {
  if [[ -n "${DEBIAN_SUITE:-}" ]]; then echo "$DEBIAN_SUITE"; return; fi
  # shellcheck disable=SC1091
  (. /etc/os-release && [[ "${ID:-}" == debian ]] && echo "$VERSION_CODENAME")
}

debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local suite="$1" file
  # deb822 sources (bookworm's default): the URIs of the stanza whose Suites list the release.
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$file" ]] || continue
    awk -v suite="$suite" '
      /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok) print uri }
    ' "$file" | head -n1
  done | head -n1 | grep . && return
  # One-line sources: deb [options] URI SUITE COMPONENTS...
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -e 's/\[[^]]*\]//' \
    | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }'
}

assemble_local_base() {
  local tag="$1" suite="$2" mirror="$3" root="$WORK/rootfs"
  command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install -y debootstrap"; exit 1; }
  [[ "$(id -u)" == 0 ]] || { log "assembling the base needs root (debootstrap, chroot)"; exit 1; }
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/greenlight/debootstrap-$suite"
  mkdir -p "$cache"
  log "assembling $tag: debootstrap --variant=minbase $suite from $mirror"
  local began=$SECONDS
  timeout 1800 debootstrap --variant=minbase --cache-dir="$cache" \
    --include=python3,python3-venv,ca-certificates "$suite" "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
  # Like the official images: pip in a prefix on PATH that it may install into (Debian's own
  # python refuses, PEP 668), no setuptools (builds fetch their own, isolated).
  chroot "$root" /usr/bin/python3 -m venv /opt/venv
  chroot "$root" /opt/venv/bin/python -m pip uninstall --yes --quiet setuptools
  # Slim: no package caches or lists, no docs (copyrights kept), man pages or translations.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$root" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
  tar --numeric-owner -C "$root" -c . | "${PODMAN[@]}" import --quiet \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase $suite + python3, python3-venv, ca-certificates; venv /opt/venv" \
    - "$tag" >/dev/null
  rm -rf "$root"
  log "assembled $tag in $(( SECONDS - began ))s"
}

pick_base() {
  if "${PODMAN[@]}" image exists "$PYTHON_IMAGE"; then echo "$PYTHON_IMAGE"; return; fi
  log "pulling $PYTHON_IMAGE (at most ${PULL_TIMEOUT}s)"
  if timeout "$PULL_TIMEOUT" "${PODMAN[@]}" pull --quiet "$PYTHON_IMAGE" >/dev/null 2>"$WORK/pull.log"; then
    echo "$PYTHON_IMAGE"; return
  fi
  log "cannot pull $PYTHON_IMAGE: $(tail -n1 "$WORK/pull.log")"
  local suite mirror tag
  suite="$(debian_suite)" || true
  [[ -n "$suite" ]] || { log "not Debian: set DEBIAN_SUITE (and DEBIAN_MIRROR) for the local base"; exit 1; }
  tag="${LOCAL_BASE:-localhost/greenlight-base:$suite-python3}"
  if "${PODMAN[@]}" image exists "$tag"; then
    log "using the cached local base $tag"
  else
    mirror="$(debian_mirror "$suite")" || true
    [[ -n "$mirror" ]] || { log "no apt mirror for $suite found: set DEBIAN_MIRROR"; exit 1; }
    assemble_local_base "$tag" "$suite" "$mirror"
  fi
  echo "$tag"
}

# --- pip's configuration, as build secrets ----------------------------------------------------

pip_secrets() {
  # Prints podman build options: --secret id=pipconf,... and, when the config names a CA
  # bundle, --secret id=pipcert,... (the Dockerfile mounts them at /etc/pip.conf and
  # /run/secrets/pipcert).
  local listing
  # shellcheck disable=SC2086  # HOST_PIP is a command line
  listing="$($HOST_PIP config list 2>/dev/null || true)"
  PIP_LISTING="$listing" python3 - "$WORK" <<'PY'
import ast, configparser, os, sys
from pathlib import Path

work = Path(sys.argv[1])
# Options that say how to reach the index; local-path options (find-links, no-index) stay out.
keep = {"index-url", "extra-index-url", "trusted-host", "proxy", "timeout", "default-timeout",
        "retries", "cert", "client-cert"}
conf = configparser.ConfigParser()
conf["global"] = {}
cert = None
for line in os.environ["PIP_LISTING"].splitlines():
    key, sep, value = line.partition("=")
    if not sep:
        continue
    section, _, option = key.rpartition(".")
    if option not in keep:
        continue
    section = "global" if section in (":env:", "global", "site", "user") else section
    value = ast.literal_eval(value)
    if option == "cert":
        if not Path(value).is_file():
            continue
        cert, value = value, "/run/secrets/pipcert"
    if option == "client-cert":  # a client certificate cannot be passed on: say so
        print(f"build-image: note: pip's client-cert ({value}) is not passed to the build",
              file=sys.stderr)
        continue
    conf.setdefault(section, {})
    conf[section][option] = value.replace("\n", "\n  ")
with open(work / "pip.conf", "w") as f:
    conf.write(f)
print(f"--secret=id=pipconf,src={work / 'pip.conf'}")
if cert:
    print(f"--secret=id=pipcert,src={cert}")
PY
}

# --- build ----------------------------------------------------------------------------------

BASE="$(pick_base)"

# --- how containers run here ------------------------------------------------------------------
# Some sandboxes (hybrid cgroups, no CAP_SYS_RESOURCE) defeat podman's defaults: crun refuses the
# cgroup layout and podman's default rlimits cannot be set. Then: runc, rlimits at or below
# this machine's, and chroot isolation for the build's RUN steps. Set RUN_OPTS (and
# BUILD_OPTS) to skip the probe.
RUN_PODMAN=("${PODMAN[@]}")
# shellcheck disable=SC2206
RUN_ARGS=(${RUN_OPTS:-})
probe() {
  timeout 120 "${RUN_PODMAN[@]}" run --rm --network none "${RUN_ARGS[@]}" --entrypoint true \
    "$BASE" >/dev/null 2>"$WORK/probe.log"
}
if [[ -z "${RUN_OPTS+set}" ]] && ! probe; then
  log "podman run fails here ($(tail -n1 "$WORK/probe.log")): trying runc, lower rlimits"
  RUN_PODMAN+=(--runtime runc)
  RUN_ARGS=(--ulimit "nofile=1024:1024" --ulimit "nproc=4096:4096")
  if [[ -z "${BUILD_OPTS+set}" ]]; then EXTRA_BUILD_OPTS=(--isolation chroot); fi
  probe || { cat "$WORK/probe.log" >&2; log "podman cannot run containers here: set PODMAN_OPTS, RUN_OPTS, BUILD_OPTS"; exit 1; }
  log "running with: ${RUN_PODMAN[*]:1} ${RUN_ARGS[*]}; building with: ${EXTRA_BUILD_OPTS[*]}"
fi
mapfile -t SECRETS < <(pip_secrets)
context_digest() {
  # Everything the build reads, and more (webhook/devtools/ too): a superset is only an extra
  # rebuild, a subset could leave a stale install (see ARG CONTEXT_DIGEST in the Dockerfile).
  (cd "$ROOT" && find Dockerfile .dockerignore pyproject.toml README.md webhook \
      -name __pycache__ -prune -o -type f ! -name '*.pyc' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

build() {
  # --network host: the RUN steps reach the index as this machine does (same resolver, proxy).
  "${PODMAN[@]}" build --layers --network host --pull=never \
    --build-arg "PYTHON_IMAGE=$BASE" --build-arg "CONTEXT_DIGEST=$1" \
    "${SECRETS[@]}" "${EXTRA_BUILD_OPTS[@]}" \
    --iidfile "$WORK/iid" -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" 2>&1 | tee "$WORK/build.log" >&2
}

DIGEST="$(context_digest)"
log "building $IMAGE on $BASE (context $DIGEST)"
start=$(date +%s)
if ! build "$DIGEST"; then
  # A cached builder stage with an uncached install (an earlier failed install, a pruned
  # cache): buildah 1.28 cannot mount the cached stage. Rerun both stages once.
  grep -q "on host to bind mount into container" "$WORK/build.log" || exit 1
  log "the cached builder stage could not be mounted: rebuilding both stages"
  build "$DIGEST-$(date +%s)"
fi
ID="$(cat "$WORK/iid")"
log "built $IMAGE ($ID) in $(( $(date +%s) - start ))s"

# --- smoke checks ---------------------------------------------------------------------------

smoke() {
  local size port out
  size="$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$ID")"
  log "image size: $(( size / 1000 / 1000 )) MB ($size bytes)"
  log "Python packages in the image (pip is not in it; importlib.metadata lists them):"
  timeout 60 "${RUN_PODMAN[@]}" run --rm --network none "${RUN_ARGS[@]}" --read-only --entrypoint python3 "$ID" -c \
    'import importlib.metadata as m
for n, v in sorted({(d.metadata["Name"], d.version) for d in m.distributions()}, key=lambda p: p[0].lower()):
    print(f"{n:<28} {v}")' >&2

  log "greenlight serve --help"
  out="$(timeout 60 "${RUN_PODMAN[@]}" run --rm --network none "${RUN_ARGS[@]}" --read-only --tmpfs /tmp \
    "$ID" serve --help)"
  grep -q -- "--cert-dir" <<<"$out" || { echo "$out" >&2; log "FAIL: serve --help"; exit 1; }

  # A free loopback port; the container shares the host's network but binds 127.0.0.1 only.
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  log "greenlight serve on 127.0.0.1:$port (read-only root, tmpfs /tmp and /certs)"
  CONTAINER="$(timeout 60 "${RUN_PODMAN[@]}" run -d --network host "${RUN_ARGS[@]}" --read-only \
    --tmpfs /tmp:rw,mode=1777 --tmpfs /certs:rw,mode=0700,U \
    -e GREENLIGHT_SERVER__HOST=127.0.0.1 -e GREENLIGHT_SERVER__PORT="$port" "$ID")"
  local deadline=$(( $(date +%s) + 60 )) body=""
  until body="$(curl -fsSk --max-time 2 "https://127.0.0.1:$port/healthz" 2>/dev/null)"; do
    if (( $(date +%s) > deadline )) || [[ "$("${RUN_PODMAN[@]}" inspect -f '{{.State.Running}}' "$CONTAINER")" != true ]]; then
      timeout 30 "${RUN_PODMAN[@]}" logs "$CONTAINER" >&2 || true
      log "FAIL: no /healthz on 127.0.0.1:$port"; exit 1
    fi
    sleep 0.5
  done
  log "/healthz over TLS: $body"
  log "served with: $(curl -skv --max-time 2 -o /dev/null "https://127.0.0.1:$port/healthz" 2>&1 \
    | grep -E '^\* +(subject|issuer):' | sed 's/^\* *//' | tr '\n' ' ')"
  timeout 30 "${RUN_PODMAN[@]}" stop -t 10 "$CONTAINER" >/dev/null
  out="$(timeout 30 "${RUN_PODMAN[@]}" logs "$CONTAINER" 2>&1)"
  if grep -E "Read-only file system|Permission denied|Traceback" <<<"$out" >&2; then
    log "FAIL: errors in the server's log"; exit 1
  fi
  grep -q "Application shutdown complete" <<<"$out" || { echo "$out" >&2; log "FAIL: no clean shutdown"; exit 1; }
  log "smoke checks passed"
}

if (( SMOKE )); then smoke; fi
echo "$ID"
