package checkpoint_test

import (
	"testing"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/agent/checkpoint/checkpointtest"
)

func TestMemory(t *testing.T) {
	checkpointtest.Run(t, func(t *testing.T) func() checkpoint.Store {
		m := checkpoint.NewMemory()
		return func() checkpoint.Store { return m }
	})
}
