package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/examples/internal/cli"
)

// The exit statuses scripts can rely on.
const (
	exitOK     = 0 // the command did what it was asked
	exitFailed = 1 // a call failed: no master answered, it refused, or what was named is unknown
	exitUsage  = 2 // the command line is wrong; nothing was called
)

// env is what a run reads and writes, injected so that tests run the
// tool in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// now is the clock (default time.Now); sleep waits between the
	// polls of task log -f and task kill (default a timer).
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// usageError is a wrong command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// options are the flags every command takes, before or after its name.
type options struct {
	master   string
	json     bool
	timeout  time.Duration
	interval time.Duration
	cred     cli.Credential
	tls      cli.TLS
}

func (o *options) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("APRON_MASTER")
	if def == "" {
		def = "127.0.0.1:5050"
	}
	fs.StringVar(&o.master, "master", def, cli.MasterFlagHelp+"; $APRON_MASTER sets the default")
	fs.BoolVar(&o.json, "json", false, "print JSON (the Mesos v1 operator API's shapes) instead of tables, for scripts")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up on a call (and on finding a leader) after this `duration`")
	fs.DurationVar(&o.interval, "interval", time.Second, "how often task log -f and task kill poll the master")
	o.cred.Register(fs)
	o.tls.RegisterClient(fs)
	o.tls.Getenv = getenv // LIBPROCESS_SSL_* when no -tls-* flag is given
}

// app is one run of the tool.
type app struct {
	env
	opts       options
	registered bool
	ctx        context.Context
	client     *client
}

// command is one of the tool's commands.
type command struct {
	name, args, help string
	run              func(a *app, args []string) error
}

func commands() []command {
	return []command{
		{"agents", "", "list the agents: state, resources used of total", (*app).agents},
		{"frameworks", "", "list the frameworks: roles, connection, resources allocated", (*app).frameworks},
		{"tasks", "[-all] [-state S,...] [-framework ID] [-agent ID]", "list the tasks (active ones; -all or -state for ended ones too)", (*app).tasks},
		{"task", "log [-f] [-stderr] [-tail N] ID | kill [-signal SIG] [-no-wait] ID", "print (-f: and follow) a task's stdout or stderr; kill a task's container (a custom executor's: its other tasks end too)", (*app).task},
		{"roles", "", "list the roles: weight, quota, resources allocated", (*app).roles},
		{"quota", "get [ROLE] | set [-guarantee RES] [-force] ROLE LIMIT | remove ROLE", "read or change quota (LIMIT, RES as cpus:2;mem:1024)", (*app).quota},
		{"weights", "[set ROLE=W ...]", "list or set role weights", (*app).weights},
		{"reserve", "[-role R] [-principal P] AGENT RESOURCES", "reserve an agent's resources dynamically (cpus(R):1;mem(R):128, or -role)", (*app).reserve},
		{"unreserve", "[-role R] [-principal P] AGENT RESOURCES", "undo reserve", (*app).unreserve},
		{"drain", "[-grace D] [-mark-gone] AGENT", "drain an agent: no more offers, its tasks are killed", (*app).drain},
		{"maintenance", "schedule [add -start T -duration D MACHINE... | clear] | status | down MACHINE... | up MACHINE...", "maintenance windows (MACHINE is HOST or HOST/IP)", (*app).maintenance},
		{"state", "", "the master's whole state (GET_STATE) as JSON", (*app).state},
	}
}

// usage is the text of `apron help`.
func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: apron [flags] COMMAND [flags] [ARGS]

apron talks to an Apron or Mesos master through its v1 operator API.

commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s\n        %s\n", strings.TrimSpace(c.name+" "+c.args), c.help)
	}
	fmt.Fprint(w, `
exit status: 0 done; 1 a call failed (no master answered, the master or an
agent refused the call, or the task, agent or role named is unknown);
2 a usage error (nothing was called).

flags (before or after the command):
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// run runs the tool with args and returns its exit status.
func run(ctx context.Context, args []string, e env) int {
	a := &app{env: e, ctx: ctx}
	if a.getenv == nil {
		a.getenv = func(string) string { return "" }
	}
	fs := a.flagSet("apron")
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		usage(a.stdout, fs)
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(a.stderr, "run 'apron help' for usage")
		err = errFlag // the flag package has said why
	} else {
		err = a.dispatch(fs.Args())
	}
	if a.client != nil {
		a.client.close()
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "apron: %s\nrun 'apron help' for usage\n", ue.msg)
		return exitUsage
	case errors.Is(err, errFlag):
		return exitUsage // the flag package has said why
	default:
		fmt.Fprintf(a.stderr, "apron: %v\n", err)
		return exitFailed
	}
}

// errFlag: the flag package rejected a flag and printed why.
var errFlag = errors.New("bad flag")

func (a *app) dispatch(args []string) error {
	if len(args) == 0 {
		return usagef("no command given")
	}
	name := args[0]
	if name == "help" {
		usage(a.stdout, a.flagSet("apron"))
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(a, args[1:])
		}
	}
	names := make([]string, 0, len(commands()))
	for _, c := range commands() {
		names = append(names, c.name)
	}
	sort.Strings(names)
	return usagef("unknown command %q (commands: %s)", name, strings.Join(names, ", "))
}

// flagSetNames are the names of the common flags.
func (a *app) flagSetNames() map[string]bool {
	var o options
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	o.register(fs, a.getenv)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// flagSet is a FlagSet with the common flags, for the tool or a command.
func (a *app) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	saved := a.opts
	a.opts.register(fs, a.getenv)
	if a.registered {
		// Registering sets the defaults: keep what the flags before the
		// command said.
		a.opts = saved
	}
	a.registered = true
	return fs
}

// parse parses args with fs, flags and arguments in any order, and
// checks the number of arguments: between min and max (max < 0: any).
func (a *app) parse(fs *flag.FlagSet, args []string, min, max int, what string) ([]string, error) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: apron %s %s\n", fs.Name(), what)
		// Its own flags; the common ones are in apron help.
		own := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		own.SetOutput(fs.Output())
		common := a.flagSetNames()
		fs.VisitAll(func(f *flag.Flag) {
			if !common[f.Name] {
				own.Var(f.Value, f.Name, f.Usage)
			}
		})
		own.PrintDefaults()
		fmt.Fprintln(fs.Output(), "(and the common flags: see apron help)")
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errFlag
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, usagef("usage: apron %s %s", fs.Name(), what)
	}
	return pos, nil
}

// master returns the client, made on first use from the flags.
func (a *app) master() (*client, error) {
	if a.client != nil {
		return a.client, nil
	}
	c, err := newClient(a.opts, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	a.client = c
	return c, nil
}

// callCtx bounds one call by -timeout.
func (a *app) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.ctx, a.opts.timeout)
}

// call sends one operator call to the master, bounded by -timeout.
func (a *app) call(call *masterpb.Call) (*masterpb.Response, error) {
	c, err := a.master()
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.callCtx()
	defer cancel()
	return c.call(ctx, call)
}

// get sends one operator call without arguments, bounded by -timeout.
func (a *app) get(typ masterpb.Call_Type) (*masterpb.Response, error) {
	c, err := a.master()
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.callCtx()
	defer cancel()
	return c.get(ctx, typ)
}

// table writes rows aligned in columns, the first row the header.
func (a *app) table(rows [][]string) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func (a *app) wait(d time.Duration) error {
	if a.sleep != nil {
		return a.sleep(a.ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.ctx.Done():
		return a.ctx.Err()
	case <-t.C:
		return nil
	}
}
