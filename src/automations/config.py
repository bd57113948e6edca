"""One settings object for the engine: flags, ``AUTOMATIONS_*`` environment, optional TOML file.

Precedence, highest first: command-line flags, environment variables, the TOML file named by
``--config`` / ``AUTOMATIONS_CONFIG``, the defaults below. Everything is validated at start; a bad value
stops the engine with a message naming the setting.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pydantic
import pydantic_settings

_SECRET_MARKERS = ("password", "token", "secret")
MAX_AUTO_WEBHOOK_PROCESSES = 4
"""The most webhook processes started when ``webhook_processes`` is 0 (one per CPU)."""
_PEM_FILES = (
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "executor_tls_ca_file",
    "executor_tls_cert_file",
    "executor_tls_key_file",
)


def _split_address(value: str, field: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{field} must be HOST:PORT, got {value!r}")
    return value


class Settings(pydantic_settings.BaseSettings):
    """The engine's effective configuration.

    Attributes:
        grpc_addr: Where the gRPC API listens (HOST:PORT).
        metrics_addr: Where Prometheus metrics are served at ``/metrics`` (HOST:PORT; empty: off).
        database_url: SQLAlchemy URL; ``sqlite:///path`` (default) or ``postgresql://...``.
        executors: ``ACTION_TYPE=HOST:PORT`` routes to executors running elsewhere.
        no_executors: Do not start the bundled executors.
        event_retention_seconds: How long the event log keeps events.
        max_pending_events: Events accepted but not yet committed before the engine answers
            RESOURCE_EXHAUSTED (backpressure).
        max_group_events: The most events committed in one transaction (group commit).
        group_commit_seconds: About how long one group commit should take: the writer sizes
            groups from the time per event of the last ones, so calls (recording outcomes,
            automation changes) and small batches never wait behind seconds of work.
        sqlite_wal_autocheckpoint: SQLite WAL pages (4 KiB) after which a commit checkpoints
            itself: the safety net behind the background checkpoints.
        sqlite_checkpoint_pages: WAL pages after which a thread of its own checkpoints (SQLite),
            so that no commit waits for a checkpoint; 0 leaves checkpoints to the commits
            (``sqlite_wal_autocheckpoint``).
        sqlite_synchronous: SQLite's ``synchronous`` pragma: NORMAL survives a process crash,
            FULL also a power loss.
        shutdown_grace_seconds: How long SIGTERM waits for in-flight requests.
        executor_state_dir: Where the bundled executors keep their idempotency records (default:
            beside a SQLite database, else ``./automations-executors``).
        action_timeout_seconds: The deadline of one ExecuteAction call.
        action_max_attempts: Attempts of an invocation (first included) before it is
            dead-lettered.
        action_max_age_seconds: Age after which a failing invocation is not retried again.
        action_retry_base_seconds: The delay before the first retry (doubling, with jitter).
        action_retry_max_seconds: The longest delay between two attempts.
        dispatch_concurrency: Invocations in flight at most. Invocations in flight to one
            executor travel together in one ``ExecuteActions`` call, so a larger bound means
            larger batches and fewer calls (bench.dispatch, noop executor, same run: 64 ->
            ~3,500 invocations/s, 256 -> ~5,200, 1024 -> ~6,800).
        max_chain_depth: Loop guard: automation-made events in a row after which a firing's
            actions are not run.
        max_cascade_firings: Loop guard: firings on automation-made events per originating
            event (the whole causal tree, across transactions) after which further firings'
            actions are not run.
        prefect_api_url: A Prefect server's API (``http://host:4200/api``): ``serve`` then starts
            the bundled ``prefect`` executor, and templates can use ``flow_run``, ``deployment``,
            ``work_pool``... loaded from it.
        prefect_ui_url: The Prefect UI's base URL (``http://host:4200``), for the ``ui_url`` and
            ``ui_resource_events_url`` template filters. Empty: ``prefect_api_url`` without its
            ``/api`` suffix (as Prefect derives its UI URL); with neither set the filters give
            None.
        metric_minimum_seconds: The smallest ``range`` and ``firing_for`` a metric trigger may
            be created or updated with: Prefect's 300 s; lower it only to try metric triggers
            quickly (tests, demonstrations). Stored automations load whatever it is.
        log_level: Python logging level name.
        log_json: Structured JSON logs, one object per line.
        database_check_seconds: How often the database is pinged; while it does not answer,
            health reports NOT_SERVING for the engine and every service.
        tls_cert_file: PEM certificate chain of the gRPC port (with ``tls_key_file``: TLS on;
            both or neither).
        tls_key_file: PEM private key of ``tls_cert_file``.
        tls_client_ca_file: PEM CA bundle; when set, clients must present a certificate it
            signed (mTLS). Needs ``tls_cert_file``.
        api_token: Static bearer token every automations.v1 call must carry
            (``authorization: Bearer <token>``); health and reflection stay open. Empty: no
            check. A secret: masked by ``config show``; send it only over TLS.
        executor_tls_ca_file: PEM CA bundle verifying executors configured with ``executors``;
            when set, the engine calls them over TLS.
        executor_tls_cert_file: PEM client certificate for executors requiring mTLS (with
            ``executor_tls_key_file``; needs ``executor_tls_ca_file``).
        executor_tls_key_file: PEM private key of ``executor_tls_cert_file``.
        executor_deny_private_networks: The bundled webhook and notify executors refuse
            loopback and private addresses too (cloud metadata addresses are always refused).
        gil_switch_interval_seconds: The interpreter's GIL switch interval while serving
            (``process_tuning``); 0 keeps Python's default (5 ms).
        gc_tuning: Freeze what start-up loaded out of the garbage collector's sight and collect
            young objects less often while serving (``process_tuning``).
        memory_trim_seconds: How often memory the C allocator holds free is returned to the
            system (``process_tuning``); 0 never.
        max_message_bytes: The largest gRPC message accepted or sent (a request's whole batch
            of events, or a page of results).
        max_concurrent_rpcs: Calls (streams included) served at once; more are answered
            RESOURCE_EXHAUSTED at once.
        http_addr: Where incoming webhooks are served at ``/hooks/<slug>`` (HOST:PORT; empty:
            off).
        webhook_base_url: The webhooks' public base URL, shown as their ``url`` (empty:
            ``http://`` and ``http_addr``); set it when a proxy or another host name fronts them.
        webhook_max_body_bytes: The largest webhook request body; larger ones are answered 413.
        webhook_deliveries_kept: Requests kept in each webhook's delivery history.
        webhook_threads: Threads rendering webhook templates off the event loop (in each
            webhook process).
        webhook_processes: Processes serving ``/hooks/<slug>`` side by side (the kernel spreads
            connections over them); 0: one per CPU, at most ``MAX_AUTO_WEBHOOK_PROCESSES``
            (one off Linux).
        simulation_max_span_seconds: The longest span of simulated time one SimulateAutomation
            call may ask for (``until`` after the clock's start); longer: INVALID_ARGUMENT.
        simulation_max_events: The most events one SimulateAutomation call may carry.
        simulation_max_steps: The most instants a simulation's virtual clock may visit (each
            event's time and each deadline due); a run reaching it is stopped (INVALID_ARGUMENT).
            About 40 µs each for a proactive trigger, so the default is about 4 s of CPU.
        simulation_max_firings: The most firings one simulation may make before it is stopped.
        simulation_timeout_seconds: Wall-clock seconds one simulation may run before its worker
            process is killed (DEADLINE_EXCEEDED).
        simulation_workers: Worker processes running simulations, one each at a time, off the
            process serving ingest; more calls wait for a free one.
        cluster: Run as one replica of a cluster (PostgreSQL ``database_url`` and NATS
            JetStream at ``nats_url``); every replica serves the whole API.
        nats_url: The NATS server(s) with JetStream of cluster mode (``nats://host:4222``;
            several comma-separated).
        cluster_partitions: The partition count of a cluster created by this replica; fixed at
            creation, and every later replica must be started with the same count.
        cluster_stream_prefix: Names the cluster's JetStream streams (``<prefix>_RAW``,
            ``<prefix>_FWD``) and subjects; replicas of one cluster share it.
        cluster_stream_replicas: JetStream replicas of the streams (1 on one NATS server, 3 in
            production).
        cluster_lease_seconds: How long a partition lease lasts without renewal: a replica
            stopped or cut off longer than this loses its partitions.
        cluster_renew_seconds: How often a replica renews its leases and heartbeats.
        cluster_probe_seconds: How often a replica probes its peers' liveness and rebalances.
    """

    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix="AUTOMATIONS_", extra="forbid", validate_default=True
    )

    grpc_addr: str = "127.0.0.1:50051"
    metrics_addr: str = "127.0.0.1:9464"
    database_url: str = "sqlite:///./automations.db"
    executors: Annotated[list[str], pydantic_settings.NoDecode] = pydantic.Field(
        default_factory=list
    )
    no_executors: bool = False
    event_retention_seconds: float = pydantic.Field(default=7 * 86400, gt=0)
    max_pending_events: int = pydantic.Field(default=100_000, gt=0)
    max_group_events: int = pydantic.Field(default=20_000, gt=0)
    group_commit_seconds: float = pydantic.Field(default=0.25, gt=0, le=60)
    sqlite_synchronous: str = "NORMAL"
    sqlite_wal_autocheckpoint: int = pydantic.Field(default=10_000, ge=100, le=10_000_000)
    sqlite_checkpoint_pages: int = pydantic.Field(default=256, ge=0, le=10_000_000)
    shutdown_grace_seconds: float = pydantic.Field(default=10.0, ge=0)
    executor_state_dir: str = ""
    action_timeout_seconds: float = pydantic.Field(default=30.0, gt=0)
    action_max_attempts: int = pydantic.Field(default=5, ge=1)
    action_max_age_seconds: float = pydantic.Field(default=3600.0, gt=0)
    action_retry_base_seconds: float = pydantic.Field(default=1.0, gt=0)
    action_retry_max_seconds: float = pydantic.Field(default=300.0, gt=0)
    dispatch_concurrency: int = pydantic.Field(default=1024, ge=1, le=10_000)
    max_chain_depth: int = pydantic.Field(default=8, ge=1, le=1000)
    max_cascade_firings: int = pydantic.Field(default=1000, ge=1, le=10_000_000)
    prefect_api_url: str = ""
    prefect_ui_url: str = ""
    metric_minimum_seconds: float = pydantic.Field(default=300.0, ge=1.0, le=300.0)
    log_level: str = "INFO"
    log_json: bool = False
    database_check_seconds: float = pydantic.Field(default=5.0, gt=0)
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    api_token: str = ""
    executor_tls_ca_file: str = ""
    executor_tls_cert_file: str = ""
    executor_tls_key_file: str = ""
    executor_deny_private_networks: bool = False
    gil_switch_interval_seconds: float = pydantic.Field(default=0.001, ge=0, le=1)
    gc_tuning: bool = True
    memory_trim_seconds: float = pydantic.Field(default=10.0, ge=0, le=3600)
    max_message_bytes: int = pydantic.Field(default=16 << 20, ge=1 << 20, le=1 << 30)
    max_concurrent_rpcs: int = pydantic.Field(default=1000, ge=1, le=100_000)
    http_addr: str = "127.0.0.1:8470"
    webhook_base_url: str = ""
    webhook_max_body_bytes: int = pydantic.Field(default=5 << 20, ge=1024, le=1 << 30)
    webhook_deliveries_kept: int = pydantic.Field(default=100, ge=1, le=100_000)
    webhook_threads: int = pydantic.Field(default=2, ge=1, le=64)
    webhook_processes: int = pydantic.Field(default=0, ge=0, le=64)
    simulation_max_span_seconds: float = pydantic.Field(default=366 * 86400, gt=0)
    simulation_max_events: int = pydantic.Field(default=10_000, ge=1, le=10_000_000)
    simulation_max_steps: int = pydantic.Field(default=100_000, ge=1, le=1_000_000_000)
    simulation_max_firings: int = pydantic.Field(default=10_000, ge=1, le=100_000_000)
    simulation_timeout_seconds: float = pydantic.Field(default=30.0, gt=0, le=86400)
    simulation_workers: int = pydantic.Field(default=1, ge=1, le=64)
    cluster: bool = False
    nats_url: str = "nats://127.0.0.1:4222"
    cluster_partitions: int = pydantic.Field(default=32, ge=1, le=4096)
    cluster_stream_prefix: str = pydantic.Field(
        default="AUTOMATIONS", pattern=r"^[A-Za-z0-9_-]{1,64}$"
    )
    cluster_stream_replicas: int = pydantic.Field(default=1, ge=1, le=5)
    cluster_lease_seconds: float = pydantic.Field(default=5.0, gt=0, le=600)
    cluster_renew_seconds: float = pydantic.Field(default=1.0, gt=0, le=600)
    cluster_probe_seconds: float = pydantic.Field(default=0.2, gt=0, le=60)

    @pydantic.field_validator("grpc_addr")
    @classmethod
    def _check_grpc_addr(cls, value: str) -> str:
        return _split_address(value, "grpc_addr")

    @pydantic.field_validator("metrics_addr")
    @classmethod
    def _check_metrics_addr(cls, value: str) -> str:
        return value and _split_address(value, "metrics_addr")

    @pydantic.field_validator("http_addr")
    @classmethod
    def _check_http_addr(cls, value: str) -> str:
        return value and _split_address(value, "http_addr")

    @pydantic.field_validator("webhook_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("webhook_base_url must be an http:// or https:// URL")
        return value.rstrip("/")

    def prefect_ui_base(self) -> str | None:
        """The Prefect UI's base URL: ``prefect_ui_url``, else the API URL without ``/api``."""
        if self.prefect_ui_url:
            return self.prefect_ui_url
        api = self.prefect_api_url.rstrip("/")
        if not api:
            return None
        return api.removesuffix("/api") or None

    def webhook_process_count(self) -> int:
        """The webhook processes to start: ``webhook_processes``, else one per CPU (capped)."""
        if self.webhook_processes:
            return self.webhook_processes
        if not sys.platform.startswith("linux"):
            return 1  # elsewhere SO_REUSEPORT does not spread connections over the sockets
        return max(1, min(MAX_AUTO_WEBHOOK_PROCESSES, os.cpu_count() or 1))

    def webhook_url_base(self) -> str:
        """The webhooks' base URL: ``webhook_base_url``, else ``http://`` and ``http_addr``."""
        if self.webhook_base_url:
            return self.webhook_base_url
        host, _, port = self.http_addr.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}" if self.http_addr else ""

    @pydantic.field_validator("executors", mode="before")
    @classmethod
    def _split_executors(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @pydantic.field_validator("executors")
    @classmethod
    def _check_executors(cls, value: list[str]) -> list[str]:
        for item in value:
            action_type, sep, address = item.partition("=")
            if not sep or not action_type:
                raise ValueError(f"executors entries must be ACTION_TYPE=HOST:PORT, got {item!r}")
            _split_address(address, "executors")
        return value

    @pydantic.field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("database_url must be a sqlite:/// or postgresql:// URL")
        return value

    @pydantic.field_validator("sqlite_synchronous")
    @classmethod
    def _check_sync(cls, value: str) -> str:
        if value.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA")
        return value.upper()

    @pydantic.field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    @pydantic.field_validator(*_PEM_FILES)
    @classmethod
    def _check_pem_file(cls, value: str, info: pydantic.ValidationInfo) -> str:
        if value and not Path(value).is_file():
            raise ValueError(f"{info.field_name}: no such file {value!r}")
        return value

    @pydantic.field_validator("api_token")
    @classmethod
    def _check_token(cls, value: str) -> str:
        if value and not (value.isascii() and value.isprintable() and " " not in value):
            raise ValueError("api_token must be printable ASCII without spaces")
        return value

    @pydantic.field_validator("nats_url")
    @classmethod
    def _check_nats_url(cls, value: str) -> str:
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://")):
                raise ValueError(
                    f"nats_url must be nats://HOST:PORT (comma-separated), got {url!r}"
                )
        return value

    @pydantic.model_validator(mode="after")
    def _check_cluster_timing(self) -> Settings:
        if self.cluster_renew_seconds >= self.cluster_lease_seconds:
            raise ValueError(
                "cluster_renew_seconds must be shorter than cluster_lease_seconds "
                f"({self.cluster_renew_seconds} >= {self.cluster_lease_seconds})"
            )
        return self

    def nats_servers(self) -> list[str]:
        """The NATS server URLs of ``nats_url``."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    @pydantic.model_validator(mode="after")
    def _check_tls_pairs(self) -> Settings:
        pairs = (
            ("tls_cert_file", "tls_key_file"),
            ("executor_tls_cert_file", "executor_tls_key_file"),
        )
        for cert, key in pairs:
            if bool(getattr(self, cert)) != bool(getattr(self, key)):
                raise ValueError(f"{cert} and {key} must be set together (both or neither)")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        if self.executor_tls_cert_file and not self.executor_tls_ca_file:
            raise ValueError("executor_tls_cert_file needs executor_tls_ca_file")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[pydantic_settings.BaseSettings],
        init_settings: pydantic_settings.PydanticBaseSettingsSource,
        env_settings: pydantic_settings.PydanticBaseSettingsSource,
        dotenv_settings: pydantic_settings.PydanticBaseSettingsSource,
        file_secret_settings: pydantic_settings.PydanticBaseSettingsSource,
    ) -> tuple[pydantic_settings.PydanticBaseSettingsSource, ...]:
        """Flags (init) override the environment, which overrides the TOML file."""
        return (init_settings, env_settings, _TomlSource(settings_cls))

    def executor_routes(self) -> dict[str, str]:
        """Returns ``action type -> HOST:PORT`` from ``executors``."""
        return dict(item.split("=", 1) for item in self.executors)

    def masked(self) -> dict[str, Any]:
        """Returns the settings as a dict with secrets (passwords in URLs, tokens) masked."""
        out: dict[str, Any] = self.model_dump()
        for key, value in out.items():
            if any(marker in key for marker in _SECRET_MARKERS) and value:
                out[key] = "****"
            elif isinstance(value, str) and "://" in value and "@" in value:
                scheme, rest = value.split("://", 1)
                creds, host = rest.rsplit("@", 1)
                user = creds.split(":", 1)[0]
                out[key] = f"{scheme}://{user}:****@{host}" if ":" in creds else value
        return out


class _TomlSource(pydantic_settings.PydanticBaseSettingsSource):
    """Reads the TOML file named by ``AUTOMATIONS_CONFIG`` (top level or an ``[automations]`` table)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("AUTOMATIONS_CONFIG")
        if not path:
            return {}
        data = tomllib.loads(Path(path).read_text())
        section = data.get("automations", data)
        if not isinstance(section, Mapping):
            raise ValueError(f"{path}: [automations] must be a table")
        return {key.replace("-", "_"): value for key, value in section.items()}


def load(overrides: Mapping[str, Any] | None = None, *, config_file: str | None = None) -> Settings:
    """Builds the settings from flags (``overrides``, None values ignored), environment and file.

    Raises:
        pydantic.ValidationError: A setting is invalid; the message names it.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not config_file:
        return Settings(**given)
    previous = os.environ.get("AUTOMATIONS_CONFIG")
    os.environ["AUTOMATIONS_CONFIG"] = config_file
    try:
        return Settings(**given)
    finally:
        if previous is None:
            del os.environ["AUTOMATIONS_CONFIG"]
        else:
            os.environ["AUTOMATIONS_CONFIG"] = previous
