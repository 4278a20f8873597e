// etcd's server as a command: the etcd/server/v3 module ships the package, not a main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
