"""The gRPC API: servicers, interceptors and proto <-> domain converters."""
