package compat_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamReaderSeesChunks checks the suite's own stream reader against a
// hand-written chunked response: records are decoded whatever the framing,
// and every chunk that does not hold exactly one whole record is reported,
// so that the one-record-per-chunk facts can fail.
func TestStreamReaderSeesChunks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	rec := func(json string) string { return fmt.Sprintf("%d\n%s", len(json), json) }
	chunk := func(data string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(data), data) }
	a, b, c, d := rec(`{"type":"A"}`), rec(`{"type":"B"}`), rec(`{"type":"C"}`), rec(`{"type":"D"}`)
	body := chunk(a) + // good
		chunk(b+c) + // two records in one chunk
		chunk(d[:5]) + chunk(d[5:]) + // one record split over two chunks
		"0\r\n\r\n"
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
	}()

	s := openStream(t, ln.Addr().String(), "/", "{}", nil)
	require.Equal(t, http.StatusOK, s.status)
	require.Eventually(t, func() bool { _, err := s.snapshot(); return err != nil }, 10*time.Second, 10*time.Millisecond)
	evs := mustSnapshot(s)
	var types []string
	for _, e := range evs {
		types = append(types, e.typ())
	}
	assert.Equal(t, []string{"A", "B", "C", "D"}, types)
	assert.Equal(t, 4, s.chunkCount())
	v := s.chunkViolations()
	require.Len(t, v, 3, "%q", v)
	assert.True(t, strings.Contains(v[0], "holds 2 whole records"), v[0])
	assert.True(t, strings.Contains(v[1], "holds 0 whole records"), v[1])
	assert.True(t, strings.Contains(v[2], "continues a record"), v[2])
}
