package main

import (
	"testing"
	"time"
)

// TestDevcluster runs README's first command in small: the job must
// succeed, retries included.
func TestDevcluster(t *testing.T) {
	if err := run(2, 12, 4, "cpus:1;mem:512;disk:1000", t.TempDir(), 2*time.Minute, false); err != nil {
		t.Fatal(err)
	}
}
