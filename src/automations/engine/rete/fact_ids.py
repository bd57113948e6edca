"""The ids of the facts posted to a shard, and what durable's action messages say about them.

A fact's id is ``"{j:03d}-{seq}"``: ``j`` its position in its post (at most :data:`CHUNK` facts),
``seq`` the post's sequence number, so the ids held at one time (one post) are unique and never
collide in durable's message index (see ``docs/design/rete.md``). durable echoes the fact in each
action it fires, as ``{"r<rule>":{"m":{"id": "<jjj>-<seq>", ...}}}``: :func:`decode` reads the
rule number and the fact's position back from it.

Pure and import-light: the gateway's worker process imports it.
"""

from __future__ import annotations

CHUNK = 500
"""Facts per post (durable's message index has 512 buckets)."""
ID_PREFIXES = tuple(f"{j:03d}-" for j in range(CHUNK))
"""A fact's id is its prefix (its position in the post) and the post's sequence number."""
_POSITIONS = {f"{j:03d}": j for j in range(CHUNK)}


def decode(message: str) -> tuple[int, int]:
    """The (rule number, fact position) of one of durable's action messages.

    Raises:
        RuntimeError: The message does not have durable's action format.
    """
    end = message.find('"', 3)
    j = _POSITIONS.get(message[end + 15 : end + 18], -1)
    if j < 0 or not message.startswith('{"r'):
        raise RuntimeError(f"unexpected durable action: {message[:80]}")
    return int(message[3:end]), j


def retraction(positions: set[int] | range, suffix: str) -> list[dict[str, str]]:
    """The ``retract_facts`` body for the facts at ``positions`` of the post ``suffix``."""
    return [{"id": ID_PREFIXES[j] + suffix} for j in sorted(positions)]
