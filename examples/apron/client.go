package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/internal/httplink"
)

// maxHops bounds the redirects followed from one master: a standby points
// at the leader, which answers; more than a few is a loop.
const maxHops = 4

// maxBody bounds an answer read into memory (GET_STATE of a big cluster
// is tens of MB).
const maxBody = 512 << 20

// client calls the leading master, and agents, with the flags' TLS and
// credential.
type client struct {
	hc      *http.Client
	scheme  string
	masters *cli.Masters
	cred    *auth.Credential
}

// callError is a non-2xx answer.
type callError struct {
	who     string
	status  int
	message string
}

func (e *callError) Error() string {
	msg := fmt.Sprintf("%s answered %d %s", e.who, e.status, http.StatusText(e.status))
	if e.message != "" {
		msg += ": " + e.message
	}
	if e.status == http.StatusUnauthorized {
		msg += " (wrong or missing -credential)"
	}
	return msg
}

func newClient(o options, log *slog.Logger) (*client, error) {
	src, err := o.tls.Source(log)
	if err != nil {
		return nil, err
	}
	var hc http.Client
	if base := cli.HTTPClient(src); base != nil {
		hc = *base
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c := &client{hc: &hc, scheme: cli.Scheme(src)}
	if c.cred, err = o.cred.Read(); err != nil {
		return nil, err
	}
	if c.cred != nil {
		c.hc = auth.WithBasic(c.hc, *c.cred)
	}
	if c.masters, err = cli.ParseMasters(o.master, log); err != nil {
		return nil, &usageError{msg: err.Error()}
	}
	return c, nil
}

func (c *client) close() { _ = c.masters.Close() }

// bases are the masters' base URLs to try, in order: the elected leader
// with a detector (waiting for one until ctx ends), else the -master list.
func (c *client) bases(ctx context.Context) ([]string, error) {
	if d := c.masters.Detector; d != nil {
		l, err := d.Detect(ctx, election.Leader{})
		if err != nil {
			return nil, fmt.Errorf("no leading master in %s: %w", c.masters, err)
		}
		u, err := httplink.DefaultLeaderURL(l.Payload)
		if err != nil {
			return nil, fmt.Errorf("the leader in %s: %w", c.masters, err)
		}
		if c.scheme == "https" {
			u = strings.Replace(u, "http://", "https://", 1)
		}
		return []string{u}, nil
	}
	out := make([]string, 0, len(c.masters.URLs))
	for _, raw := range c.masters.URLs {
		if !strings.Contains(raw, "://") {
			raw = c.scheme + "://" + raw
		}
		out = append(out, strings.TrimRight(raw, "/"))
	}
	return out, nil
}

// do sends a request to the leading master: each candidate in turn until
// one answers other than 503 (a standby that knows no leader), following
// 307 redirects to the leader. The caller closes the answer's body.
func (c *client) do(ctx context.Context, method, pathQuery, ctype string, body []byte, hdr http.Header) (*http.Response, error) {
	bases, err := c.bases(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, base := range bases {
		target := base + pathQuery
		for hop := 0; ; hop++ {
			if hop == maxHops {
				errs = append(errs, fmt.Errorf("%s: more than %d redirects (last to %s)", base, maxHops, target))
				break
			}
			resp, err := c.send(ctx, method, target, ctype, body, hdr)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if resp.StatusCode == http.StatusTemporaryRedirect {
				loc := resp.Header.Get("Location")
				drain(resp)
				next, err := resolve(target, loc)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s redirected to %q: %w", base, loc, err))
					break
				}
				target = next
				continue
			}
			if resp.StatusCode == http.StatusServiceUnavailable {
				errs = append(errs, answerError(base, resp))
				break
			}
			return resp, nil
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("no answer from %s: %w", c.masters, ctx.Err())
	}
	return nil, fmt.Errorf("no master answered (%s): %w", c.masters, errors.Join(errs...))
}

func (c *client) send(ctx context.Context, method, target, ctype string, body []byte, hdr http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Accept", ctype)
	}
	return c.hc.Do(req)
}

// resolve resolves a Location (Mesos's are scheme-relative: //host:port/path).
func resolve(target, loc string) (string, error) {
	if loc == "" {
		return "", errors.New("no Location")
	}
	t, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	l, err := t.Parse(loc)
	if err != nil {
		return "", err
	}
	return l.String(), nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// answerError reads a non-2xx answer into a *callError and closes it.
func answerError(who string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return &callError{who: who, status: resp.StatusCode, message: strings.TrimSpace(string(b))}
}

// call makes an operator call of the leading master. A nil Response with
// a nil error is an answer without a body (the changes answer so).
func (c *client) call(ctx context.Context, call *masterpb.Call) (*masterpb.Response, error) {
	body, err := proto.Marshal(call)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodPost, "/api/v1", codec.MediaTypeProtobuf, body, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, answerError("the master", resp)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading the master's answer to %s: %w", call.GetType(), err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	var r masterpb.Response
	if err := codec.Protobuf.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding the master's answer to %s: %w", call.GetType(), err)
	}
	return &r, nil
}

// get makes a call whose answer has a body.
func (c *client) get(ctx context.Context, typ masterpb.Call_Type) (*masterpb.Response, error) {
	r, err := c.call(ctx, &masterpb.Call{Type: typ.Enum()})
	if err == nil && r == nil {
		err = fmt.Errorf("the master answered %s with nothing", typ)
	}
	return r, err
}

// download copies a file of an agent's sandbox to w through the master's
// files API (/files/download, which the master forwards to the agent
// agentID names, Range header included): the bytes from offset from on,
// or with from < 0 the last -from bytes. It returns the offset after what
// it copied. A byte range, not /files/read's JSON string, so that output
// that is not UTF-8 comes through unchanged and offsets stay exact.
// timeout bounds the wait for the answer; the copy may take longer.
func (c *client) download(ctx context.Context, timeout time.Duration, agentID, path string, from int64, w io.Writer) (int64, error) {
	q := url.Values{"path": {path}, "agent_id": {agentID}}
	rng := fmt.Sprintf("bytes=%d-", from)
	if from < 0 {
		rng = fmt.Sprintf("bytes=%d", from) // a suffix: the last -from bytes
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(timeout, cancel)
	resp, err := c.do(ctx, http.MethodGet, "/files/download?"+q.Encode(), "", nil, http.Header{"Range": {rng}})
	if !timer.Stop() && err == nil {
		resp.Body.Close()
		err = fmt.Errorf("no answer within %s", timeout)
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	start := int64(0)
	switch resp.StatusCode {
	case http.StatusRequestedRangeNotSatisfiable: // nothing past from
		drain(resp)
		return max(from, 0), nil
	case http.StatusPartialContent:
		var end, size int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &size); err != nil {
			return 0, fmt.Errorf("the master answered a range with Content-Range %q", resp.Header.Get("Content-Range"))
		}
	case http.StatusOK: // the whole file
		if from > 0 {
			n, err := io.CopyN(io.Discard, resp.Body, from)
			start = n
			if err != nil && err != io.EOF {
				return 0, err
			}
		}
	default:
		return 0, answerError("the master", resp)
	}
	n, err := io.Copy(w, resp.Body)
	return start + n, err
}

// agentCall makes an operator call of the agent info describes, at
// <scheme>://<hostname>:<port>/api/v1, as the master reaches it.
func (c *client) agentCall(ctx context.Context, info *mesospb.AgentInfo, call *agentpb.Call) error {
	body, err := proto.Marshal(call)
	if err != nil {
		return err
	}
	port := int(info.GetPort())
	if port == 0 {
		port = 5051
	}
	base := c.scheme + "://" + net.JoinHostPort(info.Hostname, strconv.Itoa(port))
	resp, err := c.send(ctx, http.MethodPost, base+"/api/v1", codec.MediaTypeProtobuf, body, nil)
	if err != nil {
		return fmt.Errorf("the agent at %s: %w", base, err)
	}
	if resp.StatusCode >= 300 {
		return answerError("the agent at "+base, resp)
	}
	drain(resp)
	return nil
}
