// Package checks validates the checks and health checks of tasks
// (TaskInfo.check, TaskInfo.health_check) as Mesos does, with Mesos's
// messages: the master refuses a task they make invalid, and the built-in
// executors refuse it too when given one by a master that did not.
package checks

import (
	"errors"
	"fmt"
	"strings"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// HealthCheck checks a TaskInfo.health_check as Mesos's
// common::validation::validateHealthCheck does, with its messages.
func HealthCheck(h *mesospb.HealthCheck) error {
	if h.Type == nil {
		return errors.New("HealthCheck must specify 'type'")
	}
	switch h.GetType() {
	case mesospb.HealthCheck_COMMAND:
		if h.Command == nil {
			return errors.New("Expecting 'command' to be set for COMMAND health check")
		}
		if err := validateCheckCommand(h.Command); err != nil {
			return fmt.Errorf("Command health check must contain %s", err)
		}
		if err := validateEnvironment(h.Command.Environment); err != nil {
			return fmt.Errorf("Health check's `CommandInfo` is invalid: %w", err)
		}
	case mesospb.HealthCheck_HTTP:
		if h.HTTP == nil {
			return errors.New("Expecting 'http' to be set for HTTP health check")
		}
		if s := h.HTTP.Scheme; s != nil && *s != "http" && *s != "https" {
			return fmt.Errorf("Unsupported HTTP health check scheme: '%s'", *s)
		}
		if p := h.HTTP.Path; p != nil && !strings.HasPrefix(*p, "/") {
			return fmt.Errorf("The path '%s' of HTTP health check must start with '/'", *p)
		}
	case mesospb.HealthCheck_TCP:
		if h.TCP == nil {
			return errors.New("Expecting 'tcp' to be set for TCP health check")
		}
	default:
		return fmt.Errorf("'%s' is not a valid health check type", h.GetType())
	}
	return validateDurations(map[string]*float64{
		"delay_seconds":        h.DelaySeconds,
		"grace_period_seconds": h.GracePeriodSeconds,
		"interval_seconds":     h.IntervalSeconds,
		"timeout_seconds":      h.TimeoutSeconds,
	}, []string{"delay_seconds", "grace_period_seconds", "interval_seconds", "timeout_seconds"})
}

// Check checks a TaskInfo.check as Mesos's
// common::validation::validateCheckInfo does, with its messages.
func Check(c *mesospb.CheckInfo) error {
	if c.Type == nil {
		return errors.New("CheckInfo must specify 'type'")
	}
	switch c.GetType() {
	case mesospb.CheckInfo_COMMAND:
		if c.Command == nil {
			return errors.New("Expecting 'command' to be set for COMMAND check")
		}
		if err := validateCheckCommand(&c.Command.Command); err != nil {
			return fmt.Errorf("Command check must contain %s", err)
		}
		if err := validateEnvironment(c.Command.Command.Environment); err != nil {
			return fmt.Errorf("Check's `CommandInfo` is invalid: %w", err)
		}
	case mesospb.CheckInfo_HTTP:
		if c.HTTP == nil {
			return errors.New("Expecting 'http' to be set for HTTP check")
		}
		if p := c.HTTP.Path; p != nil && !strings.HasPrefix(*p, "/") {
			return fmt.Errorf("The path '%s' of HTTP check must start with '/'", *p)
		}
	case mesospb.CheckInfo_TCP:
		if c.TCP == nil {
			return errors.New("Expecting 'tcp' to be set for TCP check")
		}
	default:
		return fmt.Errorf("'%s' is not a valid check type", c.GetType())
	}
	return validateDurations(map[string]*float64{
		"delay_seconds":    c.DelaySeconds,
		"interval_seconds": c.IntervalSeconds,
		"timeout_seconds":  c.TimeoutSeconds,
	}, []string{"delay_seconds", "interval_seconds", "timeout_seconds"})
}

// validateCheckCommand returns what a check's command lacks: a value
// ('shell command' or 'executable path').
func validateCheckCommand(c *mesospb.CommandInfo) error {
	if c.Value != nil {
		return nil
	}
	if c.GetShell() {
		return errors.New("'shell command'")
	}
	return errors.New("'executable path'")
}

// validateDurations refuses negative durations (NaN included), in Mesos's
// order.
func validateDurations(v map[string]*float64, order []string) error {
	for _, name := range order {
		if p := v[name]; p != nil && !(*p >= 0) {
			return fmt.Errorf("Expecting '%s' to be non-negative", name)
		}
	}
	return nil
}

// validateEnvironment checks an Environment as Mesos's
// common::validation::validateEnvironment does.
func validateEnvironment(env *mesospb.Environment) error {
	for _, v := range env.GetVariables() {
		switch v.GetType() {
		case mesospb.Environment_Variable_SECRET:
			if v.Secret == nil {
				return fmt.Errorf("Environment variable '%s' of type 'SECRET' must have a secret set", v.Name)
			}
			if v.Value != nil {
				return fmt.Errorf("Environment variable '%s' of type 'SECRET' must not have a value set", v.Name)
			}
		case mesospb.Environment_Variable_VALUE:
			if v.Value == nil {
				return fmt.Errorf("Environment variable '%s' of type 'VALUE' must have a value set", v.Name)
			}
			if v.Secret != nil {
				return fmt.Errorf("Environment variable '%s' of type 'VALUE' must not have a secret set", v.Name)
			}
		default:
			return errors.New("Environment variable of type 'UNKNOWN' is not allowed")
		}
	}
	return nil
}

// Task validates a task's check and health check as
// Mesos's master does (master/validation.cpp: validateCheck, then
// validateHealthCheck), with its messages.
func Task(ti *mesospb.TaskInfo) error {
	if ti.Check != nil {
		if err := Check(ti.Check); err != nil {
			return fmt.Errorf("Task uses invalid check: %w", err)
		}
	}
	if ti.HealthCheck != nil {
		if err := HealthCheck(ti.HealthCheck); err != nil {
			return fmt.Errorf("Task uses invalid health check: %w", err)
		}
	}
	return nil
}

// GroupTask refuses what Mesos's master refuses of a task of
// a task group (master/validation.cpp, group::internal::validateTask): an
// HTTP or TCP health check of a task with networks of its own.
func GroupTask(ti *mesospb.TaskInfo) error {
	if ti.Container == nil || len(ti.Container.NetworkInfos) == 0 {
		return nil
	}
	switch ti.HealthCheck.GetType() {
	case mesospb.HealthCheck_HTTP, mesospb.HealthCheck_TCP:
		return errors.New("HTTP and TCP health checks are not supported for nested containers not joining parent's network")
	}
	return nil
}
