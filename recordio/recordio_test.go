package recordio_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/recordio"
)

func TestRoundTrip(t *testing.T) {
	records := [][]byte{[]byte("hello"), {}, []byte("a\nb\n"), bytes.Repeat([]byte("x"), 70000)}
	var buf bytes.Buffer
	w := recordio.NewWriter(&buf)
	for _, rec := range records {
		require.NoError(t, w.WriteRecord(rec))
	}
	assert.True(t, strings.HasPrefix(buf.String(), "5\nhello0\n4\na\nb\n70000\n"))

	r := recordio.NewReader(&buf, 0)
	for _, want := range records {
		got, err := r.ReadRecord()
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := r.ReadRecord()
	assert.ErrorIs(t, err, io.EOF)
}

func TestReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     error
	}{
		{"too large", "11\nhello world", 10, recordio.ErrTooLarge},
		{"hostile length", "99999999999999999999\n", 0, recordio.ErrTooLarge},
		{"too many digits", "000000000000000000001\n", 0, recordio.ErrMalformed},
		{"letter", "1a\nx", 0, recordio.ErrMalformed},
		{"empty header", "\nx", 0, recordio.ErrMalformed},
		{"negative", "-1\n", 0, recordio.ErrMalformed},
		{"truncated body", "5\nhel", 0, io.ErrUnexpectedEOF},
		{"truncated header", "12", 0, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := recordio.NewReader(strings.NewReader(tc.in), tc.max).ReadRecord()
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

func TestWriterFlushesEveryRecord(t *testing.T) {
	rec := httptest.NewRecorder()
	w := recordio.NewWriter(rec)
	require.NoError(t, w.WriteRecord([]byte("x")))
	assert.True(t, rec.Flushed)

	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	require.NoError(t, recordio.NewWriter(bw).WriteRecord([]byte("abc")))
	assert.Equal(t, "3\nabc", out.String(), "a bufio.Writer is flushed after the record")
}

func TestWriterNoFlushLeavesRecordsBuffered(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	w := recordio.NewWriter(bw)
	require.NoError(t, w.WriteRecordNoFlush([]byte("a")))
	require.NoError(t, w.WriteRecordNoFlush([]byte("bc")))
	assert.Empty(t, out.String(), "nothing leaves before the flush")
	require.NoError(t, w.Flush())
	assert.Equal(t, "1\na2\nbc", out.String())
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriterError(t *testing.T) {
	assert.Error(t, recordio.NewWriter(failWriter{}).WriteRecord([]byte("x")))
}
