package main

import (
	"testing"
	"time"
)

// TestDevcluster runs README's first command in small: the job must
// succeed, retries included.
func TestDevcluster(t *testing.T) {
	o := options{agents: 2, tasks: 12, failEvery: 4, resources: "cpus:1;mem:512;disk:1000", workDir: t.TempDir(), timeout: 2 * time.Minute}
	if err := run(o); err != nil {
		t.Fatal(err)
	}
}

// With -ui the master and the agents serve HTTP, and the job still runs.
func TestDevclusterUI(t *testing.T) {
	o := options{agents: 2, tasks: 6, resources: "cpus:1;mem:512;disk:1000", workDir: t.TempDir(), timeout: 2 * time.Minute, ui: "127.0.0.1:0"}
	if err := run(o); err != nil {
		t.Fatal(err)
	}
}
