package service

import (
	"fmt"
	"sort"
	"strings"
)

// TemplateData is what a pod's command, environment, config files and
// command check are rendered with (Go text/template, with one function
// added: add, as in {{add .Index 1}}).
type TemplateData struct {
	Service string
	Pod     string // the pod's name, "<type>-<index>"
	Type    string
	Index   int
	Host    string            // the agent's hostname
	Ports   map[string]uint64 // the pod's ports by name
	// Peers are the pods of the same type, in index order, this one
	// included; Host and Ports are empty for a pod not yet placed.
	Peers []Peer
}

// Peer is another pod of the same type.
type Peer struct {
	Pod   string
	Index int
	Host  string
	Ports map[string]uint64
}

// Addr is host:port for the named port, or "" when unknown.
func (p Peer) Addr(port string) string {
	if p.Host == "" || p.Ports[port] == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d", p.Host, p.Ports[port])
}

func render(name, text string, data *TemplateData) (string, error) {
	t, err := parseTemplate(name, text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("rendering %s: %w", name, err)
	}
	return b.String(), nil
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// podCommand is the shell command a pod's task runs: write the config
// files, then run the command.
func podCommand(p *PodSpec, data *TemplateData) (string, error) {
	var b strings.Builder
	for _, c := range p.Configs {
		text, err := render(c.Path, c.Template, data)
		if err != nil {
			return "", err
		}
		if i := strings.LastIndex(c.Path, "/"); i > 0 {
			fmt.Fprintf(&b, "mkdir -p %s && ", shellQuote(c.Path[:i]))
		}
		fmt.Fprintf(&b, "printf '%%s' %s > %s || exit 1\n", shellQuote(text), shellQuote(c.Path))
	}
	cmd, err := render("command", p.Command, data)
	if err != nil {
		return "", err
	}
	b.WriteString(cmd)
	return b.String(), nil
}

func envName(port string) string {
	return strings.ToUpper(strings.ReplaceAll(port, "-", "_"))
}

// podEnv is the task's environment: the spec's, rendered, and the pod's
// identity and ports.
func podEnv(p *PodSpec, data *TemplateData) (map[string]string, error) {
	env := map[string]string{
		"SERVICE_NAME": data.Service,
		"POD_NAME":     data.Pod,
		"POD_INDEX":    fmt.Sprint(data.Index),
	}
	for name, port := range data.Ports {
		env["PORT_"+envName(name)] = fmt.Sprint(port)
	}
	keys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := render(k, p.Env[k], data)
		if err != nil {
			return nil, err
		}
		env[k] = v
	}
	return env, nil
}
