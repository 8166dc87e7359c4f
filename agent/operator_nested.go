package agent

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/recordio"
)

// Debugging into a running container, as Mesos's agent API does it (task
// exec): LAUNCH_NESTED_CONTAINER_SESSION, LAUNCH_NESTED_CONTAINER,
// ATTACH_CONTAINER_INPUT and ATTACH_CONTAINER_OUTPUT, on a containerizer
// that is a containerizer.NestedLauncher.
//
// A nested container launched here has its standard streams kept by the
// agent (nestedIO, Mesos's I/O switchboard): its stdout and stderr are
// read as they come and sent, as ProcessIO DATA records, to the output
// connections attached to it (the session's own, ATTACH_CONTAINER_OUTPUT
// calls); with none attached the output is dropped, as the switchboard
// drops it. One ATTACH_CONTAINER_INPUT connection at a time feeds its
// stdin (409 for a second one). A slow output reader slows the container
// down (its pipe fills) instead of making the agent buffer: each
// connection queues a few records at most.
//
// The wire is Mesos's. A session answers 200 at once with a stream of
// ProcessIO records, RecordIO framed: with 'Accept: application/recordio'
// its Content-Type is that and 'Message-Content-Type' says how each
// record is encoded ('Message-Accept', JSON by default); with Accept
// JSON or protobuf the stream has that Content-Type. Every
// httpHeartbeatInterval of the stream a CONTROL HEARTBEAT record goes out.
// The stream ends when the container has closed its output (it ended);
// the session's container is destroyed then, or as soon as the client
// closes the connection. ATTACH_CONTAINER_INPUT is a streaming request:
// Content-Type application/recordio, Message-Content-Type JSON or
// protobuf, records of Calls, the first an ATTACH_CONTAINER_INPUT of type
// CONTAINER_ID, then ones of type PROCESS_IO: DATA STDIN (empty data is
// the end of input without a terminal), CONTROL TTY_INFO (the window
// size) and HEARTBEAT. It is answered 200 at the end of the request, or
// once the container's output has ended.
//
// Status codes are Mesos's: 400 for an invalid call or one naming a
// parent the containerizer does not have or that has ended (Mesos's
// containerizer refuses those launches, and its agent answers 400), 202
// for a container ID already launched, 404 for an attach to a container
// of no executor run of this agent or unknown, 409 for a second input
// connection, 415 and 406 for media types that do not fit the call.

// httpHeartbeatInterval is Mesos's --http_heartbeat_interval default: the
// heartbeats of a session's (and attached) output stream.
const httpHeartbeatInterval = 30 * time.Second

// nestedReadSize is how much of a container's output one record carries
// at most.
const nestedReadSize = 16 << 10

// nestedQueue is how many records wait for a slow output connection
// before the container's output waits for it.
const nestedQueue = 8

// nestedDestroyTimeout bounds the destruction of a session's container.
const nestedDestroyTimeout = time.Minute

// isStreamingOperatorRequest reports whether an operator API request
// streams: a RecordIO body (ATTACH_CONTAINER_INPUT) or an Accept that
// takes only a RecordIO stream (Mesos picks JSON, then protobuf, then
// RecordIO).
func isStreamingOperatorRequest(r *http.Request) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == httpapi.MediaTypeRecordIO {
		return true
	}
	return acceptsOnlyRecordIO(r.Header.Get("Accept"))
}

func acceptsOnlyRecordIO(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return false
	}
	if _, err := codec.ForMediaType(accept); err == nil {
		return false
	}
	for _, part := range strings.Split(accept, ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == httpapi.MediaTypeRecordIO {
			return true
		}
	}
	return false
}

// serveStreamingOperatorCall answers an operator request that streams
// (isStreamingOperatorRequest), whatever its call; it is handler.go's hook
// for them.
func (a *Agent) serveStreamingOperatorCall(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "expecting a 'POST' request, received '%s'", r.Method))
		return
	}
	// What the records of a streamed answer are.
	var msgOut codec.Codec = codec.JSON
	streamOut := acceptsOnlyRecordIO(r.Header.Get("Accept"))
	if streamOut {
		var err error
		if msgOut, err = codec.ForMediaType(r.Header.Get(messageAcceptHeader)); err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusNotAcceptable, "Expecting '%s' to allow %s or %s", messageAcceptHeader, codec.MediaTypeJSON, codec.MediaTypeProtobuf))
			return
		}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != httpapi.MediaTypeRecordIO {
		// A plain call that wants a streamed answer.
		var call agentpb.Call
		r2 := r.Clone(r.Context())
		r2.Header.Set("Accept", msgOut.MediaType())
		if _, err := httpapi.DecodeCall(r2, &call, maxAPIBody, httpapi.LogIgnored(a.log)); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if r.Header.Get(httpapi.MessageContentTypeHeader) != "" {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusUnsupportedMediaType, "Expecting '%s' to be not set for non-streaming requests", httpapi.MessageContentTypeHeader))
			return
		}
		if _, err := a.authorizeOperator(r.Context(), &call); err != nil { // auth.go
			httpapi.WriteError(w, authError(err))
			return
		}
		switch call.GetType() {
		case agentpb.Call_LAUNCH_NESTED_CONTAINER_SESSION, agentpb.Call_ATTACH_CONTAINER_OUTPUT:
			a.serveNestedOutputCall(w, r, &call, httpapi.MediaTypeRecordIO, msgOut)
		default:
			httpapi.WriteError(w, httpapi.Errorf(http.StatusNotAcceptable, "Streaming response is not supported for %s call", call.GetType()))
		}
		return
	}
	mct := r.Header.Get(httpapi.MessageContentTypeHeader)
	if mct == "" {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Expecting '%s' to be set for streaming requests", httpapi.MessageContentTypeHeader))
		return
	}
	msgIn, err := codec.ForMediaType(mct)
	if mt, _, perr := mime.ParseMediaType(mct); err != nil || perr != nil || (mt != codec.MediaTypeJSON && mt != codec.MediaTypeProtobuf) {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusUnsupportedMediaType, "Expecting '%s' of %s or %s", httpapi.MessageContentTypeHeader, codec.MediaTypeJSON, codec.MediaTypeProtobuf))
		return
	}
	if !streamOut {
		if _, err := codec.ForMediaType(r.Header.Get("Accept")); err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusNotAcceptable, "Expecting 'Accept' to allow %s or %s or %s", codec.MediaTypeJSON, codec.MediaTypeProtobuf, httpapi.MediaTypeRecordIO))
			return
		}
	}
	rd := recordio.NewReader(r.Body, maxAPIBody)
	first, err := readCallRecord(rd, msgIn)
	switch {
	case errors.Is(err, io.EOF):
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Received EOF while reading request body"))
		return
	case err != nil:
		httpapi.WriteError(w, err)
		return
	case first.GetType() != agentpb.Call_ATTACH_CONTAINER_INPUT:
		httpapi.WriteError(w, httpapi.Errorf(http.StatusUnsupportedMediaType, "Streaming 'Content-Type' %s is not supported for %s call", httpapi.MediaTypeRecordIO, first.GetType()))
		return
	case streamOut:
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotAcceptable, "Streaming response is not supported for %s call", first.GetType()))
		return
	}
	if _, err := a.authorizeOperator(r.Context(), first); err != nil { // auth.go
		httpapi.WriteError(w, authError(err))
		return
	}
	a.attachContainerInput(w, r, first.GetAttachContainerInput(), rd, msgIn)
}

// messageAcceptHeader picks the encoding of a streamed answer's records.
const messageAcceptHeader = "Message-Accept"

// readCallRecord reads the next Call of a streamed request.
func readCallRecord(rd *recordio.Reader, c codec.Codec) (*agentpb.Call, error) {
	rec, err := rd.ReadRecord()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "reading a record of the request: %v", err)
	}
	var call agentpb.Call
	if err := c.Unmarshal(rec, &call); err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "failed to parse a record into %s: %v", proto.MessageName(&call), err)
	}
	return &call, nil
}

// serveOperatorStream is handler.go's hook for the plain requests whose
// answer is a stream: it serves them and reports true, or reports false
// for any other call.
func (a *Agent) serveOperatorStream(w http.ResponseWriter, r *http.Request, c codec.Codec, call *agentpb.Call) bool {
	switch call.GetType() {
	case agentpb.Call_LAUNCH_NESTED_CONTAINER_SESSION, agentpb.Call_ATTACH_CONTAINER_OUTPUT:
	default:
		return false
	}
	switch {
	case r.Header.Get(httpapi.MessageContentTypeHeader) != "":
		httpapi.WriteError(w, httpapi.Errorf(http.StatusUnsupportedMediaType, "Expecting '%s' to be not set for non-streaming requests", httpapi.MessageContentTypeHeader))
	case r.Header.Get(messageAcceptHeader) != "":
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotAcceptable, "Expecting '%s' to be not set for non-streaming responses", messageAcceptHeader))
	default:
		a.serveNestedOutputCall(w, r, call, c.MediaType(), c)
	}
	return true
}

// nestedCall answers the calls of this file that are plain requests
// with plain answers; moreOperatorCalls sends them here.
func (a *Agent) nestedCall(ctx context.Context, call *agentpb.Call) (*agentpb.Response, error) {
	switch call.GetType() {
	case agentpb.Call_LAUNCH_NESTED_CONTAINER:
		lc := call.GetLaunchNestedContainer()
		if lc == nil {
			return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'launch_nested_container' to be present")
		}
		_, err := a.launchNested(ctx, "launch_nested_container", &lc.ContainerID, lc.Command, lc.Container, false)
		return nil, err
	case agentpb.Call_ATTACH_CONTAINER_INPUT:
		return nil, httpapi.Errorf(http.StatusUnsupportedMediaType, "Expecting 'Content-Type' to be %s for ATTACH_CONTAINER_INPUT call", httpapi.MediaTypeRecordIO)
	}
	return nil, httpapi.Errorf(http.StatusNotImplemented, "%s is not implemented by this agent", call.GetType())
}

// errAccepted is launchNested's answer for a container already launched:
// 202, as Mesos's ALREADY_LAUNCHED.
var errAccepted = &httpapi.Error{Status: http.StatusAccepted}

// launchNested checks a nested launch and starts it: the container runs
// and its streams are kept (and registered) when it returns.
func (a *Agent) launchNested(ctx context.Context, field string, cid *mesospb.ContainerID, cmd *mesospb.CommandInfo, info *mesospb.ContainerInfo, session bool) (*nestedIO, error) {
	id, err := containerizerID(cid, field+".container_id")
	if err != nil {
		return nil, err
	}
	if cid.Parent == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting '%s.container_id.parent' to be present", field)
	}
	parent, _ := containerizerID(cid.Parent, field+".container_id.parent")
	cfg := containerizer.NestedConfig{ID: id, Parent: parent}
	if cmd != nil {
		cfg.Command = containerizer.Command{Shell: cmd.Shell == nil || *cmd.Shell, Value: cmd.GetValue(), Args: cmd.Arguments}
		cfg.User = cmd.GetUser()
		if cmd.Environment != nil {
			for _, v := range cmd.Environment.Variables {
				if v.Type != nil && *v.Type != mesospb.Environment_Variable_VALUE {
					return nil, httpapi.Errorf(http.StatusBadRequest, "'%s.command' is invalid: only VALUE environment variables are supported", field)
				}
				cfg.Env = append(cfg.Env, v.Name+"="+v.GetValue())
			}
		}
	}
	if info != nil {
		if info.GetType() != mesospb.ContainerInfo_MESOS {
			return nil, httpapi.Errorf(http.StatusBadRequest, "The provided ContainerInfo is not supported")
		}
		if info.Mesos != nil && info.Mesos.Image != nil || len(info.Volumes) > 0 {
			return nil, httpapi.Errorf(http.StatusBadRequest, "'%s.container' is not supported: a nested container shares its parent's root filesystem and volumes", field)
		}
		if t := info.TTYInfo; t != nil {
			cfg.TTY = true
			if ws := t.WindowSize; ws != nil {
				cfg.Rows, cfg.Columns = uint16(min(ws.Rows, 0xffff)), uint16(min(ws.Columns, 0xffff))
			}
		}
	}
	if cfg.Command.Value == "" {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting '%s.command.value' to be present", field)
	}
	if err := cfg.Validate(); err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "%v", err)
	}
	cont, err := request(a, ctx, func() containerizer.Containerizer { return a.cont })
	if err != nil {
		return nil, err
	}
	nl, ok := cont.(containerizer.NestedLauncher)
	if !ok {
		return nil, httpapi.Errorf(http.StatusBadRequest, "This agent's containerizer cannot launch nested containers")
	}
	stdio, err := nl.LaunchNested(ctx, cfg)
	switch {
	case err == nil:
	case errors.Is(err, containerizer.ErrContainerExists):
		return nil, errAccepted
	case errors.Is(err, containerizer.ErrUnknownContainer):
		return nil, httpapi.Errorf(http.StatusBadRequest, "Parent container %s does not exist", parent)
	case errors.Is(err, containerizer.ErrNotRunning):
		return nil, httpapi.Errorf(http.StatusBadRequest, "Parent container %s is not running", parent)
	case errors.Is(err, containerizer.ErrClosed):
		return nil, ErrStopped
	case ctx.Err() != nil:
		return nil, ctx.Err()
	default:
		return nil, httpapi.Errorf(http.StatusBadRequest, "%v", err)
	}
	a.log.Info("agent: launched a nested container", "container", id, "tty", cfg.TTY)
	nio := newNestedIO(id, stdio, cont)
	if session {
		// Attached before anything can read the output: a command that
		// ends at once would otherwise have it read by nobody.
		nio.session = nio.attachOutput()
	}
	if _, err := request(a, ctx, func() bool {
		if a.ops.nested == nil {
			a.ops.nested = map[string]*nestedIO{}
		}
		a.ops.nested[id] = nio
		return true
	}); err != nil {
		stdio.Close()
		destroyContainer(context.Background(), cont, id, a.log)
		return nil, err
	}
	if !session {
		nio.startPumps()
	}
	go a.forgetNestedIO(cont, nio)
	return nio, nil
}

// forgetNestedIO unregisters a nested container's streams once it has
// ended and its output is all read, or the agent has stopped.
func (a *Agent) forgetNestedIO(cont containerizer.Containerizer, n *nestedIO) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, _ = cont.Wait(ctx, n.id)
	n.startPumps() // what is left to read, if nothing was attached
	select {
	case <-n.finished:
	case <-ctx.Done():
	}
	n.stdio.Close()
	_ = a.post(context.Background(), func() {
		if a.ops.nested[n.id] == n {
			delete(a.ops.nested, n.id)
		}
	})
}

// serveNestedOutputCall answers LAUNCH_NESTED_CONTAINER_SESSION and
// ATTACH_CONTAINER_OUTPUT: a stream of contentType whose records are msg's.
func (a *Agent) serveNestedOutputCall(w http.ResponseWriter, r *http.Request, call *agentpb.Call, contentType string, msg codec.Codec) {
	ctx := r.Context()
	var (
		n       *nestedIO
		out     *nestedOut
		session bool
		err     error
	)
	switch call.GetType() {
	case agentpb.Call_LAUNCH_NESTED_CONTAINER_SESSION:
		lc := call.GetLaunchNestedContainerSession()
		if lc == nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Expecting 'launch_nested_container_session' to be present"))
			return
		}
		session = true
		if n, err = a.launchNested(ctx, "launch_nested_container_session", &lc.ContainerID, lc.Command, lc.Container, true); err == nil {
			out = n.session
		}
	default:
		ac := call.GetAttachContainerOutput()
		if ac == nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Expecting 'attach_container_output' to be present"))
			return
		}
		if n, err = a.attachable(ctx, &ac.ContainerID, "attach_container_output.container_id"); err == nil {
			out = n.attachOutput()
		}
	}
	if err == errAccepted {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if err != nil {
		httpapi.WriteError(w, handlerError(err))
		return
	}
	defer n.detachOutput(out)
	if session {
		defer func() {
			// The session ends with its connection: its container with it.
			dctx, cancel := context.WithTimeout(context.Background(), nestedDestroyTimeout)
			defer cancel()
			destroyContainer(dctx, n.cont, n.id, a.log)
		}()
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	if contentType == httpapi.MediaTypeRecordIO {
		h.Set(httpapi.MessageContentTypeHeader, msg.MediaType())
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	wr := recordio.NewWriter(w)
	send := func(m *agentpb.ProcessIO) bool {
		b, err := msg.Marshal(m)
		return err == nil && wr.WriteRecord(b) == nil
	}
	hb := time.NewTicker(httpHeartbeatInterval)
	defer hb.Stop()
	for {
		select {
		case m, ok := <-out.ch:
			if !ok || !send(m) {
				return
			}
		case <-hb.C:
			if !send(heartbeat(httpHeartbeatInterval)) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// heartbeat is a CONTROL HEARTBEAT record of the given interval.
func heartbeat(interval time.Duration) *agentpb.ProcessIO {
	return &agentpb.ProcessIO{
		Type: agentpb.ProcessIO_CONTROL.Enum(),
		Control: &agentpb.ProcessIO_Control{
			Type:      agentpb.ProcessIO_Control_HEARTBEAT.Enum(),
			Heartbeat: &agentpb.ProcessIO_Control_Heartbeat{Interval: &mesospb.DurationInfo{Nanoseconds: interval.Nanoseconds()}},
		},
	}
}

// attachable finds the streams of a container an attach names: 404 when
// no executor run of this agent is its outermost parent, or the container
// is not one launched here with streams.
func (a *Agent) attachable(ctx context.Context, cid *mesospb.ContainerID, field string) (*nestedIO, error) {
	id, err := containerizerID(cid, field)
	if err != nil {
		return nil, err
	}
	run, _, _ := strings.Cut(id, ".")
	type found struct {
		known bool
		n     *nestedIO
	}
	f, err := request(a, ctx, func() found {
		known := false
		for _, fw := range a.tables.Frameworks() {
			for _, e := range fw.Runs() {
				if e.ContainerID() == run && e.State() != execTerminated {
					known = true
				}
			}
		}
		return found{known, a.ops.nested[id]}
	})
	if err != nil {
		return nil, err
	}
	if !f.known || f.n == nil {
		return nil, httpapi.Errorf(http.StatusNotFound, "Container %s cannot be found", id)
	}
	return f.n, nil
}

// attachContainerInput answers ATTACH_CONTAINER_INPUT, whose first record
// is first; rd reads the rest.
func (a *Agent) attachContainerInput(w http.ResponseWriter, r *http.Request, first *agentpb.Call_AttachContainerInput, rd *recordio.Reader, msgIn codec.Codec) {
	switch {
	case first == nil:
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Expecting 'attach_container_input' to be present"))
		return
	case first.GetType() != agentpb.Call_AttachContainerInput_CONTAINER_ID:
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Expecting 'attach_container_input.type' to be CONTAINER_ID"))
		return
	case first.ContainerID == nil:
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Expecting 'attach_container_input.container_id' to be present"))
		return
	}
	ctx := r.Context()
	n, err := a.attachable(ctx, first.ContainerID, "attach_container_input.container_id")
	if err != nil {
		httpapi.WriteError(w, handlerError(err))
		return
	}
	if !n.input.TryLock() {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusConflict, "Multiple input connections are not allowed"))
		return
	}
	defer n.input.Unlock()

	type next struct {
		call *agentpb.Call
		err  error
	}
	recs := make(chan next)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			call, err := readCallRecord(rd, msgIn)
			select {
			case recs <- next{call, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		var rec next
		select {
		case rec = <-recs:
		case <-n.finished:
			// The container's output has ended: so has the input, as
			// the switchboard answers once its redirects finish.
			w.WriteHeader(http.StatusOK)
			return
		case <-ctx.Done():
			return
		}
		if errors.Is(rec.err, io.EOF) {
			w.WriteHeader(http.StatusOK)
			return
		}
		if rec.err != nil {
			httpapi.WriteError(w, rec.err)
			return
		}
		if err := n.input1(rec.call); err != nil {
			httpapi.WriteError(w, err)
			return
		}
	}
}

// nestedIO is the streams of a nested container launched here: Mesos's
// I/O switchboard.
type nestedIO struct {
	id    string
	stdio *containerizer.Stdio
	cont  containerizer.Containerizer // that launched it
	input sync.Mutex                  // held by the one ATTACH_CONTAINER_INPUT

	// pumps start reading the output: at once for a plain nested
	// container, at the first output connection for a session (whose
	// first output would be lost otherwise), as the switchboard waits
	// for a session's connection.
	pumps sync.Once
	// session is a session's output connection, attached at its launch.
	session *nestedOut

	mu       sync.Mutex
	outs     map[*nestedOut]bool
	done     bool          // the output has ended: no more records
	finished chan struct{} // closed then
}

// nestedOut is one output connection: its queue, closed at the end of
// the output, and gone, closed when it went away.
type nestedOut struct {
	ch   chan *agentpb.ProcessIO
	gone chan struct{}
}

func newNestedIO(id string, stdio *containerizer.Stdio, cont containerizer.Containerizer) *nestedIO {
	return &nestedIO{id: id, stdio: stdio, cont: cont, outs: map[*nestedOut]bool{}, finished: make(chan struct{})}
}

// startPumps starts reading the container's output, once.
func (n *nestedIO) startPumps() { n.pumps.Do(n.pump) }

func (n *nestedIO) pump() {
	stdio := n.stdio
	var wg sync.WaitGroup
	pump := func(f *os.File, typ agentpb.ProcessIO_Data_Type) {
		defer wg.Done()
		buf := make([]byte, nestedReadSize)
		for {
			k, err := f.Read(buf)
			if k > 0 {
				n.broadcast(&agentpb.ProcessIO{
					Type: agentpb.ProcessIO_DATA.Enum(),
					Data: &agentpb.ProcessIO_Data{Type: typ.Enum(), Data: append([]byte(nil), buf[:k]...)},
				})
			}
			if err != nil {
				// io.EOF, or EIO from a terminal whose other side
				// every process has closed.
				return
			}
		}
	}
	wg.Add(1)
	go pump(stdio.Stdout, agentpb.ProcessIO_Data_STDOUT)
	if stdio.Stderr != nil {
		wg.Add(1)
		go pump(stdio.Stderr, agentpb.ProcessIO_Data_STDERR)
	}
	go func() {
		wg.Wait()
		n.mu.Lock()
		n.done = true
		for o := range n.outs {
			close(o.ch)
		}
		n.mu.Unlock()
		close(n.finished)
	}()
}

// broadcast sends a record to every output connection, waiting for each
// (bounded by its queue) unless it goes away.
func (n *nestedIO) broadcast(m *agentpb.ProcessIO) {
	n.mu.Lock()
	outs := make([]*nestedOut, 0, len(n.outs))
	for o := range n.outs {
		outs = append(outs, o)
	}
	n.mu.Unlock()
	for _, o := range outs {
		select {
		case o.ch <- m:
		case <-o.gone:
		}
	}
}

func (n *nestedIO) attachOutput() *nestedOut {
	o := &nestedOut{ch: make(chan *agentpb.ProcessIO, nestedQueue), gone: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done {
		close(o.ch)
	} else {
		n.outs[o] = true
	}
	go n.startPumps()
	return o
}

func (n *nestedIO) detachOutput(o *nestedOut) {
	n.mu.Lock()
	delete(n.outs, o)
	n.mu.Unlock()
	close(o.gone)
}

// input1 applies one record of ATTACH_CONTAINER_INPUT, checked as Mesos's
// switchboard checks it.
func (n *nestedIO) input1(call *agentpb.Call) error {
	bad := func(format string, args ...any) error {
		return httpapi.Errorf(http.StatusBadRequest, format, args...)
	}
	if call.GetType() != agentpb.Call_ATTACH_CONTAINER_INPUT || call.AttachContainerInput == nil {
		return bad("Expecting 'type' to be ATTACH_CONTAINER_INPUT with 'attach_container_input', got %s", call.GetType())
	}
	in := call.AttachContainerInput
	if in.GetType() != agentpb.Call_AttachContainerInput_PROCESS_IO {
		return bad("Expecting 'attach_container_input.type' to be 'PROCESS_IO' instead of: '%s'", in.GetType())
	}
	m := in.ProcessIO
	switch {
	case m == nil:
		return bad("Expecting 'attach_container_input.process_io' to be present")
	case m.Type == nil:
		return bad("Expecting 'process_io.type' to be present")
	}
	switch m.GetType() {
	case agentpb.ProcessIO_CONTROL:
		c := m.Control
		switch {
		case c == nil:
			return bad("Expecting 'process_io.control' to be present")
		case c.Type == nil:
			return bad("Expecting 'process_io.control.type' to be present")
		}
		switch c.GetType() {
		case agentpb.ProcessIO_Control_TTY_INFO:
			if c.TTYInfo == nil {
				return bad("Expecting 'process_io.control.tty_info' to be present")
			}
			ws := c.TTYInfo.WindowSize
			if ws == nil {
				return bad("Expecting 'tty_info.window_size' to be present")
			}
			if err := n.stdio.Resize(uint16(min(ws.Rows, 0xffff)), uint16(min(ws.Columns, 0xffff))); err != nil {
				return bad("Unable to set the window size: %v", err)
			}
			return nil
		case agentpb.ProcessIO_Control_HEARTBEAT:
			if c.Heartbeat == nil {
				return bad("Expecting 'process_io.control.heartbeat' to be present")
			}
			return nil // the interval is ignored, as Mesos ignores it
		}
		return bad("'process_io.control.type' is unknown")
	case agentpb.ProcessIO_DATA:
		d := m.Data
		switch {
		case d == nil:
			return bad("Expecting 'process_io.data' to be present")
		case d.Type == nil:
			return bad("Expecting 'process_io.data.type' to be present")
		case d.GetType() != agentpb.ProcessIO_Data_STDIN:
			return bad("Expecting 'process_io.data.type' to be 'STDIN'")
		}
		if len(d.Data) == 0 && !n.stdio.TTY {
			// EOF; with a terminal the client sends ^D instead.
			if err := n.stdio.Stdin.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				return httpapi.Errorf(http.StatusInternalServerError, "Failed closing stdin: %v", err)
			}
			return nil
		}
		if _, err := n.stdio.Stdin.Write(d.Data); err != nil {
			return httpapi.Errorf(http.StatusInternalServerError, "Failed writing to stdin: %v", err)
		}
		return nil
	}
	return bad("'process_io.type' is unknown")
}
