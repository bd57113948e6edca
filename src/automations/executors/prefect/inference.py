"""Which Prefect object an action acts on: selected by id, or inferred as Prefect infers it.

Prefect's rules (``prefect.server.events.actions``):

- **Deployment, work pool, work queue** (``source: "inferred"``): walk the triggering event's
  resources in order, the primary resource first and then ``related`` in list order, and take the
  **first** whose id minus its last dotted part is ``prefect.deployment`` (``prefect.work-pool``,
  ``prefect.work-queue``); the role is ignored. Its last part must be a UUID; if it is not,
  inference fails: it does not go on to the next resource of that kind. Without a triggering
  event the reason is "No event to infer the <kind>", otherwise "No <kind> could be inferred".
- **Flow run** (flow-run actions are always inferred): first ``triggering_labels
  ["prefect.resource.id"]`` if it is ``prefect.flow-run.<uuid>`` (proactive ``for_each`` firings
  find their run this way), then the first ``prefect.flow-run`` resource of the event, else
  "No flow run could be inferred".

Every failure is a final FAILED_PRECONDITION whose message is Prefect's reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import grpc

from automations import executor
from automations.v1 import event_pb2

RESOURCE_ID = "prefect.resource.id"
"""The label holding a resource's id."""


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of Prefect object that can be inferred from an event."""

    resource_kind: str
    """The resource id prefix, e.g. ``prefect.work-pool``."""

    noun: str
    """How Prefect's failure reasons name it, e.g. ``work pool``."""

    reason: str
    """The ``ErrorInfo`` reason of an inference failure, e.g. ``WORK_POOL_NOT_INFERRED``."""


DEPLOYMENT = Kind("prefect.deployment", "deployment", "DEPLOYMENT_NOT_INFERRED")
"""Deployments (run-, pause-, resume-deployment)."""

WORK_POOL = Kind("prefect.work-pool", "work pool", "WORK_POOL_NOT_INFERRED")
"""Work pools (pause-, resume-work-pool)."""

WORK_QUEUE = Kind("prefect.work-queue", "work queue", "WORK_QUEUE_NOT_INFERRED")
"""Work queues (pause-, resume-work-queue)."""

FLOW_RUN = Kind("prefect.flow-run", "flow run", "FLOW_RUN_NOT_INFERRED")
"""Flow runs (the flow-run actions)."""


def involved_resource_ids(event: event_pb2.Event) -> Iterator[str]:
    """The ids of the event's resources: the primary one, then the related ones in order."""
    yield event.resource.labels.get(RESOURCE_ID, "")
    for related in event.related:
        yield related.labels.get(RESOURCE_ID, "")


def id_from_resource_id(resource_id: str, kind: str) -> uuid.UUID | None:
    """The UUID of ``prefect.<kind>.<uuid>`` when ``resource_id`` is of ``kind``, else None."""
    prefix, _, last = resource_id.rpartition(".")
    if prefix != kind:
        return None
    try:
        return uuid.UUID(last)
    except ValueError:
        return None


def id_of_first_resource_of_kind(event: event_pb2.Event, kind: str) -> uuid.UUID | None:
    """The id of the event's first resource of ``kind``; None if it has none or it is no UUID.

    Only the first resource of the kind counts: a later one is never used instead of a first one
    whose id is not a UUID (Prefect does not fall through either).
    """
    for resource_id in involved_resource_ids(event):
        if resource_id.rpartition(".")[0] == kind:
            return id_from_resource_id(resource_id, kind)
    return None


def _failed(kind: Kind, message: str) -> executor.ActionError:
    return executor.ActionError(grpc.StatusCode.FAILED_PRECONDITION, message, kind.reason)


def infer(kind: Kind, event: event_pb2.Event | None) -> uuid.UUID:
    """The id of the ``kind`` object the triggering ``event`` is about (deployments, pools, queues).

    Raises:
        executor.ActionError: FAILED_PRECONDITION "No event to infer the <kind>" or "No <kind> could be
            inferred".
    """
    if event is None:
        raise _failed(kind, f"No event to infer the {kind.noun}")
    found = id_of_first_resource_of_kind(event, kind.resource_kind)
    if found is None:
        raise _failed(kind, f"No {kind.noun} could be inferred")
    return found


def infer_flow_run(event: event_pb2.Event | None, labels: Mapping[str, str]) -> uuid.UUID:
    """The flow run a flow-run action acts on: the triggering labels first, then the event.

    Raises:
        executor.ActionError: FAILED_PRECONDITION "No flow run could be inferred".
    """
    labelled = labels.get(RESOURCE_ID)
    if labelled:
        found = id_from_resource_id(labelled, FLOW_RUN.resource_kind)
        if found is not None:
            return found
    if event is not None:
        found = id_of_first_resource_of_kind(event, FLOW_RUN.resource_kind)
        if found is not None:
            return found
    raise _failed(FLOW_RUN, "No flow run could be inferred")
