#!/bin/sh
# Builds an example (default: the quickstart) offline against the Go packages Debian ships
# (apt-get install golang-go golang-google-grpc-dev golang-google-protobuf-dev
# golang-github-golang-protobuf-1-5-dev), in GOPATH mode: /usr/share/gocode holds their sources, and this module is linked into a temporary
# GOPATH under its import path.
# Usage: scripts/build-offline.sh OUTPUT_BINARY [EXAMPLE]   (EXAMPLE: a directory of examples/)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pkg=$(dirname "$here")
example=${2:-quickstart}
out=$(cd "$(dirname "${1:?usage: $0 OUTPUT_BINARY}")" && pwd)/$(basename "$1")
gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/automations.dev/clients"
ln -s "$pkg" "$gopath/src/automations.dev/clients/go"
cd "$gopath/src/automations.dev/clients/go"
PWD=$(pwd) GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= GOPROXY=off \
  go build -o "$out" "./examples/$example"
