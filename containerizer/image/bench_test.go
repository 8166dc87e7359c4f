package image

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BenchmarkPull5Layers pulls a 5-layer image (busybox and four layers of
// 1 MiB of incompressible data) from the in-process registry into an
// empty store each time. It reports, besides time and allocations, the
// peak of the live heap during the pulls (sampled every millisecond) and
// that peak less the heap before them (the registry's blobs):
// layers are streamed from the registry to the disk, so it stays far
// below the image's size.
func BenchmarkPull5Layers(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	layers := []v1.Layer{busyboxLayer(b)}
	for i := range 4 {
		data := make([]byte, 1<<20)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		layers = append(layers, layerOf(b, reg(fmt.Sprintf("data/%d", i), string(data))))
	}
	img := imageOf(b, v1.Config{Cmd: []string{"/bin/sh"}}, layers...)
	r := newRegistry(b)
	r.push(b, "bench:1", img)
	var size int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			b.Fatal(err)
		}
		size += n
	}
	b.SetBytes(size)

	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				metrics.Read(sample)
				if v := sample[0].Value.Uint64(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	base := b.TempDir()
	runtime.GC()
	// The registry keeps the blobs in memory and the test keeps the
	// layers: what the pulls add is the peak above this.
	baseline := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(baseline)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(base, fmt.Sprint(i))
		s, err := Open(Options{Dir: dir, Registry: r.srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Pull(b.Context(), "bench:1"); err != nil {
			b.Fatal(err)
		}
		s.Close()
		b.StopTimer()
		if err := removeTree(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric((float64(peak.Load())-float64(baseline[0].Value.Uint64()))/(1<<20), "pull-heap-MiB")
}
