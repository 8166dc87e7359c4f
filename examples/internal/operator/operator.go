// Package operator is what the example operators (examples/etcd,
// examples/zookeeper) share around the service SDK: the flags every
// operator has (the master, the service's name, role and principal, each
// pod's resources, where the state is kept, the HTTP API's address) and
// running a service.Service on them.
package operator

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/scheduler"
	"github.com/apronhq/apron/service"
)

// Flags are the flags every operator has.
type Flags struct {
	Masters, Name, Role, Principal string
	CPUs, Mem, Disk                float64
	State, ZK, Listen              string
	ReplaceAfter                   time.Duration
	Credential                     cli.Credential
	Common                         cli.Common
}

// Register adds the flags to fs, with service as the default name and
// role and pod naming what one pod is ("member", "server") in the help.
func (f *Flags) Register(fs *flag.FlagSet, svc, pod string) {
	fs.StringVar(&f.Masters, "master", "127.0.0.1:5050", cli.MasterFlagHelp)
	fs.StringVar(&f.Name, "name", svc, "the service's (and framework's) name, on every reservation it makes")
	fs.StringVar(&f.Role, "role", svc, "the `role` the "+pod+"s' resources are reserved for")
	fs.StringVar(&f.Principal, "principal", svc+"-operator", "the principal reservations and volumes are made by")
	fs.Float64Var(&f.CPUs, "cpus", 0.5, "cpus of each "+pod)
	fs.Float64Var(&f.Mem, "mem", 512, "memory of each "+pod+", MB")
	fs.Float64Var(&f.Disk, "disk", 1024, "size of each "+pod+"'s data volume, MB (cannot change once deployed)")
	fs.StringVar(&f.State, "state", "", "`file` keeping the operator's state across restarts")
	fs.StringVar(&f.ZK, "zk", "", "keep the operator's state in ZooKeeper instead, at `zk://host:port[,...]/znode`")
	fs.StringVar(&f.Listen, "listen", "127.0.0.1:8080", "`host:port` of the operator's HTTP API (/v1/plans, /v1/pods, ...)")
	fs.DurationVar(&f.ReplaceAfter, "replace-after", 10*time.Minute, "replace a "+pod+" whose agent is lost for this long on another agent (0: only on command)")
	f.Credential.Register(fs)
	f.Common.Register(fs, "info")
}

// Logger is the logger -log-level asks for.
func (f *Flags) Logger() (*slog.Logger, error) { return f.Common.Logger() }

// Store opens where -state or -zk keep the operator's state; close
// releases it.
func (f *Flags) Store() (store service.Store, close func(), err error) {
	if (f.State == "") == (f.ZK == "") {
		return nil, nil, errors.New("want one of -state and -zk: where the operator keeps its state")
	}
	if f.State != "" {
		return service.NewFileStore(f.State), func() {}, nil
	}
	u, err := zookeeper.ParseURL(f.ZK)
	if err != nil {
		return nil, nil, err
	}
	conn, _, err := zk.Connect(u.Servers, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		return nil, nil, err
	}
	if store, err = service.NewZKStore(conn, u.Path); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return store, conn.Close, nil
}

// Run serves svc's HTTP API on -listen and runs it on the masters of
// -master, with -credential, until ctx ends.
func (f *Flags) Run(ctx context.Context, svc *service.Service, log *slog.Logger) error {
	ms, err := cli.ParseMasters(f.Masters, log)
	if err != nil {
		return err
	}
	defer ms.Close()
	opts := []scheduler.Option{ms.SchedulerOption()}
	if cred, err := f.Credential.Read(); err != nil {
		return err
	} else if cred != nil {
		opts = append(opts, scheduler.WithCredential(*cred))
	}
	ln, err := cli.Listen(f.Listen)
	if err != nil {
		return err
	}
	go func() { _ = cli.Serve(ctx, ln, svc.Handler(), nil, time.Second, log) }()
	log.Info("running "+f.Name, "api", "http://"+ln.Addr().String())
	return svc.Run(ctx, opts...)
}
