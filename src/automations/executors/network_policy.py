"""Which network addresses a webhook may be sent to (a guard against SSRF).

Cloud metadata endpoints (and all of IPv4 link-local, 169.254.0.0/16) are always refused: they
hand out credentials to whoever asks from inside the instance. With ``--deny-private-networks``
loopback, unspecified, RFC 1918, CGNAT (100.64.0.0/10), IPv6 unique-local and link-local addresses
are refused too.

The host is resolved before the request and every address it resolves to is checked. The HTTP
client resolves it again when it connects, so a DNS answer that changes in between (rebinding)
is not caught; redirects are never followed, so a public URL cannot redirect into the network.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import socket
from typing import TypeAlias

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


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def classify(address: IPAddress) -> AddressClass:
    """Classifies ``address`` (an IPv4-mapped IPv6 address as the IPv4 address it carries)."""
    address = _unwrap(address)
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
