"""Bundled executors: one gRPC ExecutorService process each (``automations executor NAME``)."""
