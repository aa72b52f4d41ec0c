#!/usr/bin/env bash
# Makes sure Prometheus and promtool are installed (Debian's `prometheus` package), as the e2e
# suite runs a real Prometheus against the webhook and reconciler. Prints the directory that
# holds both. Installs only what is missing, and only as root (CI runs `make test` as root);
# otherwise it says what to run.
#
#   hack/install-prometheus.sh        # install when missing, print the bin dir
set -euo pipefail

log() { printf '[install-prometheus] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

have() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

if ! have; then
  command -v apt-get >/dev/null 2>&1 ||
    die "prometheus and promtool are not on PATH and this is not a Debian-like system; install Prometheus >= 2.42 (https://prometheus.io/download/) and put both on PATH."
  if [[ $(id -u) -ne 0 ]]; then
    die "prometheus and promtool are not installed; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus"
  fi
  log "installing Debian's prometheus package (the service is not started: the tests run their own)"
  export DEBIAN_FRONTEND=noninteractive
  # The index may be missing or old on a fresh machine: update only when the package is unknown.
  if ! apt-cache show prometheus >/dev/null 2>&1; then
    apt-get update >&2 || die "apt-get update failed"
  fi
  # policy-rc.d 101 keeps the package's postinst from starting the system service.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  status=0
  apt-get install -y --no-install-recommends prometheus >&2 || status=$?
  [[ $created_policy -eq 1 ]] && rm -f "$policy"
  [[ $status -eq 0 ]] || die "apt-get install prometheus failed (exit $status)"
  have || die "the prometheus package installed, but prometheus or promtool is still not on PATH"
fi
log "$(prometheus --version 2>&1 | head -n 1)"
dirname "$(command -v promtool)"
