"""The ``prefect`` executor: Prefect's orchestration actions, carried out on a Prefect server.

``automations executor prefect --prefect-api-url http://127.0.0.1:4200/api`` serves, through the
server's REST API, every action type in :data:`ACTION_TYPES` (:mod:`.actions`), with targets
selected by id or inferred from the triggering event exactly as Prefect infers them
(:mod:`.inference`). Authentication comes from ``PREFECT_API_KEY`` (Bearer) or
``PREFECT_API_AUTH_STRING`` (Basic) in the environment, when set.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from automations import executor
from automations.domain import actions as domain_actions
from automations.executors.prefect.actions import PrefectActions
from automations.executors.prefect.client import DEFAULT_TIMEOUT_SECONDS, PrefectClient

ACTION_TYPES = domain_actions.PREFECT_ORCHESTRATION_ACTION_TYPES
"""The action types the ``prefect`` executor serves: Prefect's orchestration actions."""

API_URL_ENV = "PREFECT_API_URL"
"""Where the API URL comes from when ``--prefect-api-url`` is not given."""


def build(
    name: str,
    api_url: str | None,
    store: Callable[[], executor.IdempotencyStore],
    *,
    timeout_seconds: float | None = None,
) -> executor.Executor:
    """The ``prefect`` executor calling the Prefect API at ``api_url`` (or ``$PREFECT_API_URL``).

    Args:
        name: The executor's name (logs, metrics).
        api_url: The Prefect API's base URL; ``$PREFECT_API_URL`` when None.
        store: Opens the idempotency store (called once the URL is known).
        timeout_seconds: How long one Prefect API call may take (10 s when None).

    Raises:
        ValueError: No API URL is given or set in the environment.
    """
    url = api_url or os.environ.get(API_URL_ENV)
    if not url:
        raise ValueError("the prefect executor needs --prefect-api-url or PREFECT_API_URL")
    client = PrefectClient(
        url,
        timeout_seconds=timeout_seconds or DEFAULT_TIMEOUT_SECONDS,
        api_key=os.environ.get("PREFECT_API_KEY") or None,
        auth_string=os.environ.get("PREFECT_API_AUTH_STRING") or None,
    )
    handlers = PrefectActions(client).handlers()
    assert tuple(handlers) == ACTION_TYPES
    return executor.Executor(name=name, handlers=handlers, store=store(), on_close=[client.aclose])
