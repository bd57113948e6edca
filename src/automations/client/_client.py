"""``automations.Client``: a small typed client over the generated gRPC stubs.

For programs that would rather not handle raw stubs. Automations and events go in and come out as
Prefect's JSON (plain dicts, as in automation files and event lines), converted with the same
functions the command line and the server use (``wire.automations``, ``domain.prefect_json``,
``wire.events``), so a client-side check fails with the server's reason and field path::

    import automations

    with automations.Client("127.0.0.1:50051") as client:
        created = client.create_automation(automation_json)
        results = client.publish(events, raise_on_rejected=True)
        for firing in client.list_firings(created["id"]):
            print(firing["triggered"], firing["triggering_labels"])
        for invocation in client.list_invocations(created["id"], statuses=["dead_letter"]):
            client.redrive(invocation["id"])

The calls come in three groups, each in its own module: events (``publish``, ``list_events``),
automations (``create_automation`` ... ``enable_automation``, ``disable_automation``,
``simulate``) and history (``list_firings``, ``get_firing``, ``list_invocations``,
``get_invocation``, ``redrive``), plus webhooks (``create_webhook`` ... ``rotate_webhook``,
``test_webhook``, ``list_webhook_deliveries``).

Over TLS, with a client certificate (mTLS) and the engine's API token::

    pem = pathlib.Path
    client = automations.Client(
        "engine.example:50051",
        root_certificates=pem("ca.pem").read_bytes(),
        private_key=pem("client.key").read_bytes(),
        certificate_chain=pem("client.pem").read_bytes(),
        token=os.environ["AUTOMATIONS_API_TOKEN"],
    )

Errors::

    ClientError                 every error raised here
    +-- CallError               a call failed (or a request was refused before it was sent):
    |                           ``code`` (grpc.StatusCode), ``reason`` (AIP-193 ErrorInfo),
    |                           ``field`` (the BadRequest field path)
    +-- EventsRejected          ``publish(..., raise_on_rejected=True)`` with rejected events

``publish`` retries a batch refused with RESOURCE_EXHAUSTED (the engine is behind) or UNAVAILABLE
(starting, draining, unreachable) with exponential backoff and jitter: publishing is idempotent
by event id, so a resent batch never counts twice.
"""

from __future__ import annotations

from types import TracebackType

import grpc

from automations import transport
from automations.client import _automations, _events, _history, _webhooks
from automations.v1 import automation_service_pb2_grpc, event_service_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
"""The engine's default address (``automations serve --grpc-addr``)."""


class Client(
    _events.EventCalls,
    _automations.AutomationCalls,
    _history.HistoryCalls,
    _webhooks.WebhookCalls,
):
    """A synchronous client of one engine; use it as a context manager or call ``close()``.

    Args:
        target: The engine's ``host:port``.
        timeout: Deadline of each call, in seconds.
        batch_size: How many events ``publish`` sends per PublishEvents call.
        max_attempts: How often ``publish`` sends one batch before giving up on
            RESOURCE_EXHAUSTED / UNAVAILABLE.
        channel: A channel to use instead of one opened to ``target``; ``close()`` does not
            close it (and the TLS and token arguments do not apply to it).
        tls: Use TLS, verifying the server against the system's root certificates (implied by
            ``root_certificates`` and ``certificate_chain``).
        root_certificates: PEM CA bundle verifying the server's certificate (TLS).
        private_key: PEM private key of a client certificate (mTLS, with ``certificate_chain``).
        certificate_chain: PEM client certificate chain (mTLS, with ``private_key``).
        token: The engine's API bearer token (``api_token``), sent with every call.

    Raises:
        ValueError: Only one of ``private_key`` and ``certificate_chain`` is given.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = 30.0,
        batch_size: int = 500,
        max_attempts: int = 10,
        channel: grpc.Channel | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        token: str | None = None,
    ) -> None:
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        self._own_channel = channel is None
        self._channel: grpc.Channel = channel or transport.open_channel(
            target,
            tls=tls,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            token=token,
            options=[
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
            ],
        )
        self._events = event_service_pb2_grpc.EventServiceStub(self._channel)
        self._automations = automation_service_pb2_grpc.AutomationServiceStub(self._channel)
        self.timeout = timeout
        self.batch_size = batch_size
        self.max_attempts = max_attempts

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel (unless it was given to the constructor)."""
        if self._own_channel:
            self._channel.close()
