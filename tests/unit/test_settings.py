"""Settings come from flags, then AUTOMATIONS_* variables, then a TOML file; bad values are named."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from automations import config


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRPC_ADDR", "METRICS_ADDR", "DATABASE_URL", "EXECUTORS", "CONFIG"):
        monkeypatch.delenv(f"AUTOMATIONS_{name}", raising=False)
    settings = config.load()
    assert settings.grpc_addr == "127.0.0.1:50051"
    assert settings.metrics_addr == "127.0.0.1:9464"
    assert settings.database_url == "sqlite:///./automations.db"
    assert settings.event_retention_seconds == 7 * 86400


def test_flags_beat_environment_which_beats_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = tmp_path / "automations.toml"
    toml.write_text(
        '[automations]\ngrpc-addr = "0.0.0.0:1"\nmetrics_addr = "0.0.0.0:2"\nlog_json = true\n'
    )
    monkeypatch.setenv("AUTOMATIONS_METRICS_ADDR", "127.0.0.1:3")
    monkeypatch.setenv(
        "AUTOMATIONS_EXECUTORS", "acme.page=10.0.0.1:7000,call-webhook=127.0.0.1:7001"
    )
    settings = config.load(
        {"grpc_addr": "127.0.0.1:4", "metrics_addr": None}, config_file=str(toml)
    )
    assert settings.grpc_addr == "127.0.0.1:4"
    assert settings.metrics_addr == "127.0.0.1:3"
    assert settings.log_json is True
    assert settings.executor_routes() == {
        "acme.page": "10.0.0.1:7000",
        "call-webhook": "127.0.0.1:7001",
    }


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"grpc_addr": "localhost"}, "grpc_addr"),
        ({"database_url": "mysql://x"}, "database_url"),
        ({"executors": ["no-address"]}, "executors"),
        ({"max_pending_events": 0}, "max_pending_events"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(
    overrides: dict[str, object], named: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        config.load(overrides)
    assert named in str(info.value)


def test_simulations_are_bounded_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPAN_SECONDS", "EVENTS", "STEPS", "FIRINGS"):
        monkeypatch.delenv(f"AUTOMATIONS_SIMULATION_MAX_{name}", raising=False)
    for name in ("SIMULATION_TIMEOUT_SECONDS", "SIMULATION_WORKERS", "CONFIG"):
        monkeypatch.delenv(f"AUTOMATIONS_{name}", raising=False)
    settings = config.load()
    assert settings.simulation_max_span_seconds == 366 * 86400
    assert settings.simulation_max_events == 10_000
    assert settings.simulation_max_steps == 100_000
    assert settings.simulation_max_firings == 10_000
    assert settings.simulation_timeout_seconds == 30.0
    assert settings.simulation_workers == 1
    monkeypatch.setenv("AUTOMATIONS_SIMULATION_MAX_FIRINGS", "50")
    assert config.load().simulation_max_firings == 50


@pytest.mark.parametrize(
    "setting",
    [
        "simulation_max_span_seconds",
        "simulation_max_events",
        "simulation_max_steps",
        "simulation_max_firings",
        "simulation_timeout_seconds",
        "simulation_workers",
    ],
)
def test_a_simulation_bound_of_zero_is_refused_naming_it(setting: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=setting):
        config.load({setting: 0})


def test_masked_hides_passwords() -> None:
    settings = config.load({"database_url": "postgresql://app:s3cret@db/automations"})
    assert settings.masked()["database_url"] == "postgresql://app:****@db/automations"


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"tls_cert_file": "CERT"}, "tls_cert_file and tls_key_file"),
        ({"tls_key_file": "KEY"}, "tls_cert_file and tls_key_file"),
        ({"tls_client_ca_file": "CA"}, "tls_client_ca_file"),
        ({"executor_tls_cert_file": "CERT"}, "executor_tls_cert_file and executor_tls_key_file"),
        (
            {"executor_tls_cert_file": "CERT", "executor_tls_key_file": "KEY"},
            "executor_tls_cert_file needs executor_tls_ca_file",
        ),
    ],
)
def test_tls_files_that_go_together_are_refused_alone_naming_them(
    tmp_path: Path, given: dict[str, str], named: str
) -> None:
    pem = tmp_path / "file.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(pydantic.ValidationError) as info:
        config.load({key: str(pem) for key in given})
    assert named in str(info.value)


def test_a_missing_tls_file_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        config.load({"tls_client_ca_file": str(tmp_path / "nowhere.pem")})
    assert "tls_client_ca_file: no such file" in str(info.value)


def test_tls_and_token_come_from_the_environment_and_the_token_is_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("cert", "key"):
        (tmp_path / f"{name}.pem").write_text("pem")
        monkeypatch.setenv(f"AUTOMATIONS_TLS_{name.upper()}_FILE", str(tmp_path / f"{name}.pem"))
    monkeypatch.setenv("AUTOMATIONS_API_TOKEN", "t0ken-value")
    settings = config.load()
    assert settings.tls_cert_file == str(tmp_path / "cert.pem")
    assert settings.api_token == "t0ken-value"
    shown = settings.masked()
    assert shown["api_token"] == "****"
    assert shown["tls_key_file"] == str(tmp_path / "key.pem")  # a path, not a secret


def test_an_api_token_with_spaces_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        config.load({"api_token": "two words"})
    assert "api_token" in str(info.value)


def test_the_prefect_ui_url_defaults_to_the_api_url_without_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PREFECT_API_URL", "PREFECT_UI_URL", "CONFIG"):
        monkeypatch.delenv(f"AUTOMATIONS_{name}", raising=False)
    assert config.load().prefect_ui_base() is None
    derived = config.load({"prefect_api_url": "http://prefect:4200/api/"})
    assert derived.prefect_ui_base() == "http://prefect:4200"
    given = config.load({"prefect_api_url": "http://p/api", "prefect_ui_url": "https://ui.example"})
    assert given.prefect_ui_base() == "https://ui.example"


def test_the_metric_minimum_is_prefects_unless_lowered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOMATIONS_METRIC_MINIMUM_SECONDS", raising=False)
    assert config.load().metric_minimum_seconds == 300.0
    monkeypatch.setenv("AUTOMATIONS_METRIC_MINIMUM_SECONDS", "5")
    assert config.load().metric_minimum_seconds == 5.0
    monkeypatch.setenv("AUTOMATIONS_METRIC_MINIMUM_SECONDS", "600")
    with pytest.raises(pydantic.ValidationError, match="metric_minimum_seconds"):
        config.load()


def test_webhook_processes_default_to_one_per_cpu_capped_and_one_off_linux(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(config.sys, "platform", "linux")
    for cpus, expected in (
        (1, 1),
        (2, 2),
        (3, 3),
        (64, config.MAX_AUTO_WEBHOOK_PROCESSES),
        (None, 1),
    ):
        monkeypatch.setattr(config.os, "cpu_count", lambda n=cpus: n)
        assert config.load({}).webhook_process_count() == expected
    assert config.load({"webhook_processes": 7}).webhook_process_count() == 7
    monkeypatch.setattr(config.sys, "platform", "darwin")
    monkeypatch.setattr(config.os, "cpu_count", lambda: 8)
    assert config.load({}).webhook_process_count() == 1
    with pytest.raises(pydantic.ValidationError, match="webhook_processes"):
        config.load({"webhook_processes": -1})
