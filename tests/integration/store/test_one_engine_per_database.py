"""One engine per database: a second `serve` on a database in use refuses, naming the holder."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from automations.store import engine_lock
from tests.integration.engine_process import EngineProcess, serve_refused


def test_a_second_engine_refuses_to_start_and_names_the_holder(
    database_url: str, tmp_path: Path
) -> None:
    first = EngineProcess(tmp_path, database_url=database_url).start()
    try:
        assert first.proc is not None
        refused = serve_refused(database_url, tmp_path)
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
        (line,) = [t for t in refused.stderr.splitlines() if t.startswith("automations serve")]
        assert "another engine holds this database: automations on " in line
        assert f"pid {first.proc.pid} gRPC {first.grpc_addr}" in line
        assert first.proc.poll() is None  # the holder serves on
    finally:
        first.stop()


def test_the_lock_goes_with_an_engine_killed_outright(database_url: str, tmp_path: Path) -> None:
    first = EngineProcess(tmp_path, database_url=database_url).start()
    first.kill9()
    second = EngineProcess(tmp_path, database_url=database_url).start()
    second.stop()


def test_the_holder_named_is_in_this_database_not_another(
    postgres_url: str, tmp_path: Path
) -> None:
    """Advisory locks are per database: an engine holding the same key elsewhere is not named."""
    other_url = sa.make_url(postgres_url).set(database="postgres")
    other = sa.create_engine(other_url, poolclass=sa.pool.NullPool)
    with other.connect() as decoy:
        decoy.execute(
            sa.text("SELECT set_config('application_name', 'decoy in another db', false)")
        )
        decoy.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": engine_lock.PG_LOCK_KEY})
        decoy.commit()
        first = EngineProcess(tmp_path, database_url=postgres_url).start()
        try:
            refused = serve_refused(postgres_url, tmp_path)
            assert refused.returncode == 1
            (line,) = [t for t in refused.stderr.splitlines() if t.startswith("automations serve")]
            assert "decoy" not in line
            assert "another engine holds this database: automations on " in line
        finally:
            first.stop()
    other.dispose()
