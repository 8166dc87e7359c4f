package zookeeper_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/election/zookeeper"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		in   string
		want zookeeper.URL
	}{
		{"zk://127.0.0.1:2181/apron", zookeeper.URL{Servers: []string{"127.0.0.1:2181"}, Path: "/apron"}},
		{"zk://h1:2181,h2:2182/a/b/", zookeeper.URL{Servers: []string{"h1:2181", "h2:2182"}, Path: "/a/b"}},
		{"zk://u:p@w@h1:2181/m", zookeeper.URL{Servers: []string{"h1:2181"}, Path: "/m", User: "u", Password: "p@w"}},
		{"zk://[::1]:2181", zookeeper.URL{Servers: []string{"[::1]:2181"}, Path: "/"}},
		{"zk://u:@h:1/", zookeeper.URL{Servers: []string{"h:1"}, Path: "/", User: "u"}},
	}
	for _, g := range good {
		got, err := zookeeper.ParseURL(g.in)
		require.NoError(t, err, g.in)
		require.Equal(t, g.want, got, g.in)
	}
	bad := []string{
		"", "http://h:2181/a", "zk://", "zk:///a", "zk://h/a", "zk://h:x/a", "zk://h:0/a",
		"zk://h:70000/a", "zk://h:1,/a", "zk://:1/a", "zk://h:1//a", "zk://h:1/a/../b",
		"zk://nopass@h:1/a", "zk://:p@h:1/a", "zk://h:1/a\x00b",
	}
	for _, b := range bad {
		_, err := zookeeper.ParseURL(b)
		require.ErrorIs(t, err, zookeeper.ErrBadURL, "%q", b)
	}
	_, err := zookeeper.ParseURL("zk://u:hunter2@h:x/a")
	require.NotContains(t, err.Error(), "hunter2", "errors must not leak the password")
}

func TestURLStringMasksPassword(t *testing.T) {
	u, err := zookeeper.ParseURL("zk://u:hunter2@h1:1,h2:2/a")
	require.NoError(t, err)
	require.Equal(t, "zk://u:***@h1:1,h2:2/a", u.String())
}
