from __future__ import annotations

import ipaddress

import pytest

from automations.executors import network_policy
from automations.executors.network_policy import (
    AddressClass,
    allowed,
    classify,
    is_metadata_hostname,
    resolve,
)


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.0.1",
        "fd00:ec2::254",
        "100.100.100.200",
        "::ffff:169.254.169.254",
    ],
)
def test_metadata_and_link_local_addresses_are_always_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert classify(ip) is AddressClass.METADATA
    assert not allowed(ip, deny_private_networks=False)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "0.0.0.0",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "::1",
        "fd12::1",
        "fe80::1",
        "::ffff:10.0.0.1",
    ],
)
def test_private_addresses_are_refused_only_when_asked(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert classify(ip) is AddressClass.PRIVATE
    assert allowed(ip, deny_private_networks=False)
    assert not allowed(ip, deny_private_networks=True)


@pytest.mark.parametrize("address", ["93.184.216.34", "172.32.0.1", "2606:4700::1111", "8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert classify(ip) is AddressClass.PUBLIC
    assert allowed(ip, deny_private_networks=True)


def test_metadata_host_names_are_recognised() -> None:
    assert is_metadata_hostname("metadata.google.internal")
    assert is_metadata_hostname("METADATA.google.internal.")
    assert not is_metadata_hostname("example.com")


async def test_a_literal_address_resolves_to_itself() -> None:
    assert await resolve("[::1]", 80) == [ipaddress.ip_address("::1")]
    assert await resolve("169.254.169.254", 80) == [ipaddress.ip_address("169.254.169.254")]


async def test_a_decimal_host_resolves_to_the_address_it_encodes() -> None:
    assert ipaddress.ip_address("169.254.169.254") in await resolve("2852039166", 80)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64
        "64:ff9b:1::a9fe:a9fe",  # NAT64, local use
        "2002:a9fe:a9fe::",  # 6to4
        "::a9fe:a9fe",  # IPv4-compatible
        "::ffff:169.254.169.254",  # IPv4-mapped
    ],
)
def test_ipv6_forms_of_the_metadata_address_are_metadata(address: str) -> None:
    assert (
        network_policy.classify(ipaddress.ip_address(address))
        is network_policy.AddressClass.METADATA
    )


def test_ipv6_forms_of_a_private_address_are_private() -> None:
    for address in ("64:ff9b::a00:1", "2002:0a00:0001::", "::ffff:10.0.0.1"):
        assert (
            network_policy.classify(ipaddress.ip_address(address))
            is network_policy.AddressClass.PRIVATE
        )
