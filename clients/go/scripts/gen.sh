#!/bin/sh
# Generates the Go code for ../../protos into the directory given as $1 (default: clients/go itself):
# <dir>/automations/v1/*.pb.go (package automationsv1) and <dir>/automations/executor/v1/*.pb.go
# (package executorv1), with protoc-gen-go and protoc-gen-go-grpc from PATH. protoc is the one in the
# grpcio-tools Python package (`python -m grpc_tools.protoc`, pinned in pyproject.toml), so no protoc
# binary is needed. The protos carry no go_package option: the import paths are given here with
# protoc's M options. The vendored google/api and google/rpc protos map to genproto, as upstream.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pkg=$(dirname "$here")
repo=$(cd "$pkg/../.." && pwd)
out=${1:-$pkg}
module=automations.dev/clients/go
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
for tool in protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || { echo "$tool is not on PATH (apt-get install $tool, or go install; see clients/go/README.md)" >&2; exit 1; }
done

cd "$repo/protos"
files=$(find automations -name '*.proto' | LC_ALL=C sort)
mopts=""
for f in $files; do
  case "$f" in
    automations/executor/v1/*) mopts="$mopts,M$f=$module/automations/executor/v1;executorv1" ;;
    automations/v1/*) mopts="$mopts,M$f=$module/automations/v1;automationsv1" ;;
  esac
done

rm -f "$out"/automations/v1/*.pb.go "$out"/automations/executor/v1/*.pb.go
mkdir -p "$out"
# shellcheck disable=SC2086 # $files is a list of paths without spaces
"$python" -m grpc_tools.protoc \
  --proto_path=. \
  --plugin=protoc-gen-go="$(command -v protoc-gen-go)" \
  --plugin=protoc-gen-go-grpc="$(command -v protoc-gen-go-grpc)" \
  --go_out="$out" --go_opt="paths=source_relative$mopts" \
  --go-grpc_out="$out" --go-grpc_opt="paths=source_relative$mopts" \
  $files
