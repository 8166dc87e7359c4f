package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Errors returned by the store, wrapped with the image's name and the cause;
// test them with errors.Is. The agent turns any of them into TASK_FAILED
// with REASON_CONTAINER_PREPARATION_FAILED and the error's text as message.
var (
	// ErrInvalidName: the image name cannot be parsed as a reference.
	ErrInvalidName = errors.New("invalid image name")
	// ErrNotFound: the registry, layout or archive has no such image (or
	// no manifest for the platform), or the store has no such image.
	ErrNotFound = errors.New("image not found")
	// ErrUnauthorized: the registry refused the credentials (or their
	// absence).
	ErrUnauthorized = errors.New("registry refused access")
	// ErrUnavailable: the registry could not be reached or answered with a
	// server error; trying again later may work.
	ErrUnavailable = errors.New("registry unavailable")
	// ErrCorrupt: the image's content does not match its digests, cannot be
	// decoded, or a layer has an unsafe entry (a path leaving the layer, a
	// write through a link, a device node the store does not allow).
	ErrCorrupt = errors.New("corrupt image")
	// ErrTooLarge: a layer or the whole image is over the store's limits.
	ErrTooLarge = errors.New("image too large")
	// ErrUnsupported: the image uses a format the store does not handle.
	ErrUnsupported = errors.New("unsupported image")
	// ErrStorage: the store's own disk failed (full, read-only, I/O
	// error).
	ErrStorage = errors.New("image store storage failure")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("image store closed")
)

// pullError wraps err for the image ref with the sentinel that classifies it
// (unless err already carries one of ours).
func pullError(ref, what string, err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{ErrInvalidName, ErrNotFound, ErrUnauthorized, ErrUnavailable, ErrCorrupt, ErrTooLarge, ErrUnsupported, ErrStorage, ErrClosed} {
		if errors.Is(err, s) {
			return fmt.Errorf("image %s: %s: %w", ref, what, err)
		}
	}
	return fmt.Errorf("image %s: %s: %w: %w", ref, what, classify(err), err)
}

// classify maps an error of go-containerregistry, net/http or the kernel to
// one of the sentinels.
func classify(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ErrUnavailable
	}
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return ErrNotFound
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return ErrUnauthorized
			case transport.DigestInvalidErrorCode, transport.ManifestInvalidErrorCode, transport.SizeInvalidErrorCode:
				return ErrCorrupt
			}
		}
		switch {
		case terr.StatusCode == http.StatusNotFound:
			return ErrNotFound
		case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden:
			return ErrUnauthorized
		default:
			return ErrUnavailable
		}
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return ErrUnavailable
	}
	var oerr *net.OpError
	if errors.As(err, &oerr) {
		return ErrUnavailable
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return ErrStorage
	}
	// go-containerregistry reports digest and size mismatches, and broken
	// compressed streams, as plain errors: anything else is the content.
	return ErrCorrupt
}
