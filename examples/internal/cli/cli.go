// Package cli is what Apron's example binaries share: logging flags, the
// signal context, serving an HTTP handler until it ends, and opt-in
// profiling (a CPU profile file, or net/http/pprof next to the API).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	rpprof "runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// Common are the flags every example binary has.
type Common struct {
	LogLevel   string
	CPUProfile string
	MemProfile string
	Pprof      bool

	// Level is the level Logger's handler consults: a master passes it
	// on (master.Config.LogLevel) for the operator's SET_LOGGING_LEVEL.
	Level slog.LevelVar
}

// Register adds the common flags to fs.
func (c *Common) Register(fs *flag.FlagSet, defaultLevel string) {
	fs.StringVar(&c.LogLevel, "log-level", defaultLevel, "`level` of the logs on stderr: debug, info, warn, error or off")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run to `file` (read it with go tool pprof)")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write a heap profile to `file` at exit")
}

// RegisterPprof adds -pprof, for binaries that serve HTTP.
func (c *Common) RegisterPprof(fs *flag.FlagSet) {
	fs.BoolVar(&c.Pprof, "pprof", false, "also serve net/http/pprof under /debug/pprof/ on the listen address (opt-in: it exposes internals)")
}

// Logger returns the logger -log-level asks for.
func (c *Common) Logger() (*slog.Logger, error) {
	var level slog.Level
	switch strings.ToLower(c.LogLevel) {
	case "off", "none", "":
		return slog.New(slog.DiscardHandler), nil
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn, error or off", c.LogLevel)
	}
	c.Level.Set(level)
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: &c.Level})), nil
}

// StartProfiles starts the CPU profile if asked; the returned function
// stops it and writes the heap profile, if asked.
func (c *Common) StartProfiles() (stop func(), err error) {
	var cpu *os.File
	if c.CPUProfile != "" {
		cpu, err = os.Create(c.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		if err := rpprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
	}
	return func() {
		if cpu != nil {
			rpprof.StopCPUProfile()
			cpu.Close()
		}
		if c.MemProfile != "" {
			f, err := os.Create(c.MemProfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "-memprofile:", err)
				return
			}
			defer f.Close()
			runtime.GC()
			if err := rpprof.WriteHeapProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, "-memprofile:", err)
			}
		}
	}, nil
}

// WithPprof returns h, plus net/http/pprof under /debug/pprof/ when -pprof
// is set.
func (c *Common) WithPprof(h http.Handler) http.Handler {
	if !c.Pprof {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// SignalContext is cancelled on SIGINT or SIGTERM. The second signal
// kills the process at once, as users expect of a stuck shutdown.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "%s: shutting down (again to exit at once)\n", sig)
			cancel()
		case <-ctx.Done():
			signal.Stop(sigs)
			return
		}
		<-sigs
		os.Exit(1)
	}()
	return ctx, func() { cancel() }
}

// Listen opens a TCP listener on addr ("127.0.0.1:5050").
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx ends, then shuts the server down: it
// stops accepting, waits up to grace for requests in progress (streams
// must have been ended by then: cancel what feeds them first, see
// before), and closes what is left.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, before func(), grace time.Duration, log *slog.Logger) error {
	srv := &http.Server{
		Handler: h,
		// A slow client holds a connection only so long: its headers
		// within 10 s, and an idle keep-alive connection 2 min. (No read
		// timeout: streaming requests, such as ATTACH_CONTAINER_INPUT,
		// last as long as their session.)
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if before != nil {
		before()
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Usage returns a flag.Usage function printing a synopsis, a description
// and the flags.
func Usage(fs *flag.FlagSet, synopsis, description string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\n\nflags:\n", synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
}

// SplitList splits a comma-separated flag value, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
