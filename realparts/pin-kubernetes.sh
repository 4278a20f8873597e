#!/usr/bin/env bash
# Pins k8s.io/kubernetes at VERSION in this Go module. Used as a module, k8s.io/kubernetes needs one
# `replace k8s.io/<name> => k8s.io/<name> v0.<minor>.<patch>` per `./staging/src/k8s.io/<name>`
# replace in its own go.mod; this reads that list from the go.mod of VERSION itself, so no list is
# copied by hand. Then `go mod tidy`.
#   realparts/pin-kubernetes.sh v1.36.3
set -euo pipefail
version=${1:?usage: realparts/pin-kubernetes.sh v1.N.M}
cd "$(dirname "$0")"
staging="v0.${version#v1.}"
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[ -f "$gomod" ] || { echo "no go.mod for k8s.io/kubernetes@$version" >&2; exit 1; }
# Drop the old pins, then add one per staging module of this version.
for old in $(go mod edit -json | sed -n 's/.*"Path": "\(k8s\.io\/[a-z0-9-]*\)".*/\1/p' | sort -u); do
  go mod edit -dropreplace="$old" 2>/dev/null || true
done
names=$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/k8s\.io/[a-z0-9-]*$#\1#p' "$gomod")
[ -n "$names" ] || { echo "no staging replaces found in $gomod" >&2; exit 1; }
for name in $names; do
  go mod edit -replace="$name=$name@$staging"
done
go mod edit -require="k8s.io/kubernetes@$version"
go mod tidy
echo "pinned k8s.io/kubernetes $version with $(echo "$names" | wc -w) staging modules at $staging"
