"""Actions, the pure side: planning, sandboxed templates, lifecycle events, settling outcomes.

Nothing here does I/O: ``planning`` turns firings into invocations and lifecycle events inside the
writer's transaction, ``templates`` checks and renders action parameters, ``settling`` turns an
attempt's outcome into what the writer records. The I/O side (the dispatcher, the executor client,
retries) is ``automations.dispatch``.
"""
