"""The bundled executors by name, and :func:`run`, which serves one of them in this process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from automations import executor
from automations.executors import network_policy, noop, prefect

logger = logging.getLogger(__name__)

ACTION_TYPES: Mapping[str, tuple[str, ...]] = {
    "webhook": ("call-webhook",),
    "notify": ("send-notification",),
    "noop": ("noop",),
    "prefect": prefect.ACTION_TYPES,
}
"""The action types each bundled executor serves (``noop`` also serves ``--action-type``s)."""


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    """Options of a bundled executor (the ``automations executor NAME`` flags)."""

    name: str
    """The executor's name: a key of :data:`EXECUTORS`."""

    state_path: Path | None = None
    """The idempotency store's SQLite file; ``./automations-executor-<name>.db`` when unset."""

    timeout_seconds: float | None = None
    """The default timeout of one action (webhook request, notification); 10 s when unset."""

    deny_private_networks: bool = False
    """Webhooks: also refuse loopback and private addresses."""

    action_types: tuple[str, ...] = ()
    """``noop`` only: more action types to serve."""

    retention_seconds: float = executor.DEFAULT_RETENTION_SECONDS
    """How long completed idempotency keys are remembered."""

    prefect_api_url: str | None = None
    """``prefect`` only: the Prefect API's base URL; ``$PREFECT_API_URL`` when unset."""

    def sqlite_store(self) -> executor.SqliteIdempotencyStore:
        """The persistent idempotency store at ``state_path``."""
        return executor.SqliteIdempotencyStore(
            self.state_path or executor.default_state_path(self.name),
            retention_seconds=self.retention_seconds,
        )


def _webhook(options: ExecutorOptions) -> executor.Executor:
    from automations.executors import webhook

    caller = webhook.WebhookCaller(
        timeout_seconds=options.timeout_seconds or webhook.DEFAULT_TIMEOUT_SECONDS,
        deny_private_networks=options.deny_private_networks,
    )
    return executor.Executor(
        name=options.name,
        handlers={webhook.ACTION_TYPE: caller},
        store=options.sqlite_store(),
        on_close=[caller.aclose],
    )


def _notify(options: ExecutorOptions) -> executor.Executor:
    from automations.executors import notify

    notifier = notify.Notifier(
        timeout_seconds=options.timeout_seconds or notify.DEFAULT_TIMEOUT_SECONDS,
        deny_private_networks=options.deny_private_networks,
    )
    return executor.Executor(
        name=options.name, handlers={notify.ACTION_TYPE: notifier}, store=options.sqlite_store()
    )


def _noop(options: ExecutorOptions) -> executor.Executor:
    types = dict.fromkeys((noop.ACTION_TYPE, *options.action_types))
    return executor.Executor(
        name=options.name,
        handlers={t: noop.succeed for t in types},
        store=executor.MemoryIdempotencyStore(),
        bound_by_deadline=False,
    )


def _prefect(options: ExecutorOptions) -> executor.Executor:
    return prefect.build(
        options.name,
        options.prefect_api_url,
        options.sqlite_store,
        timeout_seconds=options.timeout_seconds,
    )


EXECUTORS: Mapping[str, Callable[[ExecutorOptions], executor.Executor]] = {
    "webhook": _webhook,
    "notify": _notify,
    "noop": _noop,
    "prefect": _prefect,
}
"""Builds each bundled executor by name (heavy libraries are imported only when built)."""


def build(options: ExecutorOptions) -> executor.Executor:
    """Builds the executor ``options.name``.

    Raises:
        KeyError: No bundled executor has that name.
    """
    return EXECUTORS[options.name](options)


def run(
    name: str,
    addr: str,
    *,
    state: str | Path | None = None,
    metrics_addr: str | None = None,
    deny_private_networks: bool = False,
    timeout: float | None = None,
    action_types: tuple[str, ...] = (),
    grace_seconds: float = 5.0,
    parent_pid: int | None = None,
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    tls_client_ca_file: str | None = None,
    prefect_api_url: str | None = None,
) -> int:
    """Serves bundled executor ``name`` on ``addr`` until SIGTERM/SIGINT; returns the exit code.

    Args:
        name: A key of :data:`EXECUTORS`.
        addr: gRPC ``HOST:PORT``.
        state: The idempotency store's SQLite file (default ``./automations-executor-<name>.db``).
        metrics_addr: Prometheus ``HOST:PORT``; no metrics endpoint when None.
        deny_private_networks: Webhooks and notifications: also refuse loopback and private
            addresses (cloud metadata addresses are always refused).
        timeout: Default timeout of one action in seconds.
        action_types: ``noop`` only: more action types to serve.
        grace_seconds: How long in-flight calls may run on after SIGTERM.
        parent_pid: Stop when this process dies; ``AUTOMATIONS_PARENT_PID`` when None.
        tls_cert_file: PEM certificate chain; with ``tls_key_file``, serve TLS.
        tls_key_file: PEM private key of ``tls_cert_file``.
        tls_client_ca_file: PEM CA bundle verifying callers' certificates (mTLS).
        prefect_api_url: ``prefect`` only: the Prefect API's base URL (``$PREFECT_API_URL``).

    Returns:
        0 after a graceful stop, 1 when the address cannot be bound, 2 for an unknown name or
        unusable TLS files.
    """
    if name not in EXECUTORS:
        logger.error("no bundled executor %r (choose from %s)", name, ", ".join(EXECUTORS))
        return 2
    options = ExecutorOptions(
        name=name,
        state_path=Path(state) if state is not None else None,
        timeout_seconds=timeout,
        deny_private_networks=deny_private_networks,
        action_types=action_types,
        prefect_api_url=prefect_api_url,
    )
    serve_options = executor.ServeOptions(
        addr=addr,
        metrics_addr=metrics_addr,
        grace_seconds=grace_seconds,
        parent_pid=parent_pid if parent_pid is not None else executor.parent_pid_from_env(),
        tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file,
        tls_client_ca_file=tls_client_ca_file,
    )

    # every outbound connection of this process goes through the network policy; the prefect
    # executor calls its operator's own Prefect API, often on a private address
    network_policy.guard_connections(
        deny_private_networks=deny_private_networks and name != "prefect"
    )

    async def main() -> int:
        try:
            built = build(options)
        except ValueError as exc:  # e.g. prefect without an API URL
            logger.error("cannot start executor %s: %s", name, exc)
            return 2
        return await executor.serve(built, serve_options)

    return asyncio.run(main())
