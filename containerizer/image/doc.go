// Package image pulls Docker and OCI images without a Docker engine,
// keeps their layers in a content-addressed store shared by all
// containers, and builds containers' root filesystems from them: the image
// provisioner of the Linux containerizer, after Mesos's
// (src/slave/containerizer/mesos/provisioner/docker and backends).
//
// # Pulling
//
// [Store.Pull] resolves a name as Mesos does with -docker_registry: a name
// without a registry resolves against [Options.Registry]; a registry given
// as http://host:port is spoken to in plain HTTP, any other over TLS
// (go-containerregistry also uses plain HTTP for loopback and RFC 1918
// addresses, and for an http:// registry tries TLS first). Credentials come
// from the "auths" of a docker config file ([Options.DockerConfig]). A
// manifest list gives the image of [Options.Platform]. Everything fetched
// is checked: the manifest against the digest it was asked by, the config
// against the manifest, each layer's compressed bytes against the
// manifest (read to the end of the stream, where go-containerregistry
// checks it) and its uncompressed tar against the config's diff ID. A name
// already in the store is not fetched again unless [Force] is given
// (Mesos's Image.cached). [Store.Load] takes the image from an OCI layout
// (directory or tar) or a `docker save` archive on local disk, and
// [Store.LoadURI] from such an archive at a URI (http, https, file),
// downloaded into the store's staging area within
// [Options.MaxArchiveBytes]. As Mesos's image tar puller does, an
// [Options.Registry] that names a directory of archives (an absolute
// path, a file:// URL, or an http(s) URL with a path) makes Pull load
// <directory>/<name>.tar instead of asking a registry.
//
// # The store
//
// Under [Options.Dir]:
//
//	layers/sha256/<diff ID>/rootfs      a layer, unpacked
//	layers/sha256/<diff ID>/layer.json  written last: without it, a leftover
//	images/<hash of name>.json          an image: name, digest, layers, config
//	rootfses/<hash of dir>.json         a provisioned rootfs: its directory, layers
//	tmp/                                staging; emptied by Open
//
// Layers are keyed by diff ID, so images share them whatever their
// compression; the compressed blobs are streamed straight into the
// unpacker and not kept (as Mesos removes its staged blobs). A layer is
// unpacked in tmp/ and renamed into place once complete and verified, so
// after an error or a crash nothing half-unpacked is in layers/. Concurrent
// pulls of one image, and of images sharing layers, fetch each layer once.
//
// Reference counts are not stored: they are rebuilt at Open from the image
// and rootfs records, which are written (atomically) before the references
// they make are relied on and removed after. A layer is used by each image
// record and each provisioned rootfs naming it, and by each pull under
// way; [Store.GC] deletes the others. [Store.Remove] drops an image record
// only.
//
// # Unpacking
//
// Layer tars are applied to an empty directory, with none of their
// entries able to write outside it: ".." components are refused, leading
// "/" mean the layer's root, every path is resolved one component at a
// time with openat(O_NOFOLLOW|O_DIRECTORY) from the layer's root (so a
// symbolic link or file in the middle of a path fails the entry), and the
// last component is created with an *at call after removing whatever was
// there (so nothing is written through an earlier link, hard or
// symbolic). Symbolic links' targets are data, never followed. Device
// nodes are refused unless [Options.AllowDevices] and root; xattrs other
// than user.* and security.capability are dropped. Whiteouts (".wh.NAME")
// and opaque directories (".wh..wh..opq") are stored in overlayfs's format
// when the store runs as root (a 0/0 character device, the
// trusted.overlay.opaque xattr), so layers are overlay lower directories
// as they are; otherwise kept as files, for the copy backend. A layer and
// an image may be limited in uncompressed size.
//
// # Root filesystems
//
// [Store.Provision] builds a container's rootfs in a directory of its own:
// an overlayfs mount of the layers with the container's upper directory
// (needs root and overlayfs), or a copy of the layers applying their
// whiteouts where overlayfs is missing ([Options.Backend]). [Merge] merges
// the task's command with the image's entrypoint, cmd, env, working
// directory and user with Mesos's rules.
//
// # Errors
//
// Errors wrap [ErrNotFound], [ErrUnavailable], [ErrUnauthorized],
// [ErrCorrupt], [ErrTooLarge], [ErrUnsupported], [ErrStorage] or
// [ErrInvalidName] and
// name the image and the cause; the agent reports them as TASK_FAILED
// with REASON_CONTAINER_PREPARATION_FAILED.
//
// Layers, rootfses and overlay mounts are Linux only; elsewhere the
// package builds, and unpacking and provisioning return ErrUnsupported.
package image
