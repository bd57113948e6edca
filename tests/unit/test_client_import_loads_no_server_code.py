"""``import automations.client`` stays light: no database, no rete, no server code."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "sqlalchemy",
    "durable",
    "durable_rules_engine",
    "alembic",
    "automations.store",
    "automations.engine",
    "automations.pipeline",
    "automations.api",
    "automations.server",
    "automations.dispatch",
)

PROBE = """
import json, sys
import automations.client
import automations
automations.Client  # the lazy top-level name resolves to the same client
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_client_loads_neither_sqlalchemy_nor_durable_rules() -> None:
    # A fresh interpreter: this test process has long since imported the server.
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(done.stdout)
    assert "automations.client" in loaded and "grpc" in loaded  # the probe did import it
    offending = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert offending == []
