package master_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/master/registrytest"
)

// BenchmarkRegistryAdmit measures the write latency of one agent
// admission (one Apply of one AdmitAgent, durable when it returns) on top
// of a registry that holds 10,000 or 50,000 agents, for the file and
// ZooKeeper registries; p50, p99 and the slowest are reported as metrics. Compactions
// happen inside the measured Applies, as they do in a master.
//
//	go test ./master -run '^$' -bench RegistryAdmit -benchtime 2000x
func BenchmarkRegistryAdmit(b *testing.B) {
	var srv *zktest.Server
	if ok, _ := zktest.Available(); ok {
		srv = zktest.Start(b) // for every ZooKeeper case, stopped at the end
	}
	for _, n := range []int{10000, 50000} {
		b.Run(fmt.Sprintf("file/agents=%d", n), func(b *testing.B) {
			r, err := master.NewFileRegistry(master.FileRegistryConfig{Dir: filepath.Join(b.TempDir(), "registry")})
			require.NoError(b, err)
			defer r.Close()
			benchAdmit(b, r, n)
		})
		b.Run(fmt.Sprintf("zk/agents=%d", n), func(b *testing.B) {
			if srv == nil {
				_, why := zktest.Available()
				b.Skipf("zookeeper benchmarks skipped: %s", why)
			}
			path := fmt.Sprintf("/bench/%d/%d", n, b.N)
			r := openZKRegistry(b, connectZK(b, srv.Addr), path, master.ZKRegistryConfig{})
			benchAdmit(b, r, n)
		})
	}
}

func benchAdmit(b *testing.B, r master.Registry, agents int) {
	ctx := context.Background()
	_, err := r.Recover(ctx)
	require.NoError(b, err)
	for i := 0; i < agents; i += 1000 {
		require.NoError(b, r.Apply(ctx, registrytest.Admissions(i, min(i+1000, agents))))
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ops := registrytest.Admissions(agents+i, agents+i+1)
		start := time.Now()
		if err := r.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms") // a compaction, when one happened
}
