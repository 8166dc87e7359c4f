package image

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfigKeychain finds a registry's credentials in a docker
// config.json, read at every lookup so that a changed file takes effect
// without a restart. Only the "auths" section is read: credential helpers
// ("credsStore", "credHelpers") would mean running programs named by the
// file, which the agent does not do.
type dockerConfigKeychain struct{ path string }

type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// Resolve implements authn.Keychain.
func (k dockerConfigKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if k.path == "" {
		return authn.Anonymous, nil
	}
	b, err := os.ReadFile(k.path)
	if errors.Is(err, os.ErrNotExist) {
		return authn.Anonymous, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	var cfg dockerConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("docker config %s: %w", k.path, err)
	}
	reg := res.RegistryStr()
	for key, a := range cfg.Auths {
		if !sameRegistry(key, reg) {
			continue
		}
		ac := authn.AuthConfig{
			Username:      a.Username,
			Password:      a.Password,
			IdentityToken: a.IdentityToken,
			RegistryToken: a.RegistryToken,
		}
		if a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("docker config %s: auth of %s: %w", k.path, key, err)
			}
			user, pass, ok := strings.Cut(string(dec), ":")
			if !ok {
				return nil, fmt.Errorf("docker config %s: auth of %s is not user:password", k.path, key)
			}
			ac.Username, ac.Password = user, pass
		}
		return authn.FromConfig(ac), nil
	}
	return authn.Anonymous, nil
}

// sameRegistry compares a config key ("host:port", "https://host/v1/")
// with a registry host, as docker does (Docker Hub under its legacy name).
func sameRegistry(key, reg string) bool {
	k := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	k, _, _ = strings.Cut(k, "/")
	if k == reg {
		return true
	}
	hub := func(h string) bool { return h == "index.docker.io" || h == "docker.io" || h == "registry-1.docker.io" }
	return hub(k) && hub(reg)
}
