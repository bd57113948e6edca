"""Which network addresses the bundled executors may connect to (a guard against SSRF).

Cloud metadata endpoints (and all of IPv4 link-local, 169.254.0.0/16) are always refused: they
hand out credentials to whoever asks from inside the instance. With ``--deny-private-networks``
loopback, unspecified, RFC 1918, CGNAT (100.64.0.0/10), IPv6 unique-local and link-local addresses
are refused too. An IPv6 address that carries an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``,
IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:AABB:CCDD::``, Teredo) is
judged by the IPv4 address too.

One policy for every outbound connection of an executor process: :func:`guard_connections`
checks the address each socket actually connects to, whatever opens it (httpx, Apprise's
requests, smtplib...), so redirects are checked hop by hop and a DNS answer that changes after a
check (rebinding) is caught when it is used. The webhook executor also checks a URL's addresses
before sending, to answer PERMISSION_DENIED with the reason.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import socket
from typing import Any, TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata.goog"})
"""Host names of cloud metadata services, refused before any resolution."""

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
"""AWS/GCP/Azure/OpenStack (169.254.169.254), AWS over IPv6 and Alibaba Cloud."""

ALWAYS_DENIED_NETWORKS = (ipaddress.ip_network("169.254.0.0/16"),)
"""IPv4 link-local: the metadata services of most clouds live here."""

PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # CGNAT
        "::/128",
        "::1/128",
        "fc00::/7",  # unique-local
        "fe80::/10",  # IPv6 link-local
    )
)
"""Refused only with ``--deny-private-networks``."""


class AddressClass(enum.Enum):
    """What kind of destination an address is."""

    PUBLIC = "public"
    """Anything not below."""

    PRIVATE = "private"
    """Loopback, RFC 1918, CGNAT, unique-local, IPv6 link-local or unspecified."""

    METADATA = "metadata"
    """A cloud metadata endpoint or IPv4 link-local: always refused."""


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, in any of the ways traffic reaches them."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in net for net in _NAT64) or (
        address in _COMPATIBLE and int(address) > 1  # not :: or ::1
    ):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def classify(address: IPAddress) -> AddressClass:
    """Classifies ``address``; an IPv6 address carrying an IPv4 one gets the stricter class."""
    if isinstance(address, ipaddress.IPv6Address):
        classes = [_classify(inner) for inner in _embedded(address)] + [_classify(address)]
        for kind in (AddressClass.METADATA, AddressClass.PRIVATE):
            if kind in classes:
                return kind
        return AddressClass.PUBLIC
    return _classify(address)


def _classify(address: IPAddress) -> AddressClass:
    if address in METADATA_ADDRESSES or any(
        address in net for net in ALWAYS_DENIED_NETWORKS if net.version == address.version
    ):
        return AddressClass.METADATA
    if any(address in net for net in PRIVATE_NETWORKS if net.version == address.version):
        return AddressClass.PRIVATE
    return AddressClass.PUBLIC


def allowed(address: IPAddress, *, deny_private_networks: bool) -> bool:
    """Whether a request may go to ``address``."""
    kind = classify(address)
    if kind is AddressClass.METADATA:
        return False
    return not (deny_private_networks and kind is AddressClass.PRIVATE)


def is_metadata_hostname(host: str) -> bool:
    """Whether ``host`` names a cloud metadata service."""
    return host.lower().rstrip(".") in METADATA_HOSTNAMES


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (a literal address resolves to itself).

    Raises:
        OSError: The name does not resolve.
    """
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%", 1)[0])]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


class ForbiddenAddress(PermissionError):
    """A connection to an address the policy refuses; its message names the kind of address."""


_refused: list[str] = []
"""Every refusal of this process, oldest first (the most recent ``_KEPT``)."""
_KEPT = 100


def refusal_count() -> int:
    """How many connections were refused so far (compare before and after a call)."""
    return _count[0]


def last_refusal() -> str:
    """The most recent refusal's message ("" before any)."""
    return _refused[-1] if _refused else ""


_count = [0]


def _check(destination: object, deny_private_networks: bool) -> None:
    if not isinstance(destination, tuple) or not destination:
        return  # a Unix socket or another family: not a network destination
    try:
        address = ipaddress.ip_address(str(destination[0]).split("%", 1)[0])
    except ValueError:
        return
    if not allowed(address, deny_private_networks=deny_private_networks):
        message = f"connections to {classify(address).value} addresses are refused ({address})"
        _refused.append(message)
        del _refused[:-_KEPT]
        _count[0] += 1
        raise ForbiddenAddress(message)


def guard_connections(*, deny_private_networks: bool) -> None:
    """Checks every socket connection of this process against the policy, at connect time.

    Called once at the start of an executor process (``automations executor NAME``): every
    ``socket.connect`` (and ``connect_ex``) to a refused address raises :class:`ForbiddenAddress`
    instead. Servers are not concerned (gRPC's own sockets are not Python sockets).
    """
    plain_connect = socket.socket.connect
    plain_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any, /) -> None:
        _check(address, deny_private_networks)
        plain_connect(self, address)

    def connect_ex(self: socket.socket, address: Any, /) -> int:
        _check(address, deny_private_networks)
        return plain_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
