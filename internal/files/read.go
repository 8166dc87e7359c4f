package files

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/user"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// MaxReadLength caps one read: 16 pages, as Mesos's files process.
var MaxReadLength = int64(16 * os.Getpagesize())

// Info describes one file of a listing, as Mesos's FileInfo.
type Info struct {
	Path  string // the requested path joined with the entry's name
	Nlink int64
	Size  int64
	Mtime time.Time // whole seconds, as Mesos reports them
	Mode  uint32    // POSIX st_mode: the type bits and the permission bits
	UID   string    // the owner's name, or the number when it has none
	GID   string
}

// POSIX file type bits of st_mode, which Mesos's FileInfo.mode carries.
const (
	modeTypeMask = 0o170000
	modeSock     = 0o140000
	modeLink     = 0o120000
	modeRegular  = 0o100000
	modeBlock    = 0o060000
	modeDir      = 0o040000
	modeChar     = 0o020000
	modeFIFO     = 0o010000
)

// ModeString is the mode as Mesos's /files/browse shows it: a type letter
// and nine permission letters, "-rw-r--r--".
func (i Info) ModeString() string {
	var b [10]byte
	switch i.Mode & modeTypeMask {
	case modeDir:
		b[0] = 'd'
	case modeChar:
		b[0] = 'c'
	case modeBlock:
		b[0] = 'b'
	case modeFIFO:
		b[0] = 'p'
	case modeLink:
		b[0] = 'l'
	case modeSock:
		b[0] = 's'
	default:
		b[0] = '-'
	}
	const letters = "rwxrwxrwx"
	for k := range 9 {
		if i.Mode&(1<<(8-k)) != 0 {
			b[k+1] = letters[k]
		} else {
			b[k+1] = '-'
		}
	}
	return string(b[:])
}

// Proto is the Info as the operator API's mesos.v1.FileInfo.
func (i Info) Proto() mesospb.FileInfo {
	nlink := int32(min(i.Nlink, math.MaxInt32))
	size := uint64(max(i.Size, 0))
	mode := i.Mode
	uid, gid := i.UID, i.GID
	return mesospb.FileInfo{
		Path:  i.Path,
		Nlink: &nlink,
		Size_: &size,
		Mtime: &mesospb.TimeInfo{Nanoseconds: i.Mtime.Unix() * int64(time.Second)},
		Mode:  &mode,
		Uid:   &uid,
		Gid:   &gid,
	}
}

// browseEntry is one element of /files/browse's JSON array, with Mesos's
// field names (in the order Mesos writes them).
type browseEntry struct {
	GID   string  `json:"gid"`
	Mode  string  `json:"mode"`
	Mtime float64 `json:"mtime"`
	Nlink int64   `json:"nlink"`
	Path  string  `json:"path"`
	Size  int64   `json:"size"`
	UID   string  `json:"uid"`
}

func (i Info) browseEntry() browseEntry {
	return browseEntry{GID: i.GID, Mode: i.ModeString(), Mtime: float64(i.Mtime.Unix()), Nlink: i.Nlink, Path: i.Path, Size: i.Size, UID: i.UID}
}

// Browse lists the directory path names, sorted by name, as Mesos's
// browse does. A path naming a file lists nothing (Mesos's answer too).
// An entry that is a symbolic link is described by what it points to
// when that is inside the attached directory, else as the link itself.
func (t *Table) Browse(p string) ([]Info, error) {
	tg, err := t.resolve(p)
	if err != nil {
		return nil, err
	}
	defer tg.close()
	f, err := tg.open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("files: browsing '%s': %w", p, stripPath(err))
	}
	if !fi.IsDir() {
		return []Info{}, nil
	}
	entries, err := f.ReadDir(-1)
	if err != nil && len(entries) == 0 {
		return nil, fmt.Errorf("files: browsing '%s': %w", p, stripPath(err))
	}
	sort.Slice(entries, func(a, b int) bool { return entries[a].Name() < entries[b].Name() })
	names := newOwnerNames()
	base := strings.TrimRight(p, "/")
	out := make([]Info, 0, len(entries))
	for _, e := range entries {
		fi, err := tg.statEntry(e)
		if err != nil {
			continue // gone since it was listed
		}
		out = append(out, infoOf(base+"/"+e.Name(), fi, names))
	}
	return out, nil
}

// statEntry stats a listed entry, following a symbolic link only within
// the root.
func (tg *target) statEntry(e fs.DirEntry) (fs.FileInfo, error) {
	if e.Type()&fs.ModeSymlink != 0 && tg.root != nil {
		if fi, err := tg.root.Stat(path.Join(tg.name, e.Name())); err == nil {
			return fi, nil
		}
	}
	return e.Info()
}

// Read reads the file path names: at most length bytes (all, up to
// MaxReadLength, when length is negative) from offset; it returns the
// file's size with them. As Mesos's read: an offset at or past the end,
// or a length of 0, reads nothing; a directory is ErrInvalid. A negative
// offset is ErrInvalid (callers map Mesos's -1 to a read of 0 bytes).
func (t *Table) Read(p string, offset, length int64) (size int64, data []byte, err error) {
	if offset < 0 {
		return 0, nil, fmt.Errorf("%w: negative offset provided: %d", ErrInvalid, offset)
	}
	tg, err := t.resolve(p)
	if err != nil {
		return 0, nil, err
	}
	defer tg.close()
	f, err := tg.open(p)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("files: reading '%s': %w", p, stripPath(err))
	}
	if fi.IsDir() {
		return 0, nil, fmt.Errorf("%w: cannot read a directory", ErrInvalid)
	}
	size = fi.Size()
	if offset >= size {
		return size, nil, nil
	}
	if length < 0 {
		length = size - offset
	}
	length = min(length, MaxReadLength)
	if length == 0 {
		return size, nil, nil
	}
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, fmt.Errorf("files: reading '%s': %w", p, stripPath(err))
	}
	return size, buf[:n], nil
}

// Open opens the file path names for a download: a directory is
// ErrInvalid. The caller closes the file.
func (t *Table) Open(p string) (*os.File, fs.FileInfo, error) {
	tg, err := t.resolve(p)
	if err != nil {
		return nil, nil, err
	}
	defer tg.close()
	f, err := tg.open(p)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("files: opening '%s': %w", p, stripPath(err))
	}
	if fi.IsDir() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: cannot download a directory", ErrInvalid)
	}
	return f, fi, nil
}

// ownerNames looks user and group names up once per listing.
type ownerNames struct{ users, groups map[uint32]string }

func newOwnerNames() *ownerNames {
	return &ownerNames{users: map[uint32]string{}, groups: map[uint32]string{}}
}

// user is uid's name, or the number, as Mesos's createFileInfo.
func (o *ownerNames) user(uid uint32) string {
	if n, ok := o.users[uid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(n); err == nil {
		n = u.Username
	}
	o.users[uid] = n
	return n
}

func (o *ownerNames) group(gid uint32) string {
	if n, ok := o.groups[gid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(n); err == nil {
		n = g.Name
	}
	o.groups[gid] = n
	return n
}

// portableMode is Go's FileMode as POSIX st_mode bits.
func portableMode(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	switch {
	case m.IsDir():
		bits |= modeDir
	case m&fs.ModeSymlink != 0:
		bits |= modeLink
	case m&fs.ModeNamedPipe != 0:
		bits |= modeFIFO
	case m&fs.ModeSocket != 0:
		bits |= modeSock
	case m&fs.ModeCharDevice != 0:
		bits |= modeChar
	case m&fs.ModeDevice != 0:
		bits |= modeBlock
	default:
		bits |= modeRegular
	}
	return bits
}

// ReadCall is Read with the operator API's READ_FILE parameters: offset
// and an optional length, unsigned. Unlike /files/read there is no -1:
// the size comes with every answer.
func (t *Table) ReadCall(p string, offset uint64, length *uint64) (size uint64, data []byte, err error) {
	l := int64(-1)
	if length != nil {
		l = int64(min(*length, math.MaxInt64))
	}
	s, data, err := t.Read(p, int64(min(offset, math.MaxInt64)), l)
	return uint64(max(s, 0)), data, err
}
