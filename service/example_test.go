package service_test

import (
	"context"
	"log"
	"net/http"
	"path/filepath"
	"time"

	"github.com/apronhq/apron/scheduler"
	"github.com/apronhq/apron/service"
)

// An operator for a 3-member quorum service: the spec, a file store, the
// HTTP API, and Run on a master.
func Example() {
	spec := &service.Spec{
		Name: "kv", Role: "kv", Principal: "kv-operator",
		ReplaceAfter: 10 * time.Minute,
		Pods: []service.PodSpec{{
			Name: "member", Count: 3, CPUs: 1, Mem: 512,
			Ports:   []service.PortSpec{{Name: "client"}, {Name: "peer"}},
			Volumes: []service.VolumeSpec{{Path: "data", Size: 1024}},
			URIs:    []string{"http://127.0.0.1:8000/kv.tgz"},
			Configs: []service.ConfigSpec{{Path: "kv.conf", Template: `name = "{{.Pod}}"
peers = [{{range $i, $p := .Peers}}{{if $i}}, {{end}}"{{$p.Addr "peer"}}"{{end}}]
`}},
			Command:   "exec ./kv --config kv.conf --data data --port $PORT_CLIENT",
			Readiness: &service.CheckSpec{HTTPPort: "client", HTTPPath: "/ready"},
			Health:    &service.HealthSpec{CheckSpec: service.CheckSpec{TCPPort: "client"}, ConsecutiveFailures: 3},
			Placement: service.Placement{MaxPerHost: 1, SpreadBy: "zone"},
			Quorum:    true,
		}},
	}
	ctx := context.Background()
	svc, err := service.New(ctx, service.Config{Spec: spec, Store: service.NewFileStore(filepath.Join("/var/lib/kv", "state.json"))})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.ListenAndServe("127.0.0.1:8080", svc.Handler()) }()
	if err := svc.Run(ctx, scheduler.WithMasterURL("http://127.0.0.1:5050")); err != nil {
		log.Fatal(err)
	}
}
