#!/usr/bin/env bash
# The whole test suite: unit, golden, property and real-client tests (skopeo, docker-registry,
# containerd, sshd, openssl on loopback; a real kube-apiserver and etcd; systemd-analyze for the
# unit; kubectl kustomize, promtool, the shells and groff for the packaging), then a bounded run of every fuzz target. Installs the Debian packages those tests need
# when they are missing (needs root for that), then runs cargo test. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

# binary:package pairs the real-client tests run.
tools="skopeo:skopeo docker-registry:docker-registry containerd:containerd ctr:containerd sshd:openssh-server
ssh-keygen:openssh-client openssl:openssl curl:curl tar:tar gzip:gzip mount:mount promtool:prometheus
zsh:zsh fish:fish groff:groff-base script:bsdutils git:git systemd-analyze:systemd
htpasswd:apache2-utils"
missing=()
for pair in $tools; do
  bin=${pair%%:*}
  pkg=${pair##*:}
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  # Keep the packages' services (sshd, containerd, the registry) from starting: the tests start
  # their own on loopback and stop them by pid.
  cleanup_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    cleanup_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
  if [ "$cleanup_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# The real control plane (kube-apiserver, etcd) and kubectl the cluster tests run, built from the
# pinned Go module in realparts/ into a cache keyed by version (rebuilt only when a pin changes).
# Go is needed for the tests only; the product is one Rust binary.
realparts_bin=$(scripts/realparts.sh)
export PATH="$realparts_bin:$PATH"

cargo test --locked "$@"

# Bounded fuzzing of every target (seconds per target; FUZZ_SECONDS=0 skips it on purpose).
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
