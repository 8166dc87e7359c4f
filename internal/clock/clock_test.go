package clock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/clock"
)

func TestFake(t *testing.T) {
	start := time.Unix(1000, 0)
	f := clock.NewFake(start)
	timer := f.NewTimer(5 * time.Second)
	ticker := f.NewTicker(2 * time.Second)
	assert.Equal(t, 2, f.Waiters())

	f.Advance(time.Second)
	assert.Len(t, timer.C(), 0)
	assert.Len(t, ticker.C(), 0)

	f.Advance(time.Second)
	require.Len(t, ticker.C(), 1)
	assert.Equal(t, start.Add(2*time.Second), <-ticker.C())

	f.Advance(4 * time.Second) // to 6 s: the timer at 5, the ticker at 4 and 6 (one kept)
	require.Len(t, timer.C(), 1)
	assert.Equal(t, start.Add(5*time.Second), <-timer.C())
	require.Len(t, ticker.C(), 1)
	assert.Equal(t, start.Add(6*time.Second), f.Now())
	assert.Equal(t, 1, f.Waiters(), "the fired timer is gone")

	ticker.Stop()
	assert.Equal(t, 0, f.Waiters())
	assert.False(t, timer.Stop(), "a fired timer cannot be stopped")
}
