package checks_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/checks"
)

func ptr[T any](v T) *T { return &v }

func taskInfo(id string) mesospb.TaskInfo {
	return mesospb.TaskInfo{Name: id, TaskID: mesospb.TaskID{Value: id}, Command: &mesospb.CommandInfo{Value: ptr("true")}}
}

func TestValidateChecks(t *testing.T) {
	cmd := func(c mesospb.CommandInfo) *mesospb.CommandInfo { return &c }
	for _, tc := range []struct {
		name string
		hc   *mesospb.HealthCheck
		c    *mesospb.CheckInfo
		want string // "" valid
	}{
		{name: "no checks"},
		{name: "valid command health check",
			hc: &mesospb.HealthCheck{Type: mesospb.HealthCheck_COMMAND.Enum(), Command: cmd(mesospb.CommandInfo{Value: ptr("true")})}},
		{name: "health check without type", hc: &mesospb.HealthCheck{},
			want: "Task uses invalid health check: HealthCheck must specify 'type'"},
		{name: "health check of type UNKNOWN", hc: &mesospb.HealthCheck{Type: mesospb.HealthCheck_UNKNOWN.Enum()},
			want: "Task uses invalid health check: 'UNKNOWN' is not a valid health check type"},
		{name: "command health check without command", hc: &mesospb.HealthCheck{Type: mesospb.HealthCheck_COMMAND.Enum()},
			want: "Task uses invalid health check: Expecting 'command' to be set for COMMAND health check"},
		{name: "shell health check without value",
			hc:   &mesospb.HealthCheck{Type: mesospb.HealthCheck_COMMAND.Enum(), Command: cmd(mesospb.CommandInfo{})},
			want: "Task uses invalid health check: Command health check must contain 'shell command'"},
		{name: "exec health check without value",
			hc:   &mesospb.HealthCheck{Type: mesospb.HealthCheck_COMMAND.Enum(), Command: cmd(mesospb.CommandInfo{Shell: ptr(false), Arguments: []string{"x"}})},
			want: "Task uses invalid health check: Command health check must contain 'executable path'"},
		{name: "health check command with a bad variable",
			hc: &mesospb.HealthCheck{Type: mesospb.HealthCheck_COMMAND.Enum(), Command: cmd(mesospb.CommandInfo{Value: ptr("true"),
				Environment: &mesospb.Environment{Variables: []mesospb.Environment_Variable{{Name: "X"}}}})},
			want: "Task uses invalid health check: Health check's `CommandInfo` is invalid: Environment variable 'X' of type 'VALUE' must have a value set"},
		{name: "http health check without http", hc: &mesospb.HealthCheck{Type: mesospb.HealthCheck_HTTP.Enum()},
			want: "Task uses invalid health check: Expecting 'http' to be set for HTTP health check"},
		{name: "http health check with a bad scheme",
			hc:   &mesospb.HealthCheck{Type: mesospb.HealthCheck_HTTP.Enum(), HTTP: &mesospb.HealthCheck_HTTPCheckInfo{Port: 80, Scheme: ptr("ftp")}},
			want: "Task uses invalid health check: Unsupported HTTP health check scheme: 'ftp'"},
		{name: "http health check with a relative path",
			hc:   &mesospb.HealthCheck{Type: mesospb.HealthCheck_HTTP.Enum(), HTTP: &mesospb.HealthCheck_HTTPCheckInfo{Port: 80, Path: ptr("ok")}},
			want: "Task uses invalid health check: The path 'ok' of HTTP health check must start with '/'"},
		{name: "tcp health check without tcp", hc: &mesospb.HealthCheck{Type: mesospb.HealthCheck_TCP.Enum()},
			want: "Task uses invalid health check: Expecting 'tcp' to be set for TCP health check"},
		{name: "negative delay",
			hc:   &mesospb.HealthCheck{Type: mesospb.HealthCheck_TCP.Enum(), TCP: &mesospb.HealthCheck_TCPCheckInfo{Port: 1}, DelaySeconds: ptr(-1.0)},
			want: "Task uses invalid health check: Expecting 'delay_seconds' to be non-negative"},
		{name: "negative grace period",
			hc:   &mesospb.HealthCheck{Type: mesospb.HealthCheck_TCP.Enum(), TCP: &mesospb.HealthCheck_TCPCheckInfo{Port: 1}, GracePeriodSeconds: ptr(-1.0)},
			want: "Task uses invalid health check: Expecting 'grace_period_seconds' to be non-negative"},
		{name: "negative interval",
			hc:   &mesospb.HealthCheck{Type: mesospb.HealthCheck_TCP.Enum(), TCP: &mesospb.HealthCheck_TCPCheckInfo{Port: 1}, IntervalSeconds: ptr(-0.5)},
			want: "Task uses invalid health check: Expecting 'interval_seconds' to be non-negative"},
		{name: "NaN timeout",
			hc:   &mesospb.HealthCheck{Type: mesospb.HealthCheck_TCP.Enum(), TCP: &mesospb.HealthCheck_TCPCheckInfo{Port: 1}, TimeoutSeconds: ptr(math.NaN())},
			want: "Task uses invalid health check: Expecting 'timeout_seconds' to be non-negative"},
		{name: "check without type", c: &mesospb.CheckInfo{},
			want: "Task uses invalid check: CheckInfo must specify 'type'"},
		{name: "check of type UNKNOWN", c: &mesospb.CheckInfo{Type: mesospb.CheckInfo_UNKNOWN.Enum()},
			want: "Task uses invalid check: 'UNKNOWN' is not a valid check type"},
		{name: "command check without command", c: &mesospb.CheckInfo{Type: mesospb.CheckInfo_COMMAND.Enum()},
			want: "Task uses invalid check: Expecting 'command' to be set for COMMAND check"},
		{name: "command check without value",
			c:    &mesospb.CheckInfo{Type: mesospb.CheckInfo_COMMAND.Enum(), Command: &mesospb.CheckInfo_Command{}},
			want: "Task uses invalid check: Command check must contain 'shell command'"},
		{name: "command check with a secret holding a value",
			c: &mesospb.CheckInfo{Type: mesospb.CheckInfo_COMMAND.Enum(), Command: &mesospb.CheckInfo_Command{Command: mesospb.CommandInfo{Value: ptr("true"),
				Environment: &mesospb.Environment{Variables: []mesospb.Environment_Variable{{Name: "S", Type: mesospb.Environment_Variable_SECRET.Enum(), Secret: &mesospb.Secret{}, Value: ptr("v")}}}}}},
			want: "Task uses invalid check: Check's `CommandInfo` is invalid: Environment variable 'S' of type 'SECRET' must not have a value set"},
		{name: "http check without http", c: &mesospb.CheckInfo{Type: mesospb.CheckInfo_HTTP.Enum()},
			want: "Task uses invalid check: Expecting 'http' to be set for HTTP check"},
		{name: "http check with a relative path",
			c:    &mesospb.CheckInfo{Type: mesospb.CheckInfo_HTTP.Enum(), HTTP: &mesospb.CheckInfo_Http{Port: 1, Path: ptr("x")}},
			want: "Task uses invalid check: The path 'x' of HTTP check must start with '/'"},
		{name: "tcp check without tcp", c: &mesospb.CheckInfo{Type: mesospb.CheckInfo_TCP.Enum()},
			want: "Task uses invalid check: Expecting 'tcp' to be set for TCP check"},
		{name: "check with a negative timeout",
			c:    &mesospb.CheckInfo{Type: mesospb.CheckInfo_TCP.Enum(), TCP: &mesospb.CheckInfo_Tcp{Port: 1}, TimeoutSeconds: ptr(-1.0)},
			want: "Task uses invalid check: Expecting 'timeout_seconds' to be non-negative"},
		{name: "the check is validated first",
			c:    &mesospb.CheckInfo{},
			hc:   &mesospb.HealthCheck{},
			want: "Task uses invalid check: CheckInfo must specify 'type'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := taskInfo("t")
			ti.HealthCheck, ti.Check = tc.hc, tc.c
			err := checks.Task(&ti)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tc.want, err.Error())
		})
	}
}
