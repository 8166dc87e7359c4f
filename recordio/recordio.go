// Package recordio reads and writes Mesos RecordIO, the framing of every
// streaming endpoint in the Mesos v1 HTTP APIs: each record is its length in
// bytes as ASCII decimal, a newline, and the bytes themselves
// ("5\nhello"). A Reader refuses records larger than its limit before
// allocating them, so a hostile length cannot exhaust memory; a Writer flushes
// after every record so a subscriber sees each event as soon as it is written.
package recordio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

var (
	// ErrTooLarge is returned for a record whose declared length exceeds the
	// reader's limit.
	ErrTooLarge = errors.New("recordio: record too large")
	// ErrMalformed is returned for a header that is not a decimal length
	// followed by a newline.
	ErrMalformed = errors.New("recordio: malformed record header")
)

// DefaultMaxRecordSize is the limit NewReader uses when given a size <= 0.
const DefaultMaxRecordSize = 16 << 20

// maxHeaderDigits bounds the header: 20 digits hold any uint64.
const maxHeaderDigits = 20

// Reader reads records from a stream.
type Reader struct {
	r   *bufio.Reader
	max int
}

// NewReader returns a Reader of r that rejects records longer than maxSize
// bytes (DefaultMaxRecordSize if maxSize <= 0).
func NewReader(r io.Reader, maxSize int) *Reader {
	if maxSize <= 0 {
		maxSize = DefaultMaxRecordSize
	}
	return &Reader{r: bufio.NewReader(r), max: maxSize}
}

// ReadRecord returns the next record. It returns io.EOF when the stream ends
// cleanly between records and io.ErrUnexpectedEOF when it ends inside one.
// The returned slice is the caller's.
func (r *Reader) ReadRecord() ([]byte, error) {
	n, err := r.readHeader()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

func (r *Reader) readHeader() (int, error) {
	var n uint64
	for digits := 0; ; digits++ {
		c, err := r.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && digits > 0 {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		switch {
		case c == '\n' && digits > 0:
			if n > uint64(r.max) {
				return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, r.max)
			}
			return int(n), nil
		case c >= '0' && c <= '9' && digits < maxHeaderDigits:
			next := n*10 + uint64(c-'0')
			if next < n { // overflow: certainly over any limit
				return 0, fmt.Errorf("%w: length overflows", ErrTooLarge)
			}
			n = next
		case c >= '0' && c <= '9':
			return 0, fmt.Errorf("%w: length has more than %d digits", ErrMalformed, maxHeaderDigits)
		default:
			return 0, fmt.Errorf("%w: unexpected byte %q", ErrMalformed, c)
		}
	}
}

// Writer writes records to a stream.
type Writer struct {
	w     io.Writer
	flush func() error
}

// NewWriter returns a Writer of w. If w can flush (an http.ResponseWriter,
// a *bufio.Writer) every record is flushed as soon as it is written.
func NewWriter(w io.Writer) *Writer {
	wr := &Writer{w: w, flush: func() error { return nil }}
	switch f := w.(type) {
	case interface{ Flush() error }:
		wr.flush = f.Flush
	case http.Flusher:
		wr.flush = func() error { f.Flush(); return nil }
	}
	return wr
}

// WriteRecord writes one record and flushes it.
func (w *Writer) WriteRecord(p []byte) error {
	if err := w.WriteRecordNoFlush(p); err != nil {
		return err
	}
	return w.flush()
}

// WriteRecordNoFlush writes one record and leaves it buffered in the
// underlying writer, for a caller that knows more records follow at once:
// several records then leave in one write instead of one each. The caller
// must call Flush (or WriteRecord) when it has no more to write.
func (w *Writer) WriteRecordNoFlush(p []byte) error {
	var hdr [maxHeaderDigits + 1]byte
	h := strconv.AppendInt(hdr[:0], int64(len(p)), 10)
	h = append(h, '\n')
	if _, err := w.w.Write(h); err != nil {
		return err
	}
	_, err := w.w.Write(p)
	return err
}

// Flush flushes the records written so far, when the underlying writer
// can flush.
func (w *Writer) Flush() error { return w.flush() }
