package agent

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/recordio"
)

// FuzzNestedInput feeds ATTACH_CONTAINER_INPUT bodies, in both
// encodings, to a nested container's streams: whatever the bytes, each
// record is applied or refused with an HTTP error, never a panic.
func FuzzNestedInput(f *testing.F) {
	for _, seed := range []string{
		`{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"PROCESS_IO","process_io":{"type":"DATA","data":{"type":"STDIN","data":"aGk="}}}}`,
		`{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"PROCESS_IO","process_io":{"type":"CONTROL","control":{"type":"TTY_INFO","tty_info":{"window_size":{"rows":1,"columns":2}}}}}}`,
		`{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"PROCESS_IO","process_io":{"type":"CONTROL","control":{"type":"HEARTBEAT","heartbeat":{}}}}}`,
		`{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"PROCESS_IO","process_io":{"type":"DATA","data":{"type":"STDOUT"}}}}`,
		`{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"CONTAINER_ID"}}`,
		`{}`, `{"type":"GET_STATE"}`,
	} {
		var buf bytes.Buffer
		_ = recordio.NewWriter(&buf).WriteRecord([]byte(seed))
		f.Add(buf.Bytes(), false)
	}
	f.Add([]byte("3\n\x08\x0e\x00"), true)
	f.Add([]byte("99999999999999999999999\n"), true)
	f.Fuzz(func(t *testing.T, body []byte, protobuf bool) {
		inR, inW, err := os.Pipe()
		require.NoError(t, err)
		outR, outW, err := os.Pipe()
		require.NoError(t, err)
		defer inR.Close()
		defer outW.Close()
		go io.Copy(io.Discard, inR)
		n := newNestedIO("r.t.s", &containerizer.Stdio{Stdin: inW, Stdout: outR}, nil)
		defer n.stdio.Close()
		var c codec.Codec = codec.JSON
		if protobuf {
			c = codec.Protobuf
		}
		rd := recordio.NewReader(bytes.NewReader(body), 1<<16)
		for {
			call, err := readCallRecord(rd, c)
			if errors.Is(err, io.EOF) || err != nil {
				return
			}
			if err := n.input1(call); err != nil {
				return
			}
		}
	})
}
