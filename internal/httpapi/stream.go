package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
)

// ServeStream answers a subscription: 200, the stream ID header, then each
// event of events as a RecordIO record in c's encoding and, when heartbeat
// is not nil, heartbeat() whenever no event was sent for interval. It
// returns when events is closed (the producer ended the stream), when the
// client goes away, or when a write fails. Heartbeats are timed with the
// real clock: they exist for intermediaries on the network, which live in
// real time.
//
// Every record is one HTTP chunk, flushed as it is written, as Mesos
// writes its streams: some Mesos clients parse a chunk as exactly one
// record and drop whatever follows it, so an executor handed SUBSCRIBED and
// LAUNCH in one chunk would never start its task. Each record therefore
// goes to net/http in one write followed by a flush, which net/http sends
// as one chunk (one frame over HTTP/2), whatever its size.
func ServeStream[E proto.Message](w http.ResponseWriter, r *http.Request, c codec.Codec, streamID string, events <-chan E, heartbeat func() E, interval time.Duration) {
	serveStream(w, r, c, streamID, events, heartbeat, interval, false)
}

// ServeBatchedStream is ServeStream for Apron's own peers, whose readers
// take records from the byte stream whatever its chunks: a burst of
// events (a batch of launches for an agent) leaves in one write, flushed
// once the queue is empty, instead of one write per event.
func ServeBatchedStream[E proto.Message](w http.ResponseWriter, r *http.Request, c codec.Codec, streamID string, events <-chan E, heartbeat func() E, interval time.Duration) {
	serveStream(w, r, c, streamID, events, heartbeat, interval, true)
}

func serveStream[E proto.Message](w http.ResponseWriter, r *http.Request, c codec.Codec, streamID string, events <-chan E, heartbeat func() E, interval time.Duration, batch bool) {
	h := w.Header()
	h.Set("Content-Type", c.MediaType())
	h.Set("Cache-Control", "no-cache")
	if streamID != "" {
		h.Set(StreamIDHeader, streamID)
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // the head, so the client knows it is subscribed

	var tick <-chan time.Time
	if heartbeat != nil && interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	var rec []byte // the record being written, reused
	write := func(ev E, more bool) bool {
		b, err := c.Marshal(ev)
		if err != nil {
			return false
		}
		// One Write per record: net/http cuts a chunk at each write
		// that finds its buffer empty, and at each flush.
		rec = strconv.AppendInt(rec[:0], int64(len(b)), 10)
		rec = append(append(rec, '\n'), b...)
		if _, err := w.Write(rec); err != nil {
			return false
		}
		if batch && more {
			return true
		}
		return rc.Flush() == nil
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
		case <-r.Context().Done():
			return
		}
	}
}
