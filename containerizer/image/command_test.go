package image

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMerge follows the table in Mesos's
// src/slave/containerizer/mesos/isolators/docker/runtime.cpp
// (getLaunchCommand), row by row.
func TestMerge(t *testing.T) {
	ep := []string{"/ep", "-x"}
	cmd := []string{"/cmd", "c1"}
	for _, c := range []struct {
		name       string
		entrypoint []string
		cmd        []string
		task       Command
		want       Command
		err        bool
	}{
		// sh=0 value=0 argv=0
		{"no value, no args, nothing in the image", nil, nil, Command{}, Command{}, true},
		{"no value, no args, cmd", nil, cmd, Command{}, Command{Value: "/cmd", HasValue: true, Args: []string{"/cmd", "c1"}}, false},
		{"no value, no args, entrypoint", ep, nil, Command{}, Command{Value: "/ep", HasValue: true, Args: []string{"/ep", "-x"}}, false},
		{"no value, no args, entrypoint and cmd", ep, cmd, Command{}, Command{Value: "/ep", HasValue: true, Args: []string{"/ep", "-x", "/cmd", "c1"}}, false},
		// sh=0 value=0 argv=1
		{"no value, args, nothing in the image", nil, nil, Command{Args: []string{"a"}}, Command{}, true},
		{"no value, args, cmd", nil, cmd, Command{Args: []string{"a", "b"}}, Command{Value: "/cmd", HasValue: true, Args: []string{"/cmd", "a", "b"}}, false},
		{"no value, args, entrypoint", ep, nil, Command{Args: []string{"a"}}, Command{Value: "/ep", HasValue: true, Args: []string{"/ep", "-x", "a"}}, false},
		{"no value, args, entrypoint and cmd", ep, cmd, Command{Args: []string{"a"}}, Command{Value: "/ep", HasValue: true, Args: []string{"/ep", "-x", "a"}}, false},
		// sh=0 value=1
		{"value, no args", ep, cmd, Command{Value: "/v", HasValue: true}, Command{Value: "/v", HasValue: true}, false},
		{"value, args", ep, cmd, Command{Value: "/v", HasValue: true, Args: []string{"v", "1"}}, Command{Value: "/v", HasValue: true, Args: []string{"v", "1"}}, false},
		{"value, nothing in the image", nil, nil, Command{Value: "/v", HasValue: true}, Command{Value: "/v", HasValue: true}, false},
		// sh=1
		{"shell without value", ep, cmd, Command{Shell: true}, Command{}, true},
		{"shell without value, args", nil, nil, Command{Shell: true, Args: []string{"a"}}, Command{}, true},
		{"shell", ep, cmd, Command{Shell: true, Value: "echo hi", HasValue: true}, Command{Shell: true, Value: "echo hi", HasValue: true}, false},
		{"shell, nothing in the image", nil, nil, Command{Shell: true, Value: "echo hi", HasValue: true}, Command{Shell: true, Value: "echo hi", HasValue: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := ImageConfig{Entrypoint: c.entrypoint, Cmd: c.cmd, Env: []string{"A=1", "BAD", "B=x=y"}, WorkingDir: "/w", User: "nobody"}
			l, err := Merge(cfg, c.task)
			if c.err {
				require.ErrorIs(t, err, ErrNoCommand)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, l.Command)
			assert.Equal(t, []string{"A=1", "B=x=y"}, l.Env, "entries without = are dropped")
			assert.Equal(t, "/w", l.WorkingDir)
			assert.Equal(t, "nobody", l.User)
		})
	}
}

func TestMergeEnv(t *testing.T) {
	assert.Equal(t,
		[]string{"PATH=/bin", "HOME=/root", "MESOS_SANDBOX=/s", "LANG=en"},
		MergeEnv([]string{"PATH=/bin", "LANG=C", "HOME=/root"}, []string{"MESOS_SANDBOX=/s", "LANG=en"}))
	assert.Equal(t, []string{"A=1"}, MergeEnv([]string{"A=1"}, nil))
}
