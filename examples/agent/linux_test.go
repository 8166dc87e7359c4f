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
