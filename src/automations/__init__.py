"""Automations: an event-automations engine served over gRPC."""
