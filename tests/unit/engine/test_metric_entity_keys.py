"""Run ids held compactly by a metric come back exactly, in memory and through the records."""

from __future__ import annotations

import uuid

import orjson
from hypothesis import given
from hypothesis import strategies as st

from automations.engine.metrics.entities import EntityKeys
from tests.unit.engine.helpers import T0
from tests.unit.engine.metric_helpers import Driver, run_event


@given(st.text(max_size=40), st.uuids(), st.booleans())
def test_any_text_round_trips_and_prefixed_uuids_are_packed(
    prefix: str, value: uuid.UUID, upper: bool
) -> None:
    keys = EntityKeys()
    text = prefix + (str(value).upper() if upper else str(value))
    packed = keys.pack(text)
    assert keys.unpack(packed) == text
    if not upper or str(value).upper() == str(value):
        assert isinstance(packed, bytes) and len(packed) == 17
    assert keys.unpack(keys.pack(prefix)) == prefix


def test_a_restart_writes_and_reads_the_run_ids_as_they_were() -> None:
    run = str(uuid.uuid4())
    trigger = {
        "type": "metric",
        "metric": {"name": "duration", "threshold": 100, "operator": ">", "range": 3600},
    }
    drive = Driver(trigger)
    drive.send(0, run_event("s", "Running", run, 0))
    (record,) = [r for r in drive.store.rows.values() if r.kind == "metric_samples"]
    data = orjson.loads(record.data) if isinstance(record.data, bytes) else record.data
    assert data["e"] == [[f"prefect.flow-run.{run}", [], T0]]
    drive.restart(10)
    drive.send(500, run_event("e", "Completed", run, 500))
    assert drive.until(800) == [(800.0, "Triggered", 500.0, {}, None)]
