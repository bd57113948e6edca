"""Checks an automation's actions must pass before it is stored (create, update, validate_only)."""

from __future__ import annotations

from automations.actions import templates
from automations.domain import automations, validation


def check_automation(automation: automations.Automation) -> None:
    """Validates every action template and refuses Prefect's run-deployment loops.

    Raises:
        errors.InvalidArgument: Naming the bad field (e.g. ``actions[0].payload``).
    """
    templates.validate_automation_templates(automation)
    validation.check_run_deployment_loops(automation)
