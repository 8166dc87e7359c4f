package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/master"
)

// securityFlags are Mesos's authentication, authorization and rate
// limiting flags.
type securityFlags struct {
	credentials         string
	acls                string
	frameworks, agents  bool
	readOnly, readWrite bool
	rateLimits          string
	maxClientRequests   int
	agentCredential     string
}

func (s *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.credentials, "credentials", "", "`file` of the principals and secrets the master accepts (Mesos's --credentials): JSON {\"credentials\":[{\"principal\":…,\"secret\":…}]} or \"principal secret\" lines")
	fs.StringVar(&s.acls, "acls", "", "Mesos's ACLs, as a `file` or the JSON itself (Mesos's --acls): what each principal may do")
	fs.BoolVar(&s.frameworks, "authenticate-frameworks", false, "the scheduler API needs a credential from -credentials (Mesos's --authenticate_frameworks / --authenticate_http_frameworks)")
	fs.BoolVar(&s.agents, "authenticate-agents", false, "agents need a credential from -credentials to register (Mesos's --authenticate_agents)")
	fs.BoolVar(&s.readOnly, "authenticate-http-readonly", false, "the read-only endpoints (/state, /frameworks, /tasks, /files, …) need a credential (Mesos's --authenticate_http_readonly)")
	fs.StringVar(&s.rateLimits, "rate-limits", "", "Mesos's --rate_limits, as a `file` or the JSON itself: {\"limits\":[{\"principal\":…,\"qps\":…,\"capacity\":…}],\"aggregate_default_qps\":…,\"aggregate_default_capacity\":…}; a request over its rate waits, and once capacity wait, the next is answered 429")
	fs.IntVar(&s.maxClientRequests, "max-client-requests", 0, "the most scheduler API requests (subscriptions included) one client, a principal or else an IP address, may have open at once; more are answered 429 (0: no bound)")
	fs.StringVar(&s.agentCredential, "agent-credential", "", "`file` with the principal and secret the master presents to agents whose read-only endpoints need authentication (-authenticate-http-readonly on the agent), when it forwards sandbox reads to them")
	fs.BoolVar(&s.readWrite, "authenticate-http-readwrite", false, "the operator API and the endpoints that change the cluster need a credential (Mesos's --authenticate_http_readwrite)")
}

// apply puts them into cfg.
func (s *securityFlags) apply(cfg *master.Config) error {
	on := s.frameworks || s.agents || s.readOnly || s.readWrite
	switch {
	case on && s.credentials == "":
		return errors.New("-authenticate-* needs -credentials")
	case s.credentials != "":
		creds, err := auth.ReadCredentials(s.credentials)
		if err != nil {
			return fmt.Errorf("-credentials: %w", err)
		}
		cfg.Authenticator = auth.NewBasic(creds)
	}
	cfg.AuthenticateFrameworks, cfg.AuthenticateAgents = s.frameworks, s.agents
	cfg.AuthenticateHTTPReadOnly, cfg.AuthenticateHTTPReadWrite = s.readOnly, s.readWrite
	if s.rateLimits != "" {
		data := []byte(s.rateLimits)
		if !strings.HasPrefix(strings.TrimSpace(s.rateLimits), "{") {
			var err error
			if data, err = os.ReadFile(strings.TrimPrefix(s.rateLimits, "file://")); err != nil {
				return fmt.Errorf("-rate-limits: %w", err)
			}
		}
		rl, err := master.ParseRateLimits(data)
		if err != nil {
			return fmt.Errorf("-rate-limits: %w", err)
		}
		cfg.RateLimits = rl
	}
	if s.maxClientRequests < 0 {
		return errors.New("-max-client-requests must not be negative")
	}
	cfg.MaxClientRequests = s.maxClientRequests
	if s.agentCredential != "" {
		c, err := auth.ReadCredential(s.agentCredential)
		if err != nil {
			return fmt.Errorf("-agent-credential: %w", err)
		}
		cfg.AgentCredential = &c
	}
	if s.acls != "" {
		acls, err := auth.ReadACLs(s.acls)
		if err != nil {
			return fmt.Errorf("-acls: %w", err)
		}
		cfg.Authorizer = auth.NewLocal(acls)
	}
	return nil
}
