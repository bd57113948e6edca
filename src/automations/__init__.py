"""Automations: an event-automations engine served over gRPC.

``automations.Client`` (see ``automations.client``) is imported on first use, so that importing
the package stays cheap and pulls in no gRPC code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from automations.client import Client

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from automations import client

        return client.Client
    raise AttributeError(f"module 'automations' has no attribute {name!r}")
