package cli

import (
	"flag"
	"fmt"

	"github.com/apronhq/apron/auth"
)

// Credential is the -credential flag of the binaries that connect to a
// master (agent, batch, loadgen): a file with their principal and
// secret, as Mesos's --credential names one, so that the secret never
// shows on a command line.
type Credential struct {
	Path string
}

// Register adds -credential to fs.
func (c *Credential) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.Path, "credential", "", "`file` with the principal and secret to authenticate to the master with: Mesos's JSON {\"principal\":\"…\",\"secret\":\"…\"} or one \"principal secret\" line")
}

// Read returns the credential, or nil without -credential.
func (c *Credential) Read() (*auth.Credential, error) {
	if c.Path == "" {
		return nil, nil
	}
	cred, err := auth.ReadCredential(c.Path)
	if err != nil {
		return nil, fmt.Errorf("-credential: %w", err)
	}
	return &cred, nil
}
