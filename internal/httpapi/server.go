// Package httpapi is the HTTP plumbing shared by Apron's Mesos-style APIs:
// the master's scheduler, agent-link and operator endpoints, the agent's
// executor and operator endpoints, and the clients of each. A call is a
// POST of one protobuf message, in application/x-protobuf or
// application/json; a subscription answers 200 with a chunked RecordIO
// stream of events and a Mesos-Stream-Id header; other calls answer 202 (or
// 200 with a body). Errors are plain text with the status code a Mesos
// client expects.
package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/recordio"
)

// StreamIDHeader carries a subscription's ID, as Mesos names it.
const StreamIDHeader = "Mesos-Stream-Id"

// DefaultMaxBodyBytes bounds a request body.
const DefaultMaxBodyBytes = 8 << 20

// Error is an HTTP error answer: a status code and a message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Errorf returns an *Error.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// WriteError answers with err: its status if it is an *Error, else 500.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Message: err.Error()}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(e.Status)
	_, _ = io.WriteString(w, e.Message+"\n")
}

// MediaTypeRecordIO is the Content-Type of a request that carries several
// calls, one RecordIO record each, as Mesos's streaming requests do; the
// MessageContentTypeHeader says how each record is encoded.
const MediaTypeRecordIO = "application/recordio"

// MessageContentTypeHeader names the encoding of the records of an
// application/recordio body (protobuf or JSON).
const MessageContentTypeHeader = "Message-Content-Type"

// A DecodeOption changes how DecodeCall and DecodeCalls decode.
type DecodeOption func(*decodeOptions)

type decodeOptions struct{ log *slog.Logger }

// LogIgnored logs, at debug level on log, each JSON field and enum value a
// call carried that Apron's messages do not have: they are skipped, as
// Mesos skips them, and the log says what a newer client sent.
func LogIgnored(log *slog.Logger) DecodeOption {
	return func(o *decodeOptions) { o.log = log }
}

// unmarshal decodes one message with in, logging what JSON it skipped.
func (o *decodeOptions) unmarshal(r *http.Request, in codec.Codec, data []byte, msg proto.Message) error {
	if in != codec.JSON || o.log == nil || !o.log.Enabled(r.Context(), slog.LevelDebug) {
		return in.Unmarshal(data, msg)
	}
	return codec.UnmarshalJSONReporting(data, msg, func(path string) {
		o.log.Debug("ignoring a JSON field this version does not know", "message", proto.MessageName(msg), "field", path, "path", r.URL.Path)
	})
}

func newDecodeOptions(opts []DecodeOption) *decodeOptions {
	o := &decodeOptions{}
	for _, f := range opts {
		f(o)
	}
	return o
}

// DecodeCall reads a POSTed call into msg and returns the codec the answer
// must use (from Accept). JSON fields and enum names msg does not know are
// skipped, as Mesos skips them (LogIgnored logs them). It answers for the
// request's faults with the codes Mesos uses: 405 for a method other than
// POST, 400 for a missing Content-Type, 415 for a body that is neither
// protobuf nor JSON, 406 for an Accept it cannot satisfy, 413 for a body
// over maxBytes (DefaultMaxBodyBytes if <= 0), 400 for a body that does not
// decode, with a message naming the problem.
func DecodeCall(r *http.Request, msg proto.Message, maxBytes int64, opts ...DecodeOption) (codec.Codec, error) {
	in, out, body, err := readCall(r, maxBytes, false)
	if err != nil {
		return nil, err
	}
	if err := newDecodeOptions(opts).unmarshal(r, in, body, msg); err != nil {
		return nil, Errorf(http.StatusBadRequest, "failed to parse the body into %s: %v", proto.MessageName(msg), err)
	}
	return out, nil
}

// DecodeCalls is DecodeCall for endpoints that also take a batch: a body
// of Content-Type application/recordio whose records are calls encoded as
// its Message-Content-Type says. It returns the calls in order (one for a
// plain body). maxBytes bounds the whole body, and so each record; a
// record that is malformed or does not decode, or a batch without a
// record, is a 400 naming the record, and no call is returned.
func DecodeCalls[T any, PT interface {
	*T
	proto.Message
}](r *http.Request, maxBytes int64, opts ...DecodeOption) ([]PT, codec.Codec, error) {
	in, out, body, err := readCall(r, maxBytes, true)
	if err != nil {
		return nil, nil, err
	}
	o := newDecodeOptions(opts)
	name := proto.MessageName(PT(new(T)))
	if !IsBatch(r) {
		msg := PT(new(T))
		if err := o.unmarshal(r, in, body, msg); err != nil {
			return nil, nil, Errorf(http.StatusBadRequest, "failed to parse the body into %s: %v", name, err)
		}
		return []PT{msg}, out, nil
	}
	var calls []PT
	rd := recordio.NewReader(bytes.NewReader(body), len(body))
	for i := 0; ; i++ {
		rec, err := rd.ReadRecord()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, Errorf(http.StatusBadRequest, "record %d: %v", i, err)
		}
		msg := PT(new(T))
		if err := o.unmarshal(r, in, rec, msg); err != nil {
			return nil, nil, Errorf(http.StatusBadRequest, "record %d: failed to parse it into %s: %v", i, name, err)
		}
		calls = append(calls, msg)
	}
	if len(calls) == 0 {
		return nil, nil, Errorf(http.StatusBadRequest, "expecting at least one record in the %s body", MediaTypeRecordIO)
	}
	return calls, out, nil
}

// IsBatch reports whether r's body is a RecordIO batch of calls.
func IsBatch(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == MediaTypeRecordIO
}

// readCall checks a call's method and media types and reads its body; it
// returns the codec of the body (of its records, for a RecordIO batch when
// batch allows one) and that of the answer.
func readCall(r *http.Request, maxBytes int64, batch bool) (in, out codec.Codec, body []byte, err error) {
	if r.Method != http.MethodPost {
		return nil, nil, nil, Errorf(http.StatusMethodNotAllowed, "expecting a 'POST' request, received '%s'", r.Method)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, nil, nil, Errorf(http.StatusBadRequest, "Expecting 'Content-Type' to be present")
	}
	if mt, _, perr := mime.ParseMediaType(ct); batch && perr == nil && mt == MediaTypeRecordIO {
		mct := r.Header.Get(MessageContentTypeHeader)
		in, err = codec.ForMediaType(mct)
		if err != nil || !exactMediaType(mct) {
			return nil, nil, nil, Errorf(http.StatusUnsupportedMediaType, "expecting '%s' of %s or %s with 'Content-Type' %s, got %q", MessageContentTypeHeader, codec.MediaTypeJSON, codec.MediaTypeProtobuf, MediaTypeRecordIO, mct)
		}
	} else {
		in, err = codec.ForMediaType(ct)
		if err != nil || !exactMediaType(ct) {
			return nil, nil, nil, Errorf(http.StatusUnsupportedMediaType, "expecting 'Content-Type' of %s or %s, got %q", codec.MediaTypeJSON, codec.MediaTypeProtobuf, ct)
		}
	}
	out, err = codec.ForMediaType(r.Header.Get("Accept"))
	if err != nil {
		return nil, nil, nil, Errorf(http.StatusNotAcceptable, "expecting 'Accept' to allow %s or %s", codec.MediaTypeJSON, codec.MediaTypeProtobuf)
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBodyBytes
	}
	body, err = io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return nil, nil, nil, Errorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	if int64(len(body)) > maxBytes {
		return nil, nil, nil, Errorf(http.StatusRequestEntityTooLarge, "the body is over %d bytes", maxBytes)
	}
	return in, out, body, nil
}

// exactMediaType accepts only protobuf or JSON in Content-Type (a request
// body has one type; "*/*" is for Accept).
func exactMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == codec.MediaTypeJSON || mt == codec.MediaTypeProtobuf)
}

// WriteMessage answers 200 with msg in c's encoding. JSON is written as
// it is encoded (codec.WriteJSON), so a large answer is never held whole.
func WriteMessage(w http.ResponseWriter, c codec.Codec, msg proto.Message) {
	if c.MediaType() == codec.MediaTypeJSON {
		w.Header().Set("Content-Type", c.MediaType())
		sw := &startedWriter{w: w}
		if err := codec.WriteJSON(sw, msg); err != nil && !sw.started {
			w.Header().Del("Content-Type")
			WriteError(w, err)
		}
		return
	}
	b, err := c.Marshal(msg)
	if err != nil {
		WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", c.MediaType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// startedWriter notes whether anything was written.
type startedWriter struct {
	w       io.Writer
	started bool
}

func (s *startedWriter) Write(b []byte) (int, error) {
	s.started = true
	return s.w.Write(b)
}

// Canceled reports whether err only says the request went away.
func Canceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// AcceptsJSONOnly is a helper for endpoints (/state) that answer JSON only.
func AcceptsJSONOnly(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return a == "" || strings.Contains(a, "json") || strings.Contains(a, "*/*")
}
