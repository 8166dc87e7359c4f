package main

import (
	"errors"
	"flag"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseWeights(t *testing.T) {
	w, err := parseWeights(" analytics=2, batch = 0.5 ")
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"analytics": 2, "batch": 0.5}, w)
	w, err = parseWeights("")
	require.NoError(t, err)
	assert.Nil(t, w)
	for _, bad := range []string{"a", "=2", "a=0", "a=-1", "a=x", "a=NaN", "a=2,"} {
		_, err := parseWeights(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestHelpAndBadFlags(t *testing.T) {
	require.True(t, errors.Is(run([]string{"-h"}), flag.ErrHelp))
	require.Error(t, run([]string{"-weights", "x"}))
	require.Error(t, run([]string{"extra"}))
}
