#!/usr/bin/env bash
# Builds the real programs the integration tests run from the pinned Go module in realparts/, each
# into a cache folder keyed by its module version and a digest of every module version it is built
# from, so a part is rebuilt only when one of its pins (or the Go toolchain) changes. Links the built programs into target/realparts/bin and prints that
# folder; scripts/test.sh puts it first on PATH. Go is a test-time dependency only.
#
#   scripts/realparts.sh [PART...]     (no PART: every part)
#
# MIRRORCONF_REALPARTS_CACHE overrides the cache (default ~/.cache/mirrorconf/realparts).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/realparts"
cache=${MIRRORCONF_REALPARTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mirrorconf/realparts}
bin="$root/target/realparts/bin"
data="$root/target/realparts/data"

# name | package to build | module whose version keys the cache | build tags | extra ldflags
parts="
kube-apiserver|k8s.io/kubernetes/cmd/kube-apiserver|k8s.io/kubernetes||k8s
kubectl|k8s.io/kubernetes/cmd/kubectl|k8s.io/kubernetes||k8s
etcd|./etcd|go.etcd.io/etcd/server/v3||
etcdctl|go.etcd.io/etcd/etcdctl/v3|go.etcd.io/etcd/etcdctl/v3||
"

# Data the tests read from a pinned Go module (not built): name | module@version | folder in it.
# The Prometheus Operator's CRDs, for applying deploy/components/monitoring as a cluster with the
# operator would (the way controller-runtime's envtest users load CRDs from the module cache).
datasets="
prometheus-operator-crd|github.com/prometheus-operator/prometheus-operator@v0.85.0|example/prometheus-operator-crd
"

if ! command -v go >/dev/null 2>&1; then
  echo "scripts/realparts.sh: needs Go (1.26 or newer) on PATH to build the real parts the tests run" >&2
  exit 1
fi
want=("$@")
mkdir -p "$bin" "$cache"
gover=$(go env GOVERSION)
cd "$mod"
while IFS='|' read -r name pkg module tags ld; do
  [ -n "$name" ] || continue
  if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != *" $name "* ]]; then continue; fi
  version=$(go list -m -f '{{.Version}}' "$module")
  # Another part's pin can move a shared dependency: key on the whole build list of this command.
  deps=$(go list -deps -f '{{with .Module}}{{.Path}}@{{.Version}}{{end}}' "$pkg" | sort -u | sha256sum | cut -c1-12)
  out="$cache/$name/$version-$gover-$deps/$name"
  if [ ! -x "$out" ]; then
    echo "realparts: building $name $version ($gover)" >&2
    ldflags="-s -w"
    if [ "$ld" = k8s ]; then
      # What /version reports; without it the server calls itself v0.0.0 and clients that check
      # the cluster's version (helm's kubeVersion) refuse it.
      minor=$(echo "$version" | cut -d. -f2)
      ldflags="$ldflags -X k8s.io/component-base/version.gitVersion=$version
        -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor
        -X k8s.io/client-go/pkg/version.gitVersion=$version"
    fi
    mkdir -p "$(dirname "$out")"
    CGO_ENABLED=${CGO:-0} go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out.tmp" "$pkg"
    mv "$out.tmp" "$out"
  fi
  ln -sfn "$out" "$bin/$name"
done <<< "$parts"
mkdir -p "$data"
while IFS='|' read -r name modver folder; do
  [ -n "$name" ] || continue
  if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != *" $name "* ]]; then continue; fi
  out="$cache/data/$name/${modver##*@}"
  if [ ! -d "$out" ]; then
    echo "realparts: fetching $name from $modver" >&2
    dir=$(go mod download -json "$modver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$dir/$folder" ] || { echo "scripts/realparts.sh: $modver has no $folder" >&2; exit 1; }
    mkdir -p "$out.tmp" && cp -r "$dir/$folder/." "$out.tmp/" && chmod -R u+w "$out.tmp" && mv "$out.tmp" "$out"
  fi
  ln -sfn "$out" "$data/$name"
done <<< "$datasets"
echo "$bin"
