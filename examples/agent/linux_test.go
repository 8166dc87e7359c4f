package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIsolationFlags(t *testing.T) {
	for _, tc := range []struct {
		isolation, providers string
		linux                bool
		err                  string
	}{
		{"", "", false, ""},
		{"posix/cpu,posix/mem", "", false, ""},
		{"filesystem/linux,cgroups/cpu,cgroups/mem,namespaces/pid", "", true, ""},
		{"cgroups/mem", "docker", true, ""},
		{" docker/runtime , filesystem/linux ", "DOCKER", true, ""},
		{"posix/cpu", "docker", false, "needs a Linux -isolation"},
		{"filesystem/linux", "appc", false, "only docker"},
		{"gpu/nvidia", "", false, `unknown isolator "gpu/nvidia"`},
	} {
		f := linuxFlags{isolation: tc.isolation, imageProviders: tc.providers}
		linux, err := f.linux()
		if tc.err != "" {
			require.Error(t, err, "%+v", tc)
			assert.Contains(t, err.Error(), tc.err)
			continue
		}
		require.NoError(t, err, "%+v", tc)
		assert.Equal(t, tc.linux, linux, "%+v", tc)
	}
}

func TestDiskFlags(t *testing.T) {
	for _, tc := range []struct {
		isolation string
		enforce   bool
		du        bool
	}{
		{"", false, false},
		{"posix/cpu,posix/mem", false, false},
		{"posix/cpu,disk/du", false, true},
		{"filesystem/linux, posix/disk", false, true},
		{"", true, true},
	} {
		f := linuxFlags{isolation: tc.isolation, enforceDiskQuota: tc.enforce}
		_, err := f.linux()
		require.NoError(t, err, "%+v", tc)
		assert.Equal(t, tc.du, f.diskDu(), "%+v", tc)
	}
	f := linuxFlags{diskWatchInterval: 0}
	_, err := f.withDisk(nil, t.TempDir(), nil)
	require.ErrorContains(t, err, "-container-disk-watch-interval")
}
