package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// archiveSource reports whether a -docker-registry value names a source
// of image archives rather than a registry, as Mesos's image tar puller
// takes a local directory: an absolute path or a file:// URL (a local
// directory), or an http(s) URL with a path (a directory served over
// HTTP; a registry's API is always at the root, so a URL with a path
// cannot name one). It returns the source, cleaned.
func archiveSource(r string) (string, bool, error) {
	switch {
	case strings.HasPrefix(r, "/"):
		return filepath.Clean(r), true, nil
	case strings.HasPrefix(r, "hdfs://"):
		return "", false, fmt.Errorf("image store: registry %q: %w: Apron has no Hadoop client; serve the archives over HTTP or from a local directory", r, ErrUnsupported)
	case !strings.Contains(r, "://"):
		return "", false, nil
	}
	u, err := url.Parse(r)
	if err != nil {
		return "", false, fmt.Errorf("image store: bad registry %q: %w", r, err)
	}
	switch u.Scheme {
	case "file":
		if (u.Host != "" && u.Host != "localhost") || !strings.HasPrefix(u.Path, "/") {
			return "", false, fmt.Errorf("image store: registry %q: a file URL names an absolute local directory", r)
		}
		return filepath.Clean(u.Path), true, nil
	case "http", "https":
		if strings.Trim(u.Path, "/") == "" {
			return "", false, nil
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		return u.String(), true, nil
	}
	return "", false, nil
}

// archiveName is the archive of ref in a directory of archives, Mesos's
// <directory>/<name>.tar with the name as the task gives it
// ("busybox.tar", "busybox:1.36.tar", "library/app@sha256:....tar").
func archiveName(ref string) (string, error) {
	if ref == "" || strings.HasPrefix(ref, "/") || strings.ContainsAny(ref, "\\\x00?#") {
		return "", fmt.Errorf("image %s: %w: not usable as an archive name", ref, ErrInvalidName)
	}
	for _, c := range strings.Split(ref, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("image %s: %w: not usable as an archive name", ref, ErrInvalidName)
		}
	}
	return ref + ".tar", nil
}

// pullArchive is Pull with Options.Registry naming a source of archives:
// the image is the archive <source>/<ref>.tar.
func (s *Store) pullArchive(ctx context.Context, ref string, opts []PullOption) (*Image, error) {
	file, err := archiveName(strings.TrimSpace(ref))
	if err != nil {
		return nil, err
	}
	var uri string
	if strings.HasPrefix(s.archives, "/") {
		uri = filepath.Join(s.archives, filepath.FromSlash(file))
	} else {
		u, _ := url.Parse(s.archives) // parsed by archiveSource
		u.Path = path.Join(u.Path, file)
		uri = u.String()
	}
	return s.LoadURI(ctx, uri, ref, opts...)
}

// LoadURI stores, under the name ref, the image in the OCI layout tar or
// `docker save` archive at uri: an absolute path or a file:// URL (read
// in place, as Load does), or an http:// or https:// URL, downloaded with
// Options.Transport into the store's staging area (at most
// Options.MaxArchiveBytes) and removed once the image is stored. An
// answer of 404 is ErrNotFound; other errors, or none, from the server
// ErrUnavailable. As for Pull, concurrent calls for one name fetch the
// archive once, a stored name is returned without fetching unless Force
// is given, the config and layers are checked against their digests, and
// a ref by digest must match the archive's image.
func (s *Store) LoadURI(ctx context.Context, uri, ref string, opts ...PullOption) (*Image, error) {
	what := "load " + redactURI(uri)
	return s.get(ctx, ref, what, opts, func(ctx context.Context, r name.Reference) (v1.Image, func(), error) {
		local, remote, err := parseArchiveURI(uri)
		if err != nil {
			return nil, func() {}, err
		}
		cleanup := func() {}
		if remote != nil {
			dir, err := os.MkdirTemp(s.tmpDir(), "archive-")
			if err != nil {
				return nil, cleanup, fmt.Errorf("%w: %w", ErrStorage, err)
			}
			cleanup = func() { _ = os.RemoveAll(dir) }
			local = filepath.Join(dir, "image.tar")
			if err := s.download(ctx, remote, local); err != nil {
				cleanup()
				return nil, func() {}, err
			}
		}
		img, done, err := s.openLocal(ctx, local, r.Identifier())
		all := func() { done(); cleanup() }
		if err == nil {
			err = checkDigest(img, r)
		}
		if err != nil {
			all()
			return nil, func() {}, err
		}
		return img, all, nil
	})
}

// checkDigest fails when r names a digest the image does not have.
func checkDigest(img v1.Image, r name.Reference) error {
	want, ok := r.(name.Digest)
	if !ok {
		return nil
	}
	got, err := img.Digest()
	if err != nil {
		return fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
	}
	if got.String() != want.DigestStr() {
		return fmt.Errorf("%w: the archive's image is %s, not the %s asked for", ErrCorrupt, got, want.DigestStr())
	}
	return nil
}

// parseArchiveURI is a local path or an http(s) URL.
func parseArchiveURI(uri string) (string, *url.URL, error) {
	if strings.HasPrefix(uri, "/") {
		return filepath.Clean(uri), nil, nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", nil, fmt.Errorf("%w: archive URI: %w", ErrUnsupported, err)
	}
	switch u.Scheme {
	case "file":
		if (u.Host != "" && u.Host != "localhost") || !strings.HasPrefix(u.Path, "/") {
			return "", nil, fmt.Errorf("%w: archive URI %q: a file URL names an absolute local path", ErrUnsupported, uri)
		}
		return filepath.Clean(u.Path), nil, nil
	case "http", "https":
		if u.Host == "" {
			return "", nil, fmt.Errorf("%w: archive URI %q has no host", ErrUnsupported, redactURI(uri))
		}
		return "", u, nil
	}
	return "", nil, fmt.Errorf("%w: archive URI scheme %q (want http, https, file or an absolute path)", ErrUnsupported, u.Scheme)
}

// download saves u at dst, within Options.MaxArchiveBytes.
func (s *Store) download(ctx context.Context, u *url.URL, dst string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	req.Header.Set("User-Agent", "apron")
	client := &http.Client{Transport: s.opts.Transport}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %s answered %s", ErrNotFound, redactURI(u.String()), resp.Status)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %s answered %s", ErrUnauthorized, redactURI(u.String()), resp.Status)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: %s answered %s", ErrUnavailable, redactURI(u.String()), resp.Status)
	}
	limit := s.opts.MaxArchiveBytes
	if limit > 0 && resp.ContentLength > limit {
		return fmt.Errorf("%w: the archive is %d bytes, over the limit of %d", ErrTooLarge, resp.ContentLength, limit)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	var body io.Reader = resp.Body
	if limit > 0 {
		body = io.LimitReader(resp.Body, limit+1)
	}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil && cerr != nil {
		return fmt.Errorf("%w: %w", ErrStorage, cerr)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("%w: downloading %s: %w", ErrUnavailable, redactURI(u.String()), err)
	case limit > 0 && n > limit:
		return fmt.Errorf("%w: the archive is over the limit of %d bytes", ErrTooLarge, limit)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return fmt.Errorf("%w: %s: got %d of %d bytes", ErrUnavailable, redactURI(u.String()), n, resp.ContentLength)
	}
	return nil
}

// redactURI hides a URL's password.
func redactURI(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return uri
}
