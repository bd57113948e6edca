"""Prefect's ``ui_url`` and ``ui_resource_events_url`` template filters.

``{{ flow_run|ui_url }}`` is a link to the object's page in the Prefect UI, and
``{{ deployment|ui_resource_events_url }}`` a link to the UI's event feed filtered on it, as
Prefect's own filters (``server/events/jinja_filters.py``, ``utilities/urls.py``) make them:

* ``ui_url`` knows the objects templates see (``flow_run``, ``flow``, ``deployment``,
  ``work_queue``, ``work_pool``, ``automation``), events (``events/event/<day>/<id>``), and
  resources whose id is ``prefect.<kind>.<id>`` (``event.resource``, ``event.related[0]``) for the
  kinds the UI has pages for;
* ``ui_resource_events_url`` knows the automation, resources and those objects but events;
* anything else gives None, as in Prefect.

The base is the engine's Prefect UI URL (setting ``prefect_ui_url``; when it is empty, the
``prefect_api_url`` without its ``/api`` suffix, the way Prefect derives its UI URL). When neither
is set, both filters give None, as Prefect's do without ``PREFECT_UI_URL``: a template can write
``{{ flow_run|ui_url or '' }}``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import jinja2

from automations.actions import template_context

UI_PAGES = {
    "flow": "flows/flow/{id}",
    "flow-run": "runs/flow-run/{id}",
    "task-run": "runs/task-run/{id}",
    "block-document": "blocks/block/{id}",
    "work-pool": "work-pools/work-pool/{id}",
    "work-queue": "work-queues/work-queue/{id}",
    "concurrency-limit": "concurrency-limits/concurrency-limit/{id}",
    "deployment": "deployments/deployment/{id}",
    "automation": "automations/automation/{id}",
}
"""The UI page of each kind of Prefect object (``<kind>`` of ``prefect.<kind>.<id>``)."""
EVENT_FEED_KINDS = frozenset(
    {"automation", "deployment", "flow", "flow-run", "task-run", "work-queue", "work-pool"}
)
"""The objects ``ui_resource_events_url`` links to the event feed of (resources aside)."""


def _base(context: Mapping[str, Any]) -> str | None:
    base = context.get(template_context.UI_URL)
    if not isinstance(base, str) or not base:
        return None
    return base if base.endswith("/") else base + "/"


def _object(value: Any) -> tuple[str, str] | None:
    """``(kind, id)`` of an object templates see, or None."""
    if isinstance(value, template_context.PrefectObject):
        kind = value.kind
        object_id = value.get("name") if kind == "work-pool" else value.get("id")
        return (kind, str(object_id)) if object_id else None
    if isinstance(value, template_context.Resource):
        prefix, dot, rest = value.id.partition(".")
        if prefix != "prefect" or not dot:
            return None
        kind, _, object_id = rest.rpartition(".")
        return (kind, object_id) if kind and object_id else None
    return None


@jinja2.pass_context
def ui_url(context: Mapping[str, Any], value: Any) -> str | None:
    """The Prefect UI page of ``value``, or None."""
    base = _base(context)
    if base is None:
        return None
    if isinstance(value, template_context.TemplateEvent):
        day = value.occurred.strftime("%Y-%m-%d")
        return urllib.parse.urljoin(base, f"events/event/{day}/{value.id}")
    found = _object(value)
    if found is None:
        return None
    kind, object_id = found
    page = UI_PAGES.get(kind)
    return None if page is None else urllib.parse.urljoin(base, page.format(id=object_id))


@jinja2.pass_context
def ui_resource_events_url(context: Mapping[str, Any], value: Any) -> str | None:
    """The Prefect UI's event feed filtered on ``value``'s resource, or None."""
    base = _base(context)
    if base is None:
        return None
    if isinstance(value, template_context.Resource):
        resource_id = value.id
    else:
        found = _object(value)
        if found is None or found[0] not in EVENT_FEED_KINDS:
            return None
        kind, object_id = found
        if kind == "work-pool":
            object_id = str(value.get("id") or "")
            if not object_id:
                return None
        resource_id = f"prefect.{kind}.{object_id}"
    query = urllib.parse.urlencode({"resource": resource_id})
    return urllib.parse.urljoin(base, f"events?{query}")
