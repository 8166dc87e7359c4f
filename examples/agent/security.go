package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/auth"
)

// securityFlags are the Mesos agent's authentication and authorization
// flags (the agent's own credential to the master is -credential, in
// package cli).
type securityFlags struct {
	credentials         string
	acls                string
	secretKey           string
	readOnly, readWrite bool
	executors           bool
}

func (s *securityFlags) register(fs *flag.FlagSet) {
	const creds = "`file` of the principals and secrets the agent's HTTP API accepts (Mesos's --http_credentials): JSON {\"credentials\":[{\"principal\":…,\"secret\":…}]} or \"principal secret\" lines"
	fs.StringVar(&s.credentials, "http-credentials", "", creds)
	fs.StringVar(&s.credentials, "credentials", "", "the same as -http-credentials")
	fs.StringVar(&s.acls, "acls", "", "Mesos's ACLs, as a `file` or the JSON itself (Mesos's --acls): what each principal may do with the operator API and the sandboxes")
	fs.StringVar(&s.secretKey, "executor-secret-key", "", "`file` whose content signs the tokens the agent gives its executors (Mesos's --executor_secret_key); readable by the agent only")
	fs.BoolVar(&s.readOnly, "authenticate-http-readonly", false, "the read-only endpoints (/state, /flags, /containers, /files, /metrics, …) need a credential from -http-credentials (Mesos's --authenticate_http_readonly)")
	fs.BoolVar(&s.readWrite, "authenticate-http-readwrite", false, "the operator API and /logging/toggle need a credential from -http-credentials (Mesos's --authenticate_http_readwrite)")
	fs.BoolVar(&s.executors, "authenticate-http-executors", false, "the executor API needs the token the agent gave the executor, naming it (Mesos's --authenticate_http_executors); needs -executor-secret-key")
}

// apply puts them into cfg.
func (s *securityFlags) apply(cfg *agent.Config) error {
	switch {
	case (s.readOnly || s.readWrite) && s.credentials == "":
		return errors.New("-authenticate-http-readonly and -authenticate-http-readwrite need -http-credentials")
	case s.executors && s.secretKey == "":
		return errors.New("-authenticate-http-executors needs -executor-secret-key")
	}
	if s.credentials != "" {
		creds, err := auth.ReadCredentials(s.credentials)
		if err != nil {
			return fmt.Errorf("-http-credentials: %w", err)
		}
		cfg.Authenticator = auth.NewBasic(creds)
	}
	cfg.AuthenticateHTTPReadOnly, cfg.AuthenticateHTTPReadWrite = s.readOnly, s.readWrite
	cfg.AuthenticateHTTPExecutors = s.executors
	if s.secretKey != "" {
		key, err := os.ReadFile(s.secretKey)
		if err != nil {
			return fmt.Errorf("-executor-secret-key: %w", err)
		}
		if len(key) == 0 {
			return errors.New("-executor-secret-key: the file is empty")
		}
		cfg.ExecutorSecretKey = key
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
