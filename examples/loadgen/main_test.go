package main

import (
	"bytes"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, pct(d, 50))
	assert.Equal(t, 99*time.Millisecond, pct(d, 99))
	assert.Equal(t, 100*time.Millisecond, pct(d, 100))
	assert.Equal(t, 7*time.Millisecond, pct([]time.Duration{7 * time.Millisecond}, 50))
}

func TestScalars(t *testing.T) {
	rs := []mesospb.Resource{
		{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1.5}},
		{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 256}},
		{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.5}},
		{Name: "ports", Type: mesospb.Value_RANGES},
	}
	cpus, mem := scalars(rs)
	assert.Equal(t, 2.0, cpus)
	assert.Equal(t, 256.0, mem)
}

func TestStatusCounting(t *testing.T) {
	g := newLoad(options{tasks: 2, concurrency: 2, cpus: 0.01, mem: 1}, &bytes.Buffer{})
	g.offerAt[0], g.offerAt[1] = time.Now(), time.Now()
	g.inflight = 2
	up := func(id string, s mesospb.TaskState) {
		g.StatusUpdate(t.Context(), nil, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: id}, State: s.Enum()})
	}
	up("lg-0", mesospb.TASK_STARTING)
	up("lg-0", mesospb.TASK_RUNNING)
	up("lg-0", mesospb.TASK_RUNNING) // a repeat counts once
	up("lg-0", mesospb.TASK_FINISHED)
	up("lg-1", mesospb.TASK_FINISHED) // RUNNING never seen: it ran anyway
	up("nope", mesospb.TASK_RUNNING)
	assert.Equal(t, 2, g.running)
	assert.Equal(t, 2, g.finished)
	assert.Equal(t, 0, g.inflight)
	assert.Len(t, g.latencies, 2)
	select {
	case <-g.done:
	default:
		t.Fatal("all tasks ended: done")
	}
}

func TestFlags(t *testing.T) {
	require.True(t, errors.Is(run([]string{"-h"}, &bytes.Buffer{}), flag.ErrHelp))
	require.Error(t, run([]string{"-tasks", "0"}, &bytes.Buffer{}))
	require.Error(t, run([]string{"-cpus", "-1"}, &bytes.Buffer{}))
}
