"""``automations.Client``: a small typed client over the generated gRPC stubs.

The public surface of the client side; the code lives in private modules behind it
(``_client``: the client, over ``_events``, ``_automations`` and ``_history``, its groups of
calls; ``_errors``: its errors; ``_paging``: following ``next_page_token``). It loads gRPC,
protobuf and the domain model, never the server's code (SQLAlchemy, durable_rules).
"""

from __future__ import annotations

from automations.client._client import Client
from automations.client._errors import CallError, ClientError
from automations.client._events import EventInput, EventResult, EventsRejected
from automations.client._paging import pages

__all__ = [
    "CallError",
    "Client",
    "ClientError",
    "EventInput",
    "EventResult",
    "EventsRejected",
    "pages",
]
