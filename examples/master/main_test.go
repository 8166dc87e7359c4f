package main

import (
	"errors"
	"flag"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/allocator"
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

func TestParseMinAllocatable(t *testing.T) {
	mins, err := parseMinAllocatable("cpus:1;mem:32 | disk:64")
	require.NoError(t, err)
	require.Len(t, mins, 2)
	assert.Equal(t, "cpus:1;mem:32", mins[0].String())
	assert.Equal(t, "disk:64", mins[1].String())
	mins, err = parseMinAllocatable("")
	require.NoError(t, err)
	assert.Nil(t, mins)
	for _, bad := range []string{"cpus:-1", "cpus:1|", "cpus", "|mem:32"} {
		_, err := parseMinAllocatable(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestParseSorters(t *testing.T) {
	for _, tc := range []struct {
		role, fw       string
		roleSet, fwSet bool
		want           allocator.Sorter
		wantErr        bool
	}{
		{"drf", "drf", false, false, allocator.SorterDRF, false},
		{"random", "drf", true, false, allocator.SorterRandom, false},
		{"drf", "random", false, true, allocator.SorterRandom, false},
		{"random", "random", true, true, allocator.SorterRandom, false},
		{"random", "drf", true, true, 0, true},
		{"fair", "drf", true, false, 0, true},
	} {
		got, err := parseSorters(tc.role, tc.fw, tc.roleSet, tc.fwSet)
		if tc.wantErr {
			assert.Error(t, err, "%+v", tc)
			continue
		}
		require.NoError(t, err, "%+v", tc)
		assert.Equal(t, tc.want, got, "%+v", tc)
	}
}

func TestHelpAndBadFlags(t *testing.T) {
	require.True(t, errors.Is(run([]string{"-h"}), flag.ErrHelp))
	require.Error(t, run([]string{"-weights", "x"}))
	require.Error(t, run([]string{"extra"}))
	require.Error(t, run([]string{"-min-allocatable-resources", "cpus:x"}))
	require.Error(t, run([]string{"-role-sorter", "random", "-framework-sorter", "drf"}))
}
