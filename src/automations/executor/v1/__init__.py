"""Generated protobuf and gRPC code for automations.executor.v1 (``make gen``); do not edit."""
