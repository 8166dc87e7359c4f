// Command init is a container init and nothing else: the smallest binary
// the launcher can start as Spec.Init, for BenchmarkStart.
package main

import (
	"fmt"
	"os"

	"github.com/apronhq/apron/containerizer/launcher"
)

func main() {
	if launcher.IsInit() {
		launcher.RunInit()
	}
	fmt.Fprintln(os.Stderr, "init: to be started by launcher.Start as Spec.Init")
	os.Exit(2)
}
