"""Generated protobuf and gRPC code for automations.v1 (``make gen``); do not edit."""
