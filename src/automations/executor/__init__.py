"""The executor SDK: everything needed to serve ``automations.executor.v1.ExecutorService``.

An executor carries out actions for the engine. Write one handler per action type and serve it::

    from automations import executor

    async def page(request: executor.Request) -> executor.ActionResult:
        params = executor.parameters_to_dict(request.parameters)
        if "team" not in params:
            raise executor.invalid_argument("parameters.team", "is required")
        ...
        return executor.ActionResult(result={"paged": params["team"]})

    service = executor.Executor(
        "pager", {"acme.page": page}, executor.SqliteIdempotencyStore("pager.db")
    )
    asyncio.run(executor.serve(service, executor.ServeOptions(addr="127.0.0.1:7001")))

The harness validates each request, deduplicates it on its ``idempotency_key`` (an action runs at
most once per key; a repeat is answered from the record), maps :class:`ActionError` to the call's
status with an AIP-193 ``ErrorInfo`` (the engine retries ``RETRYABLE_CODES``, the rest are final),
counts outcomes in Prometheus metrics and drains on SIGTERM. The bundled executors
(``automations.executors``) are built on it; an executor in another language implements the proto.

The code lives in private modules behind this surface: ``_harness`` (serving), ``_errors`` (the
error protocol), ``_idempotency`` (deduplication), ``_parameters``, ``_metrics``, ``_parent``.
``v1`` holds the generated protobuf and gRPC code.
"""

from __future__ import annotations

from automations.executor._errors import (
    ERROR_DOMAIN,
    RETRYABLE_CODES,
    ActionError,
    invalid_argument,
    to_status,
    to_status_proto,
)
from automations.executor._harness import (
    SERVICE_NAME,
    ActionResult,
    Executor,
    ExecutorServicer,
    Handler,
    Request,
    ServeOptions,
    serve,
)
from automations.executor._idempotency import (
    DEFAULT_RETENTION_SECONDS,
    Busy,
    Claimed,
    Deduplicator,
    Done,
    Failed,
    IdempotencyStore,
    MemoryIdempotencyStore,
    Record,
    SqliteIdempotencyStore,
    default_state_path,
    pid_alive,
)
from automations.executor._parameters import as_int_if_whole, parameters_to_dict
from automations.executor._parent import PARENT_PID_ENV, parent_pid_from_env

__all__ = [
    "DEFAULT_RETENTION_SECONDS",
    "ERROR_DOMAIN",
    "PARENT_PID_ENV",
    "RETRYABLE_CODES",
    "SERVICE_NAME",
    "ActionError",
    "ActionResult",
    "Busy",
    "Claimed",
    "Deduplicator",
    "Done",
    "Executor",
    "ExecutorServicer",
    "Failed",
    "Handler",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "Record",
    "Request",
    "ServeOptions",
    "SqliteIdempotencyStore",
    "as_int_if_whole",
    "default_state_path",
    "invalid_argument",
    "parameters_to_dict",
    "parent_pid_from_env",
    "pid_alive",
    "serve",
    "to_status",
    "to_status_proto",
]
