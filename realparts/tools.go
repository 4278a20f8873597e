//go:build tools

// Package realparts pins the real programs the integration tests run. Nothing here ships: the
// product is one Rust binary. scripts/realparts.sh builds each command below into a cache keyed by
// its module version.
package realparts

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
