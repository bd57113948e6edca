"""Transport security with real certificates: TLS and mTLS on the API port, the bearer token, and
the engine calling an executor over TLS (and mTLS).

Certificates are generated for each run by ``tests.integration.certificates`` (a test CA, a
server certificate for 127.0.0.1, a client certificate, and a client certificate from an
unrelated CA that must be refused).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import automations
from automations import transport
from automations.cli import main as cli
from automations.client import CallError
from automations.v1 import (
    action_invocation_pb2,
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
)
from tests.integration.certificates import Certificates, make_certificates
from tests.integration.engine_process import EngineProcess
from tests.integration.executors.executor_process import ExecutorProcess

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cret-Token_for-tests"
CALL_TIMEOUT = 30
"""Seconds any call here may take: refusals come at once, the bound is for a busy machine."""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pki"))


def server_tls_args(certs: Certificates) -> tuple[str, ...]:
    return ("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key))


def verified(certs: Certificates) -> grpc.ChannelCredentials:
    """Credentials trusting the test CA, presenting the client certificate (for mTLS too)."""
    return transport.channel_credentials(
        root_certificates=certs.read("ca"),
        private_key=certs.read("client_key"),
        certificate_chain=certs.read("client_cert"),
    )


@contextlib.contextmanager
def engine_running(workdir: Path, **kwargs: Any) -> Iterator[EngineProcess]:
    engine = EngineProcess(workdir, **kwargs)
    try:
        yield engine.start()
    finally:
        engine.stop()


def cli_run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def call_code(fn: Any) -> grpc.StatusCode:
    with pytest.raises(CallError) as info:
        fn()
    code: grpc.StatusCode = info.value.code
    return code


def test_a_tls_engine_serves_a_cli_that_trusts_its_ca_and_refuses_plaintext(
    certs: Certificates, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine_running(
        tmp_path, extra_args=server_tls_args(certs), credentials=verified(certs)
    ) as engine:
        server = ("--server", engine.grpc_addr)
        code, out, err = cli_run(capsys, "automation", "list", *server, "--tls-ca", str(certs.ca))
        assert (code, out.strip(), err) == (0, "(no automations)", "")

        code, _, err = cli_run(capsys, "automation", "list", *server)
        assert code == 1
        assert "UNAVAILABLE" in err

        code, _, err = cli_run(
            capsys, "automation", "list", *server, "--tls-ca", str(certs.rogue_ca)
        )
        assert code == 1  # a server certificate the client's CA did not sign is refused
        assert "UNAVAILABLE" in err


def test_mtls_refuses_clients_without_a_trusted_certificate_and_serves_those_with_one(
    certs: Certificates, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = (*server_tls_args(certs), "--tls-client-ca", str(certs.ca))
    with engine_running(tmp_path, extra_args=args, credentials=verified(certs)) as engine:
        with automations.Client(
            engine.grpc_addr, timeout=CALL_TIMEOUT, root_certificates=certs.read("ca")
        ) as anonymous:
            assert call_code(anonymous.list_automations) == grpc.StatusCode.UNAVAILABLE
        with automations.Client(
            engine.grpc_addr,
            timeout=CALL_TIMEOUT,
            root_certificates=certs.read("ca"),
            private_key=certs.read("rogue_client_key"),
            certificate_chain=certs.read("rogue_client_cert"),
        ) as stranger:
            assert call_code(stranger.list_automations) == grpc.StatusCode.UNAVAILABLE

        with automations.Client(
            engine.grpc_addr,
            timeout=CALL_TIMEOUT,
            root_certificates=certs.read("ca"),
            private_key=certs.read("client_key"),
            certificate_chain=certs.read("client_cert"),
        ) as known:
            assert known.list_automations() == []
            [result] = known.publish(
                [{"event": "tls.hello", "resource": {"prefect.resource.id": "r"}}]
            )
            assert result.status == "accepted"

        code, out, _ = cli_run(
            capsys,
            "events", "list", "--server", engine.grpc_addr, "--json",
            "--tls-ca", str(certs.ca),
            "--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key),
        )  # fmt: skip
        assert code == 0
        assert "tls.hello" in out


@pytest.mark.parametrize("transport", ["plaintext", "tls"])
def test_the_api_token_is_required_on_the_api_but_not_on_health_and_reflection(
    certs: Certificates, tmp_path: Path, capsys: pytest.CaptureFixture[str], transport: str
) -> None:
    tls = transport == "tls"
    with engine_running(
        tmp_path,
        extra_args=server_tls_args(certs) if tls else (),
        env={"AUTOMATIONS_API_TOKEN": TOKEN},
        credentials=verified(certs) if tls else None,
    ) as engine:
        roots = certs.read("ca") if tls else None

        def client(token: str | None) -> automations.Client:
            return automations.Client(
                engine.grpc_addr, timeout=CALL_TIMEOUT, root_certificates=roots, token=token
            )

        for token, reason in ((None, "API_TOKEN_MISSING"), ("wrong", "API_TOKEN_INVALID")):
            with client(token) as refused, pytest.raises(CallError) as info:
                refused.list_automations()
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert info.value.reason == reason

        with client(TOKEN) as allowed:
            assert allowed.list_automations() == []
            [result] = allowed.publish(
                [{"event": "token.ok", "resource": {"prefect.resource.id": "r"}}]
            )
            assert result.status == "accepted"

        with engine.channel() as channel:
            stream = event_service_pb2_grpc.EventServiceStub(channel).StreamEvents(
                iter([event_service_pb2.StreamEventsRequest()]), timeout=CALL_TIMEOUT
            )
            with pytest.raises(grpc.RpcError) as raw:
                list(stream)
            assert raw.value.code() == grpc.StatusCode.UNAUTHENTICATED  # streams too

            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="automations.v1.EventService"),
                timeout=CALL_TIMEOUT,
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                timeout=CALL_TIMEOUT,
            )
            names = {s.name for s in next(iter(replies)).list_services_response.service}
            assert "automations.v1.AutomationService" in names

        tls_args = ("--tls-ca", str(certs.ca)) if tls else ()
        server = ("--server", engine.grpc_addr, *tls_args)
        code, _, err = cli_run(capsys, "automation", "list", *server)
        assert code == 1
        assert "UNAUTHENTICATED" in err
        assert "API_TOKEN_MISSING" in err
        code, _, _ = cli_run(capsys, "automation", "list", *server, "--token", TOKEN)
        assert code == 0
    assert TOKEN not in engine.log()


def wait_executor_serving(executor: ExecutorProcess, credentials: grpc.ChannelCredentials) -> None:
    deadline = time.monotonic() + 60
    with grpc.secure_channel(executor.addr, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert executor.proc is not None
            if executor.proc.poll() is not None:
                raise RuntimeError(f"executor exited:\n{executor.log()}")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    raise TimeoutError(f"executor not SERVING over TLS:\n{executor.log()}")


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_the_engine_delivers_an_action_to_an_executor_serving_tls(
    certs: Certificates, tmp_path: Path, mutual: bool
) -> None:
    executor_args = server_tls_args(certs)
    engine_env = {"AUTOMATIONS_EXECUTOR_TLS_CA_FILE": str(certs.ca)}
    if mutual:
        executor_args += ("--tls-client-ca", str(certs.ca))
        engine_env |= {
            "AUTOMATIONS_EXECUTOR_TLS_CERT_FILE": str(certs.client_cert),
            "AUTOMATIONS_EXECUTOR_TLS_KEY_FILE": str(certs.client_key),
        }
    executor = ExecutorProcess("noop", tmp_path, args=executor_args)
    executor.spawn()
    try:
        wait_executor_serving(executor, verified(certs))
        with (
            engine_running(
                tmp_path, extra_args=("--executor", f"noop={executor.addr}"), env=engine_env
            ) as engine,
            automations.Client(engine.grpc_addr, timeout=CALL_TIMEOUT) as client,
        ):
            created = client.create_automation(
                {
                    "name": "noop over tls",
                    "trigger": {
                        "type": "event",
                        "posture": "Reactive",
                        "expect": ["tls.ping"],
                        "threshold": 1,
                        "within": 0,
                    },
                    "actions": [{"type": "noop"}],
                }
            )
            client.publish(
                [
                    {
                        "id": str(uuid.uuid4()),
                        "event": "tls.ping",
                        "resource": {"prefect.resource.id": "r"},
                    }
                ],
                raise_on_rejected=True,
            )
            states = wait_for_invocation(engine, created["id"])
            assert states == ["STATE_SUCCEEDED"], engine.log()
    finally:
        executor.stop()


def wait_for_invocation(engine: EngineProcess, automation_id: str) -> list[str]:
    """Polls ListActionInvocations until every invocation is final; returns their states."""
    final = {"STATE_SUCCEEDED", "STATE_FAILED", "STATE_DEAD_LETTERED"}
    states: list[str] = []
    deadline = time.monotonic() + 60
    with engine.channel() as channel:
        stub = automation_service_pb2_grpc.AutomationServiceStub(channel)
        while time.monotonic() < deadline:
            reply = stub.ListActionInvocations(
                automation_service_pb2.ListActionInvocationsRequest(
                    parent=f"automations/{automation_id}"
                ),
                timeout=CALL_TIMEOUT,
            )
            states = [
                action_invocation_pb2.ActionInvocation.State.Name(i.state)
                for i in reply.action_invocations
            ]
            if states and set(states) <= final:
                return states
            time.sleep(0.2)
    return states
