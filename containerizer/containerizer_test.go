package containerizer_test

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
)

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "task-1.executor_2", ".hidden", "..x", strings.Repeat("A", containerizer.MaxIDLength)} {
		assert.NoError(t, containerizer.ValidateID(id), "%q", id)
	}
	for _, id := range []string{"", ".", "..", "a/b", "a b", "é", "a\x00", strings.Repeat("A", containerizer.MaxIDLength+1)} {
		err := containerizer.ValidateID(id)
		require.ErrorIs(t, err, containerizer.ErrInvalidConfig, "%q", id)
	}
}

func TestConfigValidate(t *testing.T) {
	good := containerizer.Config{ID: "c", Command: containerizer.ShellCommand("true"), Sandbox: "/sandbox"}
	require.NoError(t, good.Validate())
	for name, mutate := range map[string]func(*containerizer.Config){
		"inf cpus":    func(c *containerizer.Config) { c.Limits.CPUs = math.Inf(1) },
		"NUL in user": func(c *containerizer.Config) { c.User = "a\x00" },
		"NUL sandbox": func(c *containerizer.Config) { c.Sandbox = "/a\x00" },
		"no exec":     func(c *containerizer.Config) { c.Command = containerizer.Command{Args: []string{"x"}} },
	} {
		c := good
		mutate(&c)
		err := c.Validate()
		require.ErrorIs(t, err, containerizer.ErrInvalidConfig, name)
		assert.Contains(t, err.Error(), `"c"`, "%s: the error names the container", name)
	}
}

func TestCommandHelpers(t *testing.T) {
	assert.Equal(t, containerizer.Command{Shell: true, Value: "exit 3"}, containerizer.ShellCommand("exit 3"))
	assert.Equal(t, containerizer.Command{Value: "/bin/echo", Args: []string{"/bin/echo", "a", "b"}}, containerizer.ExecCommand("/bin/echo", "a", "b"))
}

func TestTerminationStatusKnown(t *testing.T) {
	assert.True(t, containerizer.Termination{ExitCode: 0}.StatusKnown())
	assert.True(t, containerizer.Termination{ExitCode: -1, Signal: 9}.StatusKnown())
	assert.False(t, containerizer.Termination{ExitCode: -1}.StatusKnown())
}
