"""Commands that run in this process: ``serve``, ``simulate`` and ``config show``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pydantic

from automations import config
from automations.domain import errors


def _settings(args: argparse.Namespace) -> config.Settings | None:
    overrides = {
        key: getattr(args, key, None)
        for key in (
            "grpc_addr",
            "metrics_addr",
            "http_addr",
            "database_url",
            "no_executors",
            "executors",
            "log_json",
            "tls_cert_file",
            "tls_key_file",
            "tls_client_ca_file",
            "prefect_api_url",
            "executor_deny_private_networks",
            "cluster",
            "nats_url",
        )
    }
    try:
        return config.load(overrides, config_file=getattr(args, "config", None))
    except (pydantic.ValidationError, ValueError, OSError) as exc:
        print(f"automations: invalid settings:\n{exc}", file=sys.stderr)
        return None


def serve(args: argparse.Namespace) -> int:
    """``automations serve``: runs the engine in the foreground."""
    settings = _settings(args)
    if settings is None:
        return 2
    from automations import cluster_server, server
    from automations.domain import errors

    try:
        return cluster_server.run(settings) if settings.cluster else server.run(settings)
    except errors.AutomationsError as exc:  # e.g. a database it cannot write
        print(f"automations serve: cannot start: {exc.message}", file=sys.stderr)
        return 1


def config_show(args: argparse.Namespace) -> int:
    """``automations config show``: prints the effective settings, secrets masked."""
    settings = _settings(args)
    if settings is None:
        return 2
    print(json.dumps(settings.masked(), indent=2))
    return 0


def simulate(args: argparse.Namespace) -> int:
    """``automations simulate SCENARIO.json``: prints ``{"firings": [...], "resolutions": [...]}``.

    Exit 2 when the scenario is malformed.
    """
    from automations.engine import simulation

    try:
        scenario = json.loads(Path(args.scenario).read_text())
    except OSError as exc:
        print(f"automations simulate: cannot read {args.scenario}: {exc}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"automations simulate: {args.scenario} is not JSON: {exc}", file=sys.stderr)
        return 2
    try:
        outcome = simulation.scenario_outcome(scenario)
    except errors.InvalidArgument as exc:
        print(f"automations simulate: {args.scenario}: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"automations simulate: {args.scenario}: missing field {exc}", file=sys.stderr)
        return 2
    except (TypeError, ValueError, AttributeError) as exc:
        print(f"automations simulate: {args.scenario}: malformed scenario: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(outcome))
    return 0
