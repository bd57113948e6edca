#!/bin/sh
# Drift check: regenerates the Go code into a temporary directory and compares it with the
# committed *.pb.go files; exits 1 naming the differences (run scripts/gen.sh and commit).
# Without protoc-gen-go / protoc-gen-go-grpc on PATH it says so and exits 0 (REQUIRE_GO_PLUGINS=1
# makes that an error). The committed code comes from Debian 12's protoc-gen-go v1.28.1 and
# protoc-gen-go-grpc 1.0: other plugin versions print other code, which shows up as drift.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pkg=$(dirname "$here")
for tool in protoc-gen-go protoc-gen-go-grpc; do
  if ! command -v "$tool" >/dev/null; then
    echo "clients/go: $tool not installed, drift check skipped (apt-get install protoc-gen-go protoc-gen-go-grpc)" >&2
    [ "${REQUIRE_GO_PLUGINS:-0}" = 1 ] && exit 1
    exit 0
  fi
done
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
"$here/gen.sh" "$fresh"
status=0
( cd "$pkg" && find automations -name '*.pb.go' ) | LC_ALL=C sort > "$fresh/.committed"
( cd "$fresh" && find automations -name '*.pb.go' ) | LC_ALL=C sort > "$fresh/.generated"
if ! diff -u "$fresh/.committed" "$fresh/.generated" >&2; then status=1; fi
while read -r f; do
  [ -f "$pkg/$f" ] || continue
  if ! diff -u "$pkg/$f" "$fresh/$f" >&2; then status=1; fi
done < "$fresh/.generated"
if [ "$status" != 0 ]; then
  echo "clients/go: generated code drifted from protos/ (or other plugin versions: $(protoc-gen-go --version), $(protoc-gen-go-grpc --version)): run clients/go/scripts/gen.sh and commit" >&2
  exit 1
fi
echo "clients/go: generated code matches protos/ ($(wc -l < "$fresh/.generated") files)"
