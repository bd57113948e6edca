"""A real Prefect server for integration tests: its own venv, SQLite, a free local port.

Prefect is installed into ``<repo>/.prefect-venv`` (git-ignored, reused once there), never into
the project's own venv, whose pins it could clash with. :func:`ensure_prefect` returns its
``prefect`` command or the reason it cannot be installed (the tests then skip, saying why).
:class:`PrefectServer` runs ``prefect server start`` (no UI, no analytics, no background services;
with ``events=True`` the event persister runs, so that tests can read the events Prefect emits)
with its home and SQLite database in a temporary directory. SQLite under concurrent writers
sometimes answers 503 (SQLITE_BUSY); :class:`PrefectApi` retries it as Prefect's own client does. :class:`PrefectApi` is a
small synchronous REST client for creating and reading the objects the tests act on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.integration.engine_process import free_port

PREFECT_VERSION = "3.9.1"
"""The Prefect release the tests run against."""

REPO = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("AUTOMATIONS_PREFECT_VENV", REPO / ".prefect-venv"))
"""Where Prefect is installed (``AUTOMATIONS_PREFECT_VENV`` overrides)."""

INSTALL_TIMEOUT_SECONDS = 600.0

QUIET_SERVICES = (
    "SCHEDULER",
    "LATE_RUNS",
    "FOREMAN",
    "CANCELLATION_CLEANUP",
    "PAUSE_EXPIRATIONS",
    "REPOSSESSOR",
    "TRIGGERS",
    "TASK_RUN_RECORDER",
    "DB_VACUUM",
    "CLEANUP_RECONCILER",
)
"""Background services the tests turn off (the event persister stays on)."""


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import prefect; print(prefect.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_prefect() -> tuple[Path | None, str]:
    """Returns the ``prefect`` command of the test venv (installing it if needed), or why not."""
    python = VENV / "bin" / "python"
    prefect = VENV / "bin" / "prefect"
    if _installed_version(python) and prefect.exists():
        return prefect, "reused"
    try:
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(VENV)],
                check=True,
                capture_output=True,
                timeout=120,
            )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"prefect=={PREFECT_VERSION}"],
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
        )
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or b"").decode(errors="replace")[-800:]
        return None, f"cannot install prefect=={PREFECT_VERSION} into {VENV}: {tail}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"cannot install prefect=={PREFECT_VERSION} into {VENV}: {exc}"
    if not _installed_version(python) or not prefect.exists():
        return None, f"prefect=={PREFECT_VERSION} did not install into {VENV}"
    return prefect, "installed"


class PrefectServer:
    """``prefect server start`` on 127.0.0.1 and a free port, with SQLite under ``home``."""

    def __init__(self, prefect: Path, home: Path, *, events: bool = False) -> None:
        self.prefect = prefect
        self.events = events
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = home / "prefect-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        database = f"sqlite+aiosqlite:///{self.home / 'prefect.db'}"
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": database,
                "PREFECT_API_DATABASE_CONNECTION_URL": database,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_UI_ENABLED": "false",
                "PREFECT_UI_ENABLED": "false",
                "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
                "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.2",
            }
        )
        for service in QUIET_SERVICES:
            env[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "false"
        return env

    def start(self, timeout: float = 90.0) -> PrefectServer:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.prefect),
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-ui",
                    "--analytics-off",
                    *(() if self.events else ("--no-services",)),
                ],
                cwd=self.home,
                env=self.env(),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"prefect server exited with {self.proc.returncode}:\n{self.log()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return self
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"prefect server not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class PrefectApi:
    """A small synchronous client of the server's REST API for arranging and checking tests."""

    def __init__(self, api_url: str) -> None:
        self.client = httpx.Client(base_url=api_url, timeout=15)

    def close(self) -> None:
        self.client.close()

    def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        deadline = time.monotonic() + 30  # a busy machine keeps SQLite busy longer
        while True:  # 503: SQLite was busy; Prefect's own client retries it too
            response = self.client.request(method, path, json=body)
            if response.status_code != 503 or time.monotonic() >= deadline:
                return response
            time.sleep(0.1)

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code < 300, f"{response.request.url}: {response.text}"
        return response.json() if response.content else None

    def post(self, path: str, body: Any = None) -> Any:
        return self._ok(self._send("POST", path, body))

    def get(self, path: str) -> Any:
        return self._ok(self._send("GET", path))

    def status(self, path: str) -> int:
        return self._send("GET", path).status_code

    def flow(self) -> str:
        flow: dict[str, Any] = self.post("/flows/", {"name": f"flow-{uuid.uuid4().hex[:8]}"})
        return str(flow["id"])

    def deployment(self, flow_id: str | None = None, **fields: Any) -> str:
        body = {"name": f"deployment-{uuid.uuid4().hex[:8]}", "flow_id": flow_id or self.flow()}
        deployment: dict[str, Any] = self.post("/deployments/", {**body, **fields})
        return str(deployment["id"])

    def flow_run(self, deployment_id: str, **fields: Any) -> str:
        run: dict[str, Any] = self.post(f"/deployments/{deployment_id}/create_flow_run", fields)
        return str(run["id"])

    def flow_runs_of(self, deployment_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.post(
            "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}}}
        )
        return runs

    def set_state(self, flow_run_id: str, state_type: str) -> None:
        result = self.post(
            f"/flow_runs/{flow_run_id}/set_state",
            {"state": {"type": state_type}, "force": True},
        )
        assert result["status"] == "ACCEPT", result

    def events_of(self, resource_id: str, event: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first event named ``event`` about ``resource_id``, once Prefect has persisted it."""
        body = {"filter": {"any_resource": {"id": [resource_id]}, "event": {"name": [event]}}}
        deadline = time.monotonic() + timeout
        while True:
            events: list[dict[str, Any]] = self.post("/events/filter", body)["events"]
            if events:
                return events[0]
            assert time.monotonic() < deadline, f"no {event} event for {resource_id}"
            time.sleep(0.2)

    def work_pool(self) -> dict[str, Any]:
        pool: dict[str, Any] = self.post(
            "/work_pools/", {"name": f"pool {uuid.uuid4().hex[:8]}", "type": "process"}
        )
        return pool
