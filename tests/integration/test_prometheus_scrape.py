"""A real Prometheus scrapes a real engine; promtool checks the exposition and the alerting rules.

Prometheus comes from Debian's ``prometheus`` package (it ships ``promtool`` too). When the binaries
are missing and we run as root with apt, the set-up installs the package; the package's own service
plays no part (under Docker ``policy-rc.d`` stops it from starting, and on a host it would listen on
:9090 with its own storage), because the test runs the binary itself with a temporary config and
storage directory on a free port. Without the binaries and no way to install them the tests skip
with the reason.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from automations.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from tests.integration.engine_process import EngineProcess, free_port

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = REPO / "deploy" / "prometheus" / "alerts_test.yml"
EXAMPLE_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "automations-dashboard.json"

EVENTS = 500
BATCH = 100
# the apt download is ~20 MB; a test that has to install first gets this much more time
INSTALL_TIMEOUT = 120


@dataclass(frozen=True)
class PrometheusTools:
    prometheus: str
    promtool: str


def _install_prometheus() -> str | None:
    """Installs Debian's ``prometheus`` package; returns why it could not, or None."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "not root, so apt-get install is not possible"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        "prometheus",
    ]
    try:
        done = subprocess.run(install, env=env, capture_output=True, timeout=INSTALL_TIMEOUT)
        if done.returncode != 0:
            # stale package lists are the usual cause; refresh once and try again
            subprocess.run(
                ["apt-get", "update", "-q"], env=env, capture_output=True, timeout=INSTALL_TIMEOUT
            )
            done = subprocess.run(install, env=env, capture_output=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"apt-get install prometheus took longer than {INSTALL_TIMEOUT}s"
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        return f"apt-get install prometheus failed: {' | '.join(tail)}"
    return None


def _find_tools() -> PrometheusTools | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus and promtool:
        return PrometheusTools(prometheus, promtool)
    return None


@pytest.fixture(scope="module")
def tools() -> PrometheusTools:
    """The prometheus and promtool binaries, installed from Debian's package when missing."""
    found = _find_tools()
    if found is None:
        why = _install_prometheus()
        found = _find_tools()
        if found is None:
            reason = f"Prometheus is not available: {why or 'installed, but not on PATH'}"
            print(reason)
            pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path_factory.mktemp("engine"))
    try:
        yield proc.start()
    finally:
        proc.stop()


class PrometheusServer:
    """A ``prometheus`` process that scrapes one target every second and loads our alerts."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.addr = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.addr}"
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "automations", "static_configs": [{"targets": [target]}]}
            ],
        }
        self.config_path = workdir / "prometheus.yml"
        # JSON is YAML: no YAML writer needed
        self.config_path.write_text(json.dumps(config, indent=2))
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.addr}",
                "--log.level=warn",
            ],
            cwd=workdir,
            stdout=self._log,
            stderr=self._log,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as reply:
            body = reply.read()
        return json.loads(body) if path.startswith("/api/") else body.decode()

    def query(self, expr: str) -> list[dict[str, Any]]:
        reply = self.get("/api/v1/query", query=expr)
        assert reply["status"] == "success", reply
        result: list[dict[str, Any]] = reply["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single sample of an instant query, or None while there is none."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_for(self, expr: str, wanted: float, timeout: float = 30.0) -> float | None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited:\n{self.log()}"
            seen = self.value(expr)
            if seen == wanted:
                return seen
            time.sleep(0.2)
        return seen

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.get("/-/ready")
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"prometheus not ready in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def prometheus(
    tools: PrometheusTools, engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        tools.prometheus, tmp_path_factory.mktemp("prom"), engine.metrics_addr
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _event() -> event_pb2.Event:
    ev = event_pb2.Event(id=str(uuid.uuid4()), event="prometheus.scrape.Test")
    ev.occurred.GetCurrentTime()
    ev.resource.labels["prefect.resource.id"] = "res.scrape"
    return ev


def _exposition(engine: EngineProcess) -> str:
    with urllib.request.urlopen(f"http://{engine.metrics_addr}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
    return text


@pytest.mark.timeout(120 + INSTALL_TIMEOUT)
def test_prometheus_scrapes_the_event_count_and_a_latency_quantile(
    engine: EngineProcess, prometheus: PrometheusServer
) -> None:
    # a first scrape before the events, so that rate() sees the histogram grow
    assert prometheus.wait_for('up{job="automations"}', 1.0) == 1.0, prometheus.log()
    assert prometheus.wait_for("automations_events_accepted_total", 0.0) == 0.0

    with grpc.insecure_channel(engine.grpc_addr) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        for _ in range(EVENTS // BATCH):
            reply = stub.PublishEvents(
                event_service_pb2.PublishEventsRequest(events=[_event() for _ in range(BATCH)])
            )
            assert all(r.status == event_service_pb2.EVENT_STATUS_ACCEPTED for r in reply.results)

    accepted = prometheus.wait_for("automations_events_accepted_total", float(EVENTS))
    assert accepted == EVENTS
    assert prometheus.value("automations_events_received_total") == EVENTS
    assert prometheus.value("sum(automations_events_rejected_total)") in (None, 0.0)
    assert prometheus.value('up{job="automations"}') == 1.0

    p99 = prometheus.value(
        "histogram_quantile(0.99, sum(rate(automations_ingest_latency_seconds_bucket[1m])) by (le))"
    )
    assert p99 is not None and math.isfinite(p99) and p99 > 0, p99
    batches = prometheus.value(
        'sum(automations_grpc_requests_total{grpc_method="PublishEvents",grpc_code="OK"})'
    )
    assert batches == EVENTS // BATCH
    print(f"Prometheus: accepted={accepted:.0f} ingest p99={p99 * 1000:.2f} ms")


@pytest.mark.timeout(120 + INSTALL_TIMEOUT)
def test_every_alerting_rule_evaluates_against_the_live_engine(
    prometheus: PrometheusServer,
) -> None:
    deadline = time.monotonic() + 30
    while True:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
            break
        assert time.monotonic() < deadline, f"rules never evaluated: {groups}"
        time.sleep(0.2)
    broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not broken
    # a healthy engine with no backlog fires nothing
    firing = {r["name"] for r in rules if r.get("state") == "firing"}
    assert not firing


@pytest.mark.timeout(60 + INSTALL_TIMEOUT)
def test_every_dashboard_query_is_valid_promql(prometheus: PrometheusServer) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {"$__rate_interval": "1m", "$job": "automations", "$instance": ".*"}
    answered = 0
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {expr}"
            try:
                prometheus.query(expr)
            except urllib.error.HTTPError as exc:  # 400 with the parse error
                pytest.fail(f"{panel['title']}: {expr}: {exc.read().decode()}")
            answered += 1
    assert answered >= 30


@pytest.mark.timeout(60 + INSTALL_TIMEOUT)
def test_promtool_check_metrics_passes_on_the_exposition(
    tools: PrometheusTools, engine: EngineProcess
) -> None:
    exposition = _exposition(engine)
    assert "automations_events_accepted_total" in exposition
    assert "process_resident_memory_bytes" in exposition
    done = subprocess.run(
        [tools.promtool, "check", "metrics"],
        input=exposition.encode(),
        capture_output=True,
        timeout=30,
    )
    problems = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, problems


@pytest.mark.timeout(60 + INSTALL_TIMEOUT)
def test_promtool_accepts_the_alerting_rules_and_the_example_config(
    tools: PrometheusTools,
) -> None:
    for args in (["check", "rules", str(ALERTS)], ["check", "config", str(EXAMPLE_CONFIG)]):
        done = subprocess.run([tools.promtool, *args], capture_output=True, timeout=30)
        assert done.returncode == 0, (done.stdout + done.stderr).decode()


@pytest.mark.timeout(60 + INSTALL_TIMEOUT)
def test_promtool_unit_tests_of_the_alerts_pass(tools: PrometheusTools) -> None:
    done = subprocess.run(
        [tools.promtool, "test", "rules", str(ALERTS_TEST)], capture_output=True, timeout=30
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
