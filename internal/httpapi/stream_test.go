package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/httpapi"
)

// streamServer serves a stream of the events queued on events before the
// request arrives (a burst), then whatever follows; done is closed when
// ServeStream returns.
func streamServer(t *testing.T, events chan *schedulerpb.Event, done chan struct{}) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		httpapi.ServeStream(w, r, codec.JSON, "stream-1", events, nil, 0)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// rawSubscribe sends a request by hand and returns the connection, a
// reader past the response head, and the head.
func rawSubscribe(t *testing.T, srv *httptest.Server, proto string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /api/v1/scheduler %s\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", proto)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return conn, br, resp
}

// readChunk reads one chunk of a chunked body as it is on the wire; the
// last chunk is empty.
func readChunk(t *testing.T, br *bufio.Reader) []byte {
	t.Helper()
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(line, "\r\n"), "chunk size line %q", line)
	n, err := strconv.ParseInt(strings.TrimSuffix(line, "\r\n"), 16, 64)
	require.NoError(t, err, "chunk size line %q", line)
	data := make([]byte, n+2)
	_, err = io.ReadFull(br, data)
	require.NoError(t, err)
	require.Equal(t, "\r\n", string(data[n:]), "a chunk ends with CRLF")
	return data[:n]
}

// oneRecord checks that chunk is exactly one RecordIO record and returns it.
func oneRecord(t *testing.T, chunk []byte) []byte {
	t.Helper()
	i := strings.IndexByte(string(chunk), '\n')
	require.Positive(t, i, "a record starts with its length: %q", chunk)
	n, err := strconv.Atoi(string(chunk[:i]))
	require.NoError(t, err)
	require.Equal(t, len(chunk)-i-1, n, "the chunk holds exactly one record, as Mesos writes them")
	return chunk[i+1:]
}

func event(i int, pad int) *schedulerpb.Event {
	msg := fmt.Sprintf("event %d %s", i, strings.Repeat("x", pad))
	return &schedulerpb.Event{Type: schedulerpb.Event_ERROR.Enum(), Error: &schedulerpb.Event_Error{Message: msg}}
}

// TestStreamOneRecordPerChunk: a burst of events, small and over every
// buffer size on the way (net/http's 2 KB before chunking, its 4 KB
// connection buffer), arrives as one chunk per record, in order, and the
// stream's end is the chunked body's end.
func TestStreamOneRecordPerChunk(t *testing.T) {
	pads := []int{0, 10, 2040, 5000, 70000, 1, 0}
	events := make(chan *schedulerpb.Event, len(pads))
	for i, pad := range pads {
		events <- event(i, pad)
	}
	done := make(chan struct{})
	srv := streamServer(t, events, done)
	_, br, resp := rawSubscribe(t, srv, "HTTP/1.1")
	assert.Equal(t, "stream-1", resp.Header.Get(httpapi.StreamIDHeader))
	assert.Equal(t, codec.MediaTypeJSON, resp.Header.Get("Content-Type"))
	assert.Equal(t, []string{"chunked"}, resp.TransferEncoding)

	for i, pad := range pads {
		rec := oneRecord(t, readChunk(t, br))
		var ev schedulerpb.Event
		require.NoError(t, codec.UnmarshalJSON(rec, &ev))
		assert.Equal(t, event(i, pad).Error.Message, ev.GetError().Message)
	}
	events <- event(99, 3) // after the burst, alone
	assert.Equal(t, "event 99 xxx", func() string {
		var ev schedulerpb.Event
		require.NoError(t, codec.UnmarshalJSON(oneRecord(t, readChunk(t, br)), &ev))
		return ev.GetError().Message
	}())
	close(events)
	assert.Empty(t, readChunk(t, br), "the stream ends with the last chunk")
	<-done
}

// TestStreamEndsWhenClientLeaves: a subscriber that closes its connection
// ends ServeStream, though no event is written to notice it by.
func TestStreamEndsWhenClientLeaves(t *testing.T) {
	events := make(chan *schedulerpb.Event, 1)
	events <- event(0, 0)
	done := make(chan struct{})
	srv := streamServer(t, events, done)
	conn, br, _ := rawSubscribe(t, srv, "HTTP/1.1")
	oneRecord(t, readChunk(t, br))
	require.NoError(t, conn.Close())
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ServeStream still running after its client left")
	}
}

// TestStreamHTTP10: a client that cannot take chunks still gets each
// record, the stream delimited by the connection's end.
func TestStreamHTTP10(t *testing.T) {
	events := make(chan *schedulerpb.Event, 2)
	events <- event(0, 0)
	events <- event(1, 3000)
	close(events)
	done := make(chan struct{})
	srv := streamServer(t, events, done)
	_, br, _ := rawSubscribe(t, srv, "HTTP/1.0")
	body, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Contains(t, string(body), "event 0")
	assert.Contains(t, string(body), "event 1 xxx")
	<-done
}

// TestStreamClientDecodes: Apron's own client reads the stream.
func TestStreamClientDecodes(t *testing.T) {
	events := make(chan *schedulerpb.Event, 3)
	events <- &schedulerpb.Event{Type: schedulerpb.Event_SUBSCRIBED.Enum(),
		Subscribed: &schedulerpb.Event_Subscribed{FrameworkID: mesospb.FrameworkID{Value: "f1"}}}
	events <- event(1, 9000)
	done := make(chan struct{})
	srv := streamServer(t, events, done)
	s, err := (&httpapi.Client{Codec: codec.JSON}).Subscribe(t.Context(), srv.URL, subscribeCall())
	require.NoError(t, err)
	var ev schedulerpb.Event
	require.NoError(t, s.Next(&ev))
	assert.Equal(t, "f1", ev.GetSubscribed().FrameworkID.Value)
	require.NoError(t, s.Next(&ev))
	assert.Len(t, ev.GetError().Message, len("event 1 ")+9000)
	close(events)
	assert.ErrorIs(t, s.Next(&ev), io.EOF)
	<-done
}

// TestBatchedStream: Apron's own peers get a burst in few writes, and
// every record intact.
func TestBatchedStream(t *testing.T) {
	pads := []int{0, 10, 2040, 5000, 1}
	events := make(chan *schedulerpb.Event, len(pads))
	for i, pad := range pads {
		events <- event(i, pad)
	}
	close(events)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpapi.ServeBatchedStream(w, r, codec.JSON, "s", events, nil, 0)
	}))
	defer srv.Close()
	s, err := (&httpapi.Client{Codec: codec.JSON}).Subscribe(t.Context(), srv.URL, subscribeCall())
	require.NoError(t, err)
	for i, pad := range pads {
		var ev schedulerpb.Event
		require.NoError(t, s.Next(&ev))
		assert.Equal(t, event(i, pad).Error.Message, ev.GetError().Message)
	}
	var ev schedulerpb.Event
	assert.ErrorIs(t, s.Next(&ev), io.EOF)
}
