package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/recordio"
)

// ErrRedirect is returned (wrapped in a *RedirectError) for a 307 answer:
// the called master is not the leader.
var ErrRedirect = errors.New("httpapi: redirected to another master")

// RedirectError carries the leader's URL from a 307's Location.
type RedirectError struct{ Location string }

func (e *RedirectError) Error() string { return fmt.Sprintf("redirected to %s", e.Location) }

// Unwrap makes errors.Is(err, ErrRedirect) work.
func (e *RedirectError) Unwrap() error { return ErrRedirect }

// Client posts calls to one endpoint URL.
type Client struct {
	HTTP  *http.Client // default: a client that does not follow redirects
	Codec codec.Codec  // default: protobuf
	// MaxRecordBytes bounds an event read from a stream (default
	// recordio.DefaultMaxRecordSize).
	MaxRecordBytes int
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return NoRedirects
}

func (c *Client) codec() codec.Codec {
	if c.Codec != nil {
		return c.Codec
	}
	return codec.Protobuf
}

// NoRedirects is an http.Client that hands 307 answers back to the caller,
// which decides whether to follow them (a scheduler re-subscribes with the
// leader, it does not replay one request).
var NoRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (c *Client) newRequest(ctx context.Context, endpoint, streamID string, call proto.Message) (*http.Request, error) {
	body, err := c.codec().Marshal(call)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", c.codec().MediaType())
	req.Header.Set("Accept", c.codec().MediaType())
	if streamID != "" {
		req.Header.Set(StreamIDHeader, streamID)
	}
	return req, nil
}

// Call posts a call and returns the answer's body (nil for 202). A non-2xx
// answer is an *Error (or a *RedirectError for 307).
func (c *Client) Call(ctx context.Context, endpoint, streamID string, call proto.Message) ([]byte, error) {
	req, err := c.newRequest(ctx, endpoint, streamID, call)
	if err != nil {
		return nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := checkStatus(resp, endpoint); err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusAccepted {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, nil
	}
	return io.ReadAll(io.LimitReader(resp.Body, DefaultMaxBodyBytes))
}

// CallBatch posts several calls in one request: a body of Content-Type
// application/recordio holding one record per call, in c's encoding, which
// the Message-Content-Type header names. The endpoint must take batches
// (see DecodeCalls). A non-2xx answer is an *Error (or a *RedirectError
// for 307); the answer's body, if any, is discarded.
func (c *Client) CallBatch(ctx context.Context, endpoint, streamID string, calls []proto.Message) error {
	var buf bytes.Buffer
	w := recordio.NewWriter(&buf)
	for _, call := range calls {
		b, err := c.codec().Marshal(call)
		if err != nil {
			return err
		}
		if err := w.WriteRecord(b); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, &buf)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", MediaTypeRecordIO)
	req.Header.Set(MessageContentTypeHeader, c.codec().MediaType())
	req.Header.Set("Accept", c.codec().MediaType())
	if streamID != "" {
		req.Header.Set(StreamIDHeader, streamID)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkStatus(resp, endpoint); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, DefaultMaxBodyBytes))
	return nil
}

// CallInto posts a call whose answer is a message, and decodes it.
func (c *Client) CallInto(ctx context.Context, endpoint, streamID string, call, answer proto.Message) error {
	b, err := c.Call(ctx, endpoint, streamID, call)
	if err != nil {
		return err
	}
	return c.codec().Unmarshal(b, answer)
}

// Stream is an open subscription.
type Stream struct {
	ID   string
	body io.ReadCloser
	r    *recordio.Reader
	c    codec.Codec
}

// Subscribe posts a subscribing call and returns its open stream.
func (c *Client) Subscribe(ctx context.Context, endpoint string, call proto.Message) (*Stream, error) {
	req, err := c.newRequest(ctx, endpoint, "", call)
	if err != nil {
		return nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	if err := checkStatus(resp, endpoint); err != nil {
		resp.Body.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, Errorf(resp.StatusCode, "a subscription answers 200, got %s", resp.Status)
	}
	return &Stream{ID: resp.Header.Get(StreamIDHeader), body: resp.Body, r: recordio.NewReader(resp.Body, c.MaxRecordBytes), c: c.codec()}, nil
}

// Next decodes the next event into ev. It returns io.EOF when the server
// ended the stream.
func (s *Stream) Next(ev proto.Message) error {
	rec, err := s.r.ReadRecord()
	if err != nil {
		return err
	}
	return s.c.Unmarshal(rec, ev)
}

// Close ends the stream on the client's side.
func (s *Stream) Close() error { return s.body.Close() }

func checkStatus(resp *http.Response, endpoint string) error {
	switch {
	case resp.StatusCode == http.StatusTemporaryRedirect:
		loc := resp.Header.Get("Location")
		if u, err := url.Parse(endpoint); err == nil && loc != "" {
			if l, err := u.Parse(loc); err == nil {
				loc = l.String()
			}
		}
		return &RedirectError{Location: loc}
	case resp.StatusCode >= 300:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	return nil
}
