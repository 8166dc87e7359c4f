package compat_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// client never follows redirects: /master/redirect's answer is a fact.
var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// get returns a GET's response (body read) or fails the test.
func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "GET %s", url)
	return resp, body
}

// getJSON GETs url, requires 200 and a JSON body, and decodes it.
func getJSON(t *testing.T, url string) any {
	t.Helper()
	resp, body := get(t, url)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, body)
	var v any
	require.NoError(t, json.Unmarshal(body, &v), "GET %s: not JSON: %.300s", url, body)
	return v
}

// postJSON POSTs a JSON body with Content-Type and Accept application/json
// and the given extra headers; it returns the status (0 if the request
// failed) and the body.
func postJSON(url, body string, headers map[string]string) (int, []byte) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func decodeObject(b []byte) (map[string]any, error) {
	var m map[string]any
	err := json.Unmarshal(b, &m)
	return m, err
}

// dig walks a decoded JSON value by object keys and array indexes; nil
// when a step is missing.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := dig(v, path...).(string)
	return s
}

func num(v any, path ...any) float64 {
	f, _ := dig(v, path...).(float64)
	return f
}

func list(v any, path ...any) []any {
	a, _ := dig(v, path...).([]any)
	return a
}

// event is one RecordIO record of a stream, decoded.
type event struct {
	raw []byte
	obj map[string]any
}

func (e event) typ() string { return str(e.obj, "type") }

// stream is a streaming response (SUBSCRIBE on the scheduler, executor or
// operator API) read straight off the TCP connection: the HTTP chunked
// framing is parsed here, because Go's HTTP client hides chunk boundaries
// and Mesos's are part of the protocol clients rely on (one RecordIO record
// per chunk).
type stream struct {
	conn   net.Conn
	status int
	header http.Header

	mu         sync.Mutex
	events     []event
	chunks     int
	violations []string // chunks that did not hold exactly one record
	err        error    // why reading stopped
	change     chan struct{}
}

// openStream sends a POST with body and reads the response's head. When the
// answer is a chunked stream, a goroutine reads it until the connection
// closes; the connection is closed when the test ends.
func openStream(t *testing.T, addr, path, body string, headers map[string]string) *stream {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: %d\r\n",
		path, addr, len(body))
	for k, v := range headers {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	req.WriteString("\r\n")
	req.WriteString(body)
	_, err = conn.Write(req.Bytes())
	require.NoError(t, err)

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
	br := bufio.NewReader(conn)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	require.NoError(t, err, "reading the status line of POST %s", path)
	parts := strings.SplitN(line, " ", 3)
	require.GreaterOrEqual(t, len(parts), 2, "status line %q", line)
	status, err := strconv.Atoi(parts[1])
	require.NoError(t, err, "status line %q", line)
	mh, err := tp.ReadMIMEHeader()
	require.NoError(t, err, "reading the header of POST %s", path)
	require.NoError(t, conn.SetReadDeadline(time.Time{}))

	s := &stream{conn: conn, status: status, header: http.Header(mh), change: make(chan struct{})}
	if status == http.StatusOK && strings.EqualFold(s.header.Get("Transfer-Encoding"), "chunked") {
		go s.readChunks(br)
	} else {
		go s.readBody(br)
	}
	return s
}

// readBody keeps a non-streaming answer's body as one raw event.
func (s *stream) readBody(br *bufio.Reader) {
	n, _ := strconv.Atoi(s.header.Get("Content-Length"))
	b := make([]byte, n)
	_, err := io.ReadFull(br, b)
	s.mu.Lock()
	s.events = append(s.events, event{raw: b})
	s.err = err
	s.signal()
	s.mu.Unlock()
}

// readChunks parses HTTP/1.1 chunked framing (RFC 9112 section 7.1) and,
// inside it, RecordIO ("<length>\n<bytes>", src/common/recordio.hpp;
// 3rdparty/stout/include/stout/recordio.hpp). Records are decoded across
// chunk boundaries whatever the framing, so that the other facts can still
// be checked; every chunk that does not hold exactly one whole record is
// noted as a violation.
func (s *stream) readChunks(br *bufio.Reader) {
	var pending []byte // record bytes carried from earlier chunks
	fail := func(err error) {
		s.mu.Lock()
		s.err = err
		s.signal()
		s.mu.Unlock()
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			fail(err)
			return
		}
		sizeText := strings.TrimSpace(line)
		if i := strings.IndexByte(sizeText, ';'); i >= 0 {
			sizeText = sizeText[:i] // chunk extensions
		}
		size, err := strconv.ParseUint(sizeText, 16, 32)
		if err != nil {
			fail(fmt.Errorf("bad chunk size line %q", line))
			return
		}
		if size == 0 {
			fail(io.EOF) // last chunk: the stream ended
			return
		}
		chunk := make([]byte, size)
		if _, err := io.ReadFull(br, chunk); err != nil {
			fail(err)
			return
		}
		if crlf, err := br.Peek(2); err != nil || string(crlf) != "\r\n" {
			fail(fmt.Errorf("chunk not followed by CRLF"))
			return
		}
		_, _ = br.Discard(2)

		var violation string
		if len(pending) > 0 {
			violation = fmt.Sprintf("chunk %d continues a record begun in an earlier chunk", s.chunkCount()+1)
		}
		pending = append(pending, chunk...)
		var recs []event
		for {
			rec, rest, ok, err := nextRecord(pending)
			if err != nil {
				fail(err)
				return
			}
			if !ok {
				break
			}
			pending = rest
			recs = append(recs, rec)
		}
		if violation == "" && (len(recs) != 1 || len(pending) != 0) {
			violation = fmt.Sprintf("chunk %d holds %d whole records and %d bytes of another (%.120q)",
				s.chunkCount()+1, len(recs), len(pending), chunk)
		}
		s.mu.Lock()
		s.chunks++
		if violation != "" {
			s.violations = append(s.violations, violation)
		}
		s.events = append(s.events, recs...)
		s.signal()
		s.mu.Unlock()
	}
}

// nextRecord decodes one RecordIO record off the front of b: ok is false
// when b does not hold a whole one yet.
func nextRecord(b []byte) (event, []byte, bool, error) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return event{}, b, false, nil
	}
	n, err := strconv.ParseUint(string(b[:nl]), 10, 64)
	if err != nil || n == 0 {
		// Mesos: the length "will never be 0" (docs/scheduler-http-api.md).
		return event{}, nil, false, fmt.Errorf("bad RecordIO length %q", b[:nl])
	}
	if uint64(len(b)-nl-1) < n {
		return event{}, b, false, nil
	}
	raw := b[nl+1 : nl+1+int(n)]
	e := event{raw: append([]byte(nil), raw...)}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return event{}, nil, false, fmt.Errorf("record is not a JSON object: %v: %.200q", err, raw)
	}
	e.obj = m
	return e, b[nl+1+int(n):], true, nil
}

func (s *stream) chunkCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chunks
}

// signal wakes waiters; s.mu held.
func (s *stream) signal() {
	close(s.change)
	s.change = make(chan struct{})
}

// snapshot returns the events so far and the read error, if any.
func (s *stream) snapshot() ([]event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...), s.err
}

func (s *stream) chunkViolations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// waitFor returns the index and the first event at or after index from
// that satisfies match, failing the test after d or when the stream ends.
func (s *stream) waitFor(t *testing.T, from int, d time.Duration, what string, match func(event) bool) (int, event) {
	t.Helper()
	deadline := time.After(d)
	for {
		s.mu.Lock()
		for i := from; i < len(s.events); i++ {
			if match(s.events[i]) {
				e := s.events[i]
				s.mu.Unlock()
				return i, e
			}
		}
		change, err := s.change, s.err
		s.mu.Unlock()
		if err != nil {
			t.Fatalf("stream ended (%v) before %s", err, what)
		}
		select {
		case <-change:
		case <-deadline:
			evs, _ := s.snapshot()
			t.Fatalf("no %s within %v; %d events: %s", what, d, len(evs), summary(evs))
		}
	}
}

func (s *stream) waitType(t *testing.T, from int, typ string) (int, event) {
	t.Helper()
	return s.waitFor(t, from, wait, typ, func(e event) bool { return e.typ() == typ })
}

// summary lists events' types, for failure messages.
func summary(evs []event) string {
	var b strings.Builder
	for i, e := range evs {
		if i > 0 {
			b.WriteString(" ")
		}
		if e.obj == nil {
			fmt.Fprintf(&b, "%.200q", e.raw)
			continue
		}
		b.WriteString(e.typ())
	}
	return b.String()
}
