module automations.dev/clients/go

go 1.19

// The oldest versions the generated code works with, which are what Debian 12 packages
// (golang-google-grpc-dev, golang-google-protobuf-dev): see README.md for the offline build with
// those, and for `go mod tidy` with the standard toolchain, which adds the rest (genproto) and go.sum.
require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
