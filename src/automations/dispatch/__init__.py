"""Dispatch, the I/O side of actions: the outbox dispatcher, the executor client, retries.

``dispatcher`` takes committed invocations (handed over by the writer, or claimed when due),
renders them with ``actions.templates``, carries out the engine's own actions, calls executors
through ``executor_client`` and hands the outcomes back to the writer to record. ``retry`` decides
when a failure is retried; ``prefect_context`` loads the Prefect objects templates refer to.
The pure side (planning, templates, lifecycle events, settling) is ``automations.actions``.
"""
