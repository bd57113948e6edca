"""Bundled executors: one gRPC ExecutorService process each (``automations executor NAME``).

- ``webhook`` serves ``call-webhook`` (:mod:`automations.executors.webhook`);
- ``notify`` serves ``send-notification`` through Apprise (:mod:`automations.executors.notify`);
- ``noop`` serves ``noop`` (and any ``--action-type``), for benchmarks and tests.

The engine reads :data:`ACTION_TYPES` to know which executor serves which action type and starts
each as ``automations executor NAME --addr HOST:PORT --state PATH`` with
``AUTOMATIONS_PARENT_PID`` set. :func:`run` serves one in this process.
"""

from __future__ import annotations

from automations.executors.registry import ACTION_TYPES, EXECUTORS, ExecutorOptions, run

__all__ = ["ACTION_TYPES", "EXECUTORS", "ExecutorOptions", "run"]
