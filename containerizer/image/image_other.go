//go:build !linux

package image

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
)

const (
	whiteoutsOverlay = "overlay"
	whiteoutsAUFS    = "aufs"
)

type unpacker struct {
	whiteouts    string
	root         bool
	allowDevices bool
	log          *slog.Logger
}

func (u *unpacker) unpack(ctx context.Context, dir string, r io.Reader) error {
	return fmt.Errorf("%w: unpacking layers on %s", ErrUnsupported, runtime.GOOS)
}

func cleanName(name string) (string, error) { return name, nil }

func overlaySupported() bool { return false }

func mountOverlay(dir string, layers []string) error {
	return fmt.Errorf("%w: overlayfs on %s", ErrUnsupported, runtime.GOOS)
}

func unmount(dir string) error { return nil }

func copyLayers(ctx context.Context, rootfs string, layers []string, root bool) error {
	return fmt.Errorf("%w: rootfs on %s", ErrUnsupported, runtime.GOOS)
}
