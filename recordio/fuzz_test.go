package recordio_test

import (
	"bytes"
	"testing"

	"github.com/apronhq/apron/recordio"
)

// FuzzReader feeds arbitrary streams to the Reader: it must never panic or
// return a record over its limit, and records it reads must re-encode to a
// prefix of the input.
func FuzzReader(f *testing.F) {
	for _, seed := range []string{"5\nhello", "0\n", "3\nabc2\nde", "x", "99999999999\n", "1\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 1 << 16
		r := recordio.NewReader(bytes.NewReader(in), limit)
		var again bytes.Buffer
		w := recordio.NewWriter(&again)
		for {
			rec, err := r.ReadRecord()
			if err != nil {
				break
			}
			if len(rec) > limit {
				t.Fatalf("record of %d bytes over limit", len(rec))
			}
			_ = w.WriteRecord(rec)
		}
		if !canonicalPrefix(in, again.Bytes()) {
			t.Fatalf("re-encoded records %q are not a prefix of the input %q", again.Bytes(), in)
		}
	})
}

// canonicalPrefix reports whether out is in with leading zeros of lengths
// removed, as far as out goes. Headers such as "05\n" are valid input but
// are written back as "5\n", so compare record by record.
func canonicalPrefix(in, out []byte) bool {
	rin := recordio.NewReader(bytes.NewReader(in), 1<<16)
	rout := recordio.NewReader(bytes.NewReader(out), 1<<16)
	for {
		b, err := rout.ReadRecord()
		if err != nil {
			return true
		}
		a, err := rin.ReadRecord()
		if err != nil || !bytes.Equal(a, b) {
			return false
		}
	}
}
