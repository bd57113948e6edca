"""Conversions between protobuf messages and the domain model, shared by the API and the dispatcher."""
