// Package operator is what the example operators (examples/etcd,
// examples/zookeeper) share around the service SDK: the flags every
// operator has (the master, the service's name, role and principal, each
// pod's resources, where the state is kept, the HTTP API's address) and
// running a service.Service on them.
//
// With -zk zk://host:port/znode the state is kept in the znode and the
// operator is highly available: every copy run with the same -zk
// contends for leadership at <znode>/leader (service.RunElected; payload
// service.Instance, naming the copy's -listen API). One leads; the
// others stand by, their API answering 307 to the leader's. The leader
// exits (status 1) the moment it loses its ZooKeeper session, after
// which its supervisor should start it again, as a standby; a standby
// takes over after the dead leader's session expires
// (-zk-session-timeout), from the state in the znode. With -state (a
// file) there is one copy only.
package operator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
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
	ZKSessionTimeout               time.Duration
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
	fs.StringVar(&f.ZK, "zk", "", "keep the operator's state in ZooKeeper instead, at `zk://host:port[,...]/znode`; copies run with the same -zk elect one leader at <znode>/leader, the others stand by")
	fs.DurationVar(&f.ZKSessionTimeout, "zk-session-timeout", 10*time.Second, "ZooKeeper session timeout with -zk: a standby takes over about this long after the leader dies")
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
	if u.User != "" {
		// The election's znodes, <znode> among them, are then writable by
		// this identity only.
		if err := conn.AddAuth("digest", []byte(u.User+":"+u.Password)); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("authenticating to ZooKeeper at %s: %w", u, err)
		}
	}
	if store, err = service.NewZKStore(conn, u.Path); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return store, conn.Close, nil
}

// Run serves svc's HTTP API on -listen and runs it on the masters of
// -master, with -credential, until ctx ends; with -zk, as one of the
// copies that elect their leader at <znode>/leader.
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
	api := advertised(ln.Addr())
	log.Info("running "+f.Name, "api", api)
	if f.ZK == "" {
		return svc.Run(ctx, opts...)
	}
	u, err := zookeeper.ParseURL(f.ZK)
	if err != nil {
		return err
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/leader"
	zopts := zookeeper.Options{SessionTimeout: f.ZKSessionTimeout, Validate: service.ValidatePayload(f.Name), Logger: log.With("component", "election")}
	contender, err := zookeeper.NewContender(u, zopts)
	if err != nil {
		return err
	}
	defer contender.Close() // resigns: a standby takes over at once
	detector, err := zookeeper.NewDetector(u, zopts)
	if err != nil {
		return err
	}
	defer detector.Close()
	return svc.RunElected(ctx, service.Election{Contender: contender, Detector: detector,
		Instance: service.Instance{API: api, Started: time.Now().UTC()}}, opts...)
}

// advertised is the URL of the API listening on addr, with the host's
// name for an unspecified address.
func advertised(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
