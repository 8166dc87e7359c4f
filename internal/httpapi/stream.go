package httpapi

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/recordio"
)

// ServeStream answers a subscription: 200, the stream ID header, then each
// event of events as a RecordIO record in c's encoding and, when heartbeat
// is not nil, heartbeat() whenever no event was sent for interval. It
// returns when events is closed (the producer ended the stream), when the
// client goes away, or when a write fails. Heartbeats are timed with the
// real clock: they exist for intermediaries on the network, which live in
// real time.
//
// Every record is one HTTP chunk, as Mesos writes its streams: some
// clients parse a chunk as exactly one record and drop whatever follows
// it, so an executor handed SUBSCRIBED and LAUNCH in one chunk would
// never start its task. Chunks still leave in bursts: over HTTP/1.1 the
// stream writes its own chunked framing on the connection and flushes the
// socket only when no more events are queued, so a burst of status
// updates costs one write, not one per event. Where it cannot take the
// connection over (HTTP/1.0, HTTP/2, a test's recorder) it flushes each
// record, which net/http sends as one chunk (or one HTTP/2 frame).
func ServeStream[E proto.Message](w http.ResponseWriter, r *http.Request, c codec.Codec, streamID string, events <-chan E, heartbeat func() E, interval time.Duration) {
	h := w.Header()
	h.Set("Content-Type", c.MediaType())
	h.Set("Cache-Control", "no-cache")
	if streamID != "" {
		h.Set(StreamIDHeader, streamID)
	}
	out, ctx := openStream(w, r)
	defer out.close()

	var tick <-chan time.Time
	if heartbeat != nil && interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	write := func(ev E, more bool) bool {
		b, err := c.Marshal(ev)
		if err != nil {
			return false
		}
		return out.writeRecord(b, !more) == nil
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok || !write(ev, len(events) > 0) {
				return
			}
		case <-tick:
			if !write(heartbeat(), false) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// recordStream writes a stream's records, each as one HTTP chunk.
type recordStream interface {
	// writeRecord writes one record as one chunk, and sends what is
	// buffered when flush is set.
	writeRecord(p []byte, flush bool) error
	// close ends the stream.
	close()
}

// openStream answers 200 with w's headers and returns where the records go
// and a context that ends when the client goes away.
func openStream(w http.ResponseWriter, r *http.Request) (recordStream, context.Context) {
	if r.ProtoAtLeast(1, 1) && r.ProtoMajor == 1 {
		if s, ctx, err := hijackStream(w, r); err == nil {
			return s, ctx
		}
	}
	w.WriteHeader(http.StatusOK)
	s := &flushedStream{rw: recordio.NewWriter(w)}
	_ = s.rw.Flush() // the headers, so the client knows it is subscribed
	return s, r.Context()
}

// flushedStream leaves the chunking to net/http and flushes every record,
// which makes it a chunk of its own.
type flushedStream struct{ rw *recordio.Writer }

func (s *flushedStream) writeRecord(p []byte, _ bool) error { return s.rw.WriteRecord(p) }
func (s *flushedStream) close()                             {}

// chunkedStream owns a hijacked HTTP/1.1 connection and writes the
// response's chunked framing itself, one record per chunk, buffered until
// a flush.
type chunkedStream struct {
	conn   net.Conn
	bw     *bufio.Writer
	cancel context.CancelFunc
	hdr    []byte // scratch for the chunk and record headers
}

// hijackStream takes the connection over and writes the response head.
func hijackStream(w http.ResponseWriter, r *http.Request) (*chunkedStream, context.Context, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h := w.Header().Clone()
	h.Del("Content-Length")
	h.Set("Transfer-Encoding", "chunked")
	if h.Get("Date") == "" {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	bw := brw.Writer
	_, _ = io.WriteString(bw, "HTTP/1.1 200 OK\r\n")
	_ = h.Write(bw)
	_, _ = io.WriteString(bw, "\r\n")
	if err := bw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	// The server no longer watches a hijacked connection, so a read that
	// ends (the client closed it, or sent something a subscriber never
	// sends) is how the stream learns the client went away.
	ctx, cancel := context.WithCancel(r.Context())
	go func() {
		_, _ = io.Copy(io.Discard, brw.Reader)
		cancel()
	}()
	return &chunkedStream{conn: conn, bw: bw, cancel: cancel}, ctx, nil
}

func (s *chunkedStream) writeRecord(p []byte, flush bool) error {
	rec := strconv.AppendInt(s.hdr[:0], int64(len(p)), 10)
	rec = append(rec, '\n')
	n := len(rec)
	chunk := strconv.AppendInt(rec, int64(n+len(p)), 16)
	chunk = append(chunk, '\r', '\n')
	s.hdr = chunk
	if _, err := s.bw.Write(chunk[n:]); err != nil { // chunk size
		return err
	}
	if _, err := s.bw.Write(rec[:n]); err != nil { // record length
		return err
	}
	if _, err := s.bw.Write(p); err != nil {
		return err
	}
	if _, err := s.bw.WriteString("\r\n"); err != nil {
		return err
	}
	if flush {
		return s.bw.Flush()
	}
	return nil
}

// close ends the chunked body and the connection: a stream's end is the
// end of its request, and the client reconnects for a new one.
func (s *chunkedStream) close() {
	_, _ = s.bw.WriteString("0\r\n\r\n")
	_ = s.bw.Flush()
	_ = s.conn.Close()
	s.cancel()
}
