package master_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/master"
)

// BenchmarkAgentRegistration registers b.N agents with a running master,
// 64 at a time as agents that start together do, without a registry and
// with the file registry: each admission is durable before the agent
// hears REGISTERED, and the master writes the admissions that arrive
// while a write is in flight together in the next one, so the cost of
// durability is one fsync per batch, not per agent.
//
//	go test ./master -run '^$' -bench AgentRegistration -benchtime 5000x
func BenchmarkAgentRegistration(b *testing.B) {
	for _, kind := range []string{"none", "file"} {
		b.Run("registry="+kind, func(b *testing.B) {
			cfg := master.Config{}
			if kind == "file" {
				r, err := master.NewFileRegistry(master.FileRegistryConfig{Dir: filepath.Join(b.TempDir(), "registry")})
				require.NoError(b, err)
				defer r.Close()
				cfg.Registry = r
			}
			m, err := master.New(cfg)
			require.NoError(b, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx) }()
			defer func() { cancel(); <-done }()

			const parallel = 64
			next := make(chan int)
			var wg sync.WaitGroup
			start := time.Now()
			b.ResetTimer()
			for w := 0; w < parallel; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						_, events, err := m.ConnectAgent(ctx, registerCall(fmt.Sprintf("host-%d", i)))
						if err != nil {
							b.Error(err)
							return
						}
						<-events // REGISTERED
					}
				}()
			}
			for i := 0; i < b.N; i++ {
				next <- i
			}
			close(next)
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "agents/s")
		})
	}
}
