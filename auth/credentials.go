package auth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Credential is one principal and its secret.
type Credential struct {
	Principal string `json:"principal"`
	Secret    string `json:"secret"`
}

// String hides the secret, so that a credential logged by mistake
// leaks nothing.
func (c Credential) String() string { return "principal " + c.Principal }

// GoString hides the secret from %#v too.
func (c Credential) GoString() string {
	return "auth.Credential{Principal: " + fmt.Sprintf("%q", c.Principal) + "}"
}

// maxCredentialsFile bounds what ReadCredentials reads: a credentials
// file is configuration, not data.
const maxCredentialsFile = 16 << 20

// ErrNoCredentials: a credentials file is empty.
var ErrNoCredentials = errors.New("no credentials")

// ParseCredentials parses a credentials file's content: Mesos's JSON
// {"credentials":[{"principal":"p","secret":"s"}, …]}, or lines of
// "principal secret" (separated by white space; empty lines and lines
// starting with '#' skipped), the form older Mesos read. Every principal
// must be non-empty and appear once.
func ParseCredentials(data []byte) ([]Credential, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, ErrNoCredentials
	}
	var creds []Credential
	if trimmed[0] == '{' {
		var doc struct {
			Credentials []Credential `json:"credentials"`
		}
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("credentials: invalid JSON: %w", err)
		}
		creds = doc.Credentials
	} else {
		sc := bufio.NewScanner(bytes.NewReader(trimmed))
		sc.Buffer(make([]byte, 64<<10), maxCredentialsFile)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			f := strings.Fields(line)
			if len(f) != 2 {
				return nil, fmt.Errorf("credentials: line %d: want \"principal secret\", got %d fields", n, len(f))
			}
			creds = append(creds, Credential{Principal: f[0], Secret: f[1]})
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
	}
	if len(creds) == 0 {
		return nil, ErrNoCredentials
	}
	seen := make(map[string]bool, len(creds))
	for i, c := range creds {
		if c.Principal == "" {
			return nil, fmt.Errorf("credentials: entry %d has no principal", i+1)
		}
		if seen[c.Principal] {
			return nil, fmt.Errorf("credentials: principal %q appears twice", c.Principal)
		}
		seen[c.Principal] = true
	}
	return creds, nil
}

// ReadCredentials reads a credentials file named as Mesos's flags name
// one: a path, or "file://" and a path.
func ReadCredentials(path string) ([]Credential, error) {
	data, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	creds, err := ParseCredentials(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return creds, nil
}

// ReadCredential reads a file holding one credential, as the agent's and
// the schedulers' -credential flag names it: Mesos's JSON
// {"principal":"p","secret":"s"}, a single "principal secret" line, or a
// credentials file with exactly one entry.
func ReadCredential(path string) (Credential, error) {
	data, err := readConfig(path)
	if err != nil {
		return Credential{}, err
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' && !bytes.Contains(trimmed, []byte(`"credentials"`)) {
		var c Credential
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return Credential{}, fmt.Errorf("%s: invalid JSON: %w", path, err)
		}
		if c.Principal == "" {
			return Credential{}, fmt.Errorf("%s: the credential has no principal", path)
		}
		return c, nil
	}
	creds, err := ParseCredentials(data)
	if err != nil {
		return Credential{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(creds) != 1 {
		return Credential{}, fmt.Errorf("%s: want one credential, found %d", path, len(creds))
	}
	return creds[0], nil
}

// readConfig reads a configuration file named by a flag: a path, or
// "file://" and a path, as Mesos's flags accept.
func readConfig(path string) ([]byte, error) {
	path = strings.TrimPrefix(path, "file://")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, maxCredentialsFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if n > maxCredentialsFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxCredentialsFile)
	}
	return buf.Bytes(), nil
}
