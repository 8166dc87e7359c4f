package agent

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShellAsksTheCore checks that the agent's decisions that the
// simulation (internal/sim) also exercises are taken by the core
// (internal/agentcore: its tables' methods and its decision functions),
// not by a copy in the shell: a shell that decides by itself what the
// core decides drifts from what fault injection tests. Each entry is a
// file of the shell and the core's functions or methods it must call.
// (The tables' records are the core's types, so the shell cannot change
// their states but through the core's methods: the compiler sees to that.)
func TestShellAsksTheCore(t *testing.T) {
	want := map[string][]string{
		"link.go":      {"Reregistration"},
		"process.go":   {"EndingLaunchFailed", "Exited", "Overrule"},
		"executors.go": {"Subscribed", "Launches", "Launched", "Requeue", "CheckExecutorCall", "ValidateExecutorUpdate", "Shutdown", "ShutdownFramework", "Destroy", "Exited", "Terminate", "Terminated", "UpdateFramework"},
		"tasks.go":     {"RunTasks", "Kill", "AfterQueuedKill", "ForgetTask", "ForgetFramework", "Reconcile", "ReconcileAnswer"},
		"updates.go":   {"Apply", "SetHead"},
		"recover.go":   {"Recover", "DecideRecovery", "PlanReattach", "Reattached", "Resubscribing"},
		"loop.go":      {"AllTerminated"},
		"agent.go":     {"AllTerminated"},
	}
	for file, funcs := range want {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(".", file), nil, 0)
		require.NoError(t, err)
		called := map[string]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok {
				if sel, ok := c.Fun.(*ast.SelectorExpr); ok {
					called[sel.Sel.Name] = true
				}
			}
			return true
		})
		for _, fn := range funcs {
			assert.True(t, called[fn], "%s must decide with the core's %s", file, fn)
		}
	}
}
