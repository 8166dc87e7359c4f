package zktest_test

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/zktest"
)

func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write([]byte(sc.Text() + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string, wait time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestProxyBlocksAndUnblocks(t *testing.T) {
	p := zktest.NewProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	got, err := roundTrip(c, r, "one", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "one", got)

	p.Block()
	_, err = roundTrip(c, r, "two", 200*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne, "a blocked connection neither answers nor closes")
	require.True(t, ne.Timeout())

	// New connections are held too.
	c2, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c2.Close()
	_, err = roundTrip(c2, bufio.NewReader(c2), "three", 200*time.Millisecond)
	require.ErrorAs(t, err, &ne)

	// Unblocking closes what was held and forwards new connections.
	p.Unblock()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = r.ReadString('\n')
	require.Error(t, err)
	c3, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c3.Close()
	got, err = roundTrip(c3, bufio.NewReader(c3), "four", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "four", got)
}

func TestProxyCloseConns(t *testing.T) {
	p := zktest.NewProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	_, err = roundTrip(c, r, "one", 5*time.Second)
	require.NoError(t, err)
	p.CloseConns()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = r.ReadString('\n')
	require.Error(t, err)
	var ne net.Error
	if errors.As(err, &ne) {
		require.False(t, ne.Timeout(), "closed, not blackholed")
	}
}

func TestServerStartsAndRestarts(t *testing.T) {
	s := zktest.Start(t)
	require.True(t, zktest.Serving(s.Addr))
	s.Stop()
	require.False(t, zktest.Serving(s.Addr))
	s.Restart()
	require.True(t, zktest.Serving(s.Addr))
}

func TestEnsemble(t *testing.T) {
	zktest.RequireEnsembleTests(t)
	e := zktest.StartEnsemble(t, 3)
	// The quorum may still be settling when every server serves.
	var modes map[string]int
	require.Eventually(t, func() bool {
		modes = map[string]int{}
		for _, s := range e.Servers {
			out, err := zktest.FourLetter(s.Addr, "srvr")
			if err != nil {
				return false
			}
			for _, l := range strings.Split(out, "\n") {
				if m, ok := strings.CutPrefix(l, "Mode: "); ok {
					modes[m]++
				}
			}
		}
		return modes["leader"] == 1 && modes["follower"] == 2
	}, 30*time.Second, 100*time.Millisecond, "modes: %v", modes)
}
