"""The webhooks the HTTP endpoint knows, by slug: loaded from the store, refreshed in the background.

A request looks its webhook up in memory (no database read per request). The directory reloads
every webhook after each change made through this engine's API (``refresh``, awaited before the
API answers, so a created webhook serves at once and a disabled or rotated one stops at once), and
every ``refresh_seconds`` besides, which picks up changes made by other engines sharing the
database. In the front process the engine's snapshots replace its contents (``replace``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from automations.domain import webhooks

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
"""How often the directory reloads on its own."""


class Directory:
    """Webhooks by slug.

    Args:
        load_all: Reads every webhook (runs in a worker thread); None where the webhooks are
            given (:meth:`replace`).
        refresh_seconds: How often :meth:`run` reloads.
    """

    def __init__(
        self,
        load_all: Callable[[], Sequence[webhooks.Webhook]] | None = None,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._load_all = load_all
        self._refresh_seconds = refresh_seconds
        self._by_slug: dict[str, webhooks.Webhook] = {}
        self._lock = asyncio.Lock()

    def get(self, slug: str) -> webhooks.Webhook | None:
        """The webhook with that slug, enabled or not; None if there is none."""
        return self._by_slug.get(slug)

    def all(self) -> list[webhooks.Webhook]:
        """Every webhook known."""
        return list(self._by_slug.values())

    def replace(self, known: Sequence[webhooks.Webhook]) -> None:
        """Knows exactly ``known`` from now on."""
        self._by_slug = {w.slug: w for w in known}

    async def refresh(self) -> None:
        """Reloads every webhook."""
        if self._load_all is None:
            raise RuntimeError("this directory is given its webhooks (replace)")
        async with self._lock:
            self.replace(await asyncio.to_thread(self._load_all))

    async def run(self) -> None:
        """Reloads every ``refresh_seconds`` until cancelled (a failed reload is logged)."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                logger.exception("reloading the webhooks failed; serving the ones loaded before")
