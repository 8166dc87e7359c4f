#!/usr/bin/env bash
# Regenerates the Go code of every .proto file under api/v1.
# Tools: protoc 3.21 (Debian's protobuf-compiler) and gogo/protobuf v1.3.2,
# through Apron's own plugin, internal/cmd/protoc-gen-apron, which fixes the
# generation policy (see its doc comment). Run as `go generate ./api/...`.
set -euo pipefail
cd "$(dirname "$0")"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-apron" ../../internal/cmd/protoc-gen-apron
for dir in */; do
	protos=("$dir"*.proto)
	[ -e "${protos[0]}" ] || continue
	protoc -I . --plugin=protoc-gen-apron="$bin/protoc-gen-apron" \
		--apron_out=paths=source_relative:. "${protos[@]}"
done
