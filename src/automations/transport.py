"""Client side of transport security: TLS credentials, the API's bearer token, one channel.

The command line, ``automations.Client`` and the engine's calls to executors all build their
credentials here, so TLS, mTLS and the token work the same way everywhere:

- **TLS** is on when a CA bundle, a client certificate or ``tls=True`` is given; without a CA
  bundle the server is verified against the system's root certificates.
- **mTLS**: ``private_key`` and ``certificate_chain`` (PEM) present a client certificate.
- **Bearer token**: sent as ``authorization: Bearer <token>`` metadata on every call. Over TLS
  it rides on gRPC call credentials (``access_token_call_credentials``); over a plaintext
  channel (loopback, or behind a TLS-terminating proxy) gRPC refuses call credentials, so a
  client interceptor adds the same metadata, in the clear.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grpc

ChannelOptions = Sequence[tuple[str, Any]]
"""gRPC channel arguments, e.g. ``[("grpc.max_receive_message_length", 1 << 26)]``."""


def read_pem(path: str | os.PathLike[str] | None) -> bytes | None:
    """Returns the bytes of a PEM file, or None for no path (None or "").

    Raises:
        OSError: The file cannot be read (the message names it).
    """
    if not path:
        return None
    return Path(path).read_bytes()


def channel_credentials(
    *,
    root_certificates: bytes | None = None,
    private_key: bytes | None = None,
    certificate_chain: bytes | None = None,
) -> grpc.ChannelCredentials:
    """Returns TLS channel credentials (mTLS when a client key and certificate are given).

    Args:
        root_certificates: PEM CA bundle verifying the server; None: the system's roots.
        private_key: PEM private key of the client certificate (mTLS).
        certificate_chain: PEM client certificate chain (mTLS).

    Raises:
        ValueError: Only one of ``private_key`` and ``certificate_chain`` is given.
    """
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("a client certificate needs both its private key and its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates,
        private_key=private_key,
        certificate_chain=certificate_chain,
    )


def open_channel(
    target: str,
    *,
    tls: bool = False,
    root_certificates: bytes | None = None,
    private_key: bytes | None = None,
    certificate_chain: bytes | None = None,
    token: str | None = None,
    options: ChannelOptions = (),
) -> grpc.Channel:
    """Opens a synchronous channel to ``target`` with TLS and a bearer token as asked.

    Args:
        target: ``host:port``.
        tls: Use TLS even without a CA bundle or client certificate (system roots).
        root_certificates: PEM CA bundle verifying the server (implies TLS).
        private_key: PEM private key of a client certificate (mTLS; implies TLS).
        certificate_chain: PEM client certificate chain (mTLS; implies TLS).
        token: The API's bearer token; None or "": none sent.
        options: gRPC channel arguments.

    Returns:
        A channel; close it (or use it as a context manager) when done.
    """
    if tls or root_certificates is not None or certificate_chain is not None:
        credentials = channel_credentials(
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
        )
        if token:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(token)
            )
        return grpc.secure_channel(target, credentials, options=list(options))
    if private_key is not None:
        raise ValueError("a client certificate needs both its private key and its certificate")
    channel = grpc.insecure_channel(target, options=list(options))
    if token:
        return grpc.intercept_channel(channel, _BearerToken(token))
    return channel


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds ``authorization: Bearer <token>`` to every call of a plaintext channel."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> _CallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            [*(details.metadata or ()), self._header],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        """Adds the token to a unary call."""
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        """Adds the token to a server-streaming call."""
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, requests: Any
    ) -> Any:
        """Adds the token to a client-streaming call."""
        return continuation(self._details(client_call_details), requests)

    def intercept_stream_stream(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, requests: Any
    ) -> Any:
        """Adds the token to a bidirectional call."""
        return continuation(self._details(client_call_details), requests)
