"""Entity keys held compactly: the run ids (and the like) a metric keeps until its runs end.

A ``between`` or ``outcome`` metric keeps one entry per entity in flight (an open interval, an
outcome in the window), keyed by the entity's label: for Prefect's metrics the flow run's id,
``prefect.flow-run.<uuid>``, a 102-byte string. An id made of a prefix and a canonical (lower-case)
UUID is held instead as 17 bytes, the prefix's number then the UUID's 16 bytes (a 50-byte object):
half the memory of a run in flight. Any other id is held as it is. Packing is exact both ways, so
records always carry the original text.
"""

from __future__ import annotations

EntityKey = str | bytes
"""An entity as held in memory: its text, or its packed form."""

_UUID_TEXT = 36
_MAX_PREFIXES = 255


class EntityKeys:
    """Packs and unpacks one metric trigger's entity keys (its prefixes are numbered)."""

    __slots__ = ("_numbers", "_prefixes")

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._prefixes: list[str] = []

    def pack(self, text: str) -> EntityKey:
        """The key to hold for ``text``."""
        if len(text) < _UUID_TEXT:
            return text
        uuid_text = text[-_UUID_TEXT:]
        if uuid_text[8] != "-" or uuid_text[13] != "-" or uuid_text[18] != "-":
            return text
        if uuid_text[23] != "-":
            return text
        digits = uuid_text.replace("-", "")
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            return text
        if len(raw) != 16 or raw.hex() != digits:  # upper case, spaces: kept as they are
            return text
        prefix = text[:-_UUID_TEXT]
        number = self._numbers.get(prefix)
        if number is None:
            if len(self._prefixes) >= _MAX_PREFIXES:
                return text
            number = self._numbers[prefix] = len(self._prefixes)
            self._prefixes.append(prefix)
        return bytes((number,)) + raw

    def unpack(self, key: EntityKey) -> str:
        """The text of a held key."""
        if isinstance(key, str):
            return key
        digits = key[1:].hex()
        return (
            f"{self._prefixes[key[0]]}{digits[:8]}-{digits[8:12]}-{digits[12:16]}-"
            f"{digits[16:20]}-{digits[20:]}"
        )
