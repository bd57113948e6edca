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


def test_masked_hides_passwords() -> None:
    settings = config.load({"database_url": "postgresql://app:s3cret@db/automations"})
    assert settings.masked()["database_url"] == "postgresql://app:****@db/automations"
