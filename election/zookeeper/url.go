package zookeeper

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ErrBadURL is wrapped by every error ParseURL returns.
var ErrBadURL = errors.New("zookeeper: bad URL")

// URL is a parsed zk:// URL: zk://[user:password@]host1:port1,host2:port2/path,
// as Mesos's --zk flag takes it.
type URL struct {
	// Servers are host:port pairs.
	Servers []string
	// Path is the election's znode, absolute, without a trailing slash
	// ("/" for the root).
	Path string
	// User and Password, when User is set, authenticate the session with
	// ZooKeeper's digest scheme; znodes are then created readable by
	// everyone and writable by their creator only, as Mesos does.
	User, Password string
}

// ParseURL parses and checks a zk:// URL.
func ParseURL(s string) (URL, error) {
	bad := func(format string, args ...any) (URL, error) {
		return URL{}, fmt.Errorf("%w %q: %s", ErrBadURL, redact(s), fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(s, "zk://")
	if !ok {
		return bad("want zk://host:port[,host:port...]/path")
	}
	var u URL
	hosts, path, hasPath := strings.Cut(rest, "/")
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		cred := hosts[:at]
		hosts = hosts[at+1:]
		user, pass, ok := strings.Cut(cred, ":")
		if !ok || user == "" {
			return bad("credentials must be user:password")
		}
		u.User, u.Password = user, pass
	}
	if hosts == "" {
		return bad("no servers")
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			return bad("server %q: want host:port", h)
		}
		if host == "" {
			return bad("server %q: empty host", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return bad("server %q: bad port", h)
		}
		u.Servers = append(u.Servers, h)
	}
	if !hasPath {
		path = ""
	}
	path = "/" + strings.TrimRight(path, "/")
	for _, part := range strings.Split(path[1:], "/") {
		if path == "/" {
			break
		}
		if part == "" || part == "." || part == ".." {
			return bad("path %q: empty, . or .. component", path)
		}
	}
	if strings.ContainsAny(path, "\x00") {
		return bad("path contains NUL")
	}
	u.Path = path
	return u, nil
}

// String gives the URL back, with the password masked, for logs.
func (u URL) String() string {
	cred := ""
	if u.User != "" {
		cred = u.User + ":***@"
	}
	return "zk://" + cred + strings.Join(u.Servers, ",") + u.Path
}

func redact(s string) string {
	rest, ok := strings.CutPrefix(s, "zk://")
	if !ok {
		return s
	}
	hosts, path, hasPath := strings.Cut(rest, "/")
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		user, _, _ := strings.Cut(hosts[:at], ":")
		hosts = user + ":***@" + hosts[at+1:]
	}
	if hasPath {
		return "zk://" + hosts + "/" + path
	}
	return "zk://" + hosts
}
