package master

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/clock"
)

// The limiter spaces requests 1/qps apart: the first goes at once, the
// next waits its turn while capacity allows, and one more is refused.
func TestLimiterSpacesAndBounds(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	one := uint64(1)
	l := newLimiter(2, &one) // every 500 ms, one may wait
	ctx := context.Background()
	require.NoError(t, l.acquire(ctx, clk))

	done := make(chan error, 1)
	go func() { done <- l.acquire(ctx, clk) }()
	require.Eventually(t, func() bool { return clk.Waiters() == 1 }, 5*time.Second, time.Millisecond)
	err := l.acquire(ctx, clk)
	assert.True(t, errors.Is(err, ErrRateLimited), "a second waiter is over capacity: %v", err)

	clk.Advance(499 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("went before its turn: %v", err)
	default:
	}
	clk.Advance(time.Millisecond)
	require.NoError(t, <-done)

	// Its turn was at 500 ms; at 1 s the next goes at once.
	clk.Advance(500 * time.Millisecond)
	require.NoError(t, l.acquire(ctx, clk))
}

// A waiting request whose client goes away stops waiting.
func TestLimiterWaitEndsWithContext(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	l := newLimiter(1, nil)
	require.NoError(t, l.acquire(context.Background(), clk))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.acquire(ctx, clk) }()
	require.Eventually(t, func() bool { return clk.Waiters() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}
