"""Which webhook targets are refused: non-public addresses and localhost names."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from dexec.webhook_targets import (
    REFUSED_ADDRESS,
    REFUSED_LOCALHOST,
    ascii_host,
    is_localhost_name,
    is_public,
    is_valid_name,
    literal_address,
    refused_host,
)

NOT_PUBLIC = [
    "127.0.0.1",  # loopback
    "127.255.0.9",
    "10.0.0.1",  # private
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # link-local: the cloud metadata service
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "0.0.0.0",  # unspecified: connects to this host
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "224.0.0.1",  # multicast, which `is_global` lets through
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
    "::1",
    "::",
    "fe80::1",  # link-local
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fec0::1",  # site-local (deprecated), which `is_global` lets through
    "ff02::1",  # multicast
    "ff0e::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated), which `is_global` lets through
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:db8::1",  # documentation
    "100::1",  # discard
]
PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700::1",
    "2001:4860:4860::8888",
    "::ffff:93.184.216.34",  # IPv4-mapped public address
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(ip_address(address))
    assert refused_host(address) == REFUSED_ADDRESS


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(ip_address(address))
    assert refused_host(address) is None


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "localhost.", "api.localhost", "a.b.Localhost."]
)
def test_localhost_names_are_refused(host: str) -> None:
    assert is_localhost_name(host)
    assert refused_host(host) == REFUSED_LOCALHOST


@pytest.mark.parametrize(
    "host", ["example.com", "hooks.example.com", "localhost.example.com", "mylocalhost", "cafe"]
)
def test_other_names_pass_without_dns(host: str) -> None:
    """Names are judged by what they resolve to when the notifier connects, not here."""
    assert not is_localhost_name(host)
    assert literal_address(host) is None
    assert refused_host(host) is None


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "017700000001", "0x7f000001"])
def test_numbers_a_resolver_reads_as_loopback_are_refused(host: str) -> None:
    assert literal_address(host) == ip_address("127.0.0.1")
    assert refused_host(host) == REFUSED_ADDRESS


def test_a_public_address_written_as_a_number_is_allowed() -> None:
    assert literal_address("1572395042") == ip_address("93.184.216.34")
    assert refused_host("1572395042") is None


# What the probe found: each is loopback or localhost once IDNA (as resolvers and URL parsers
# apply it, UTS #46 alike) has mapped its ideographic or full-width dots and letters to ASCII.
LOOPBACK_IN_OTHER_CHARACTERS = {
    "127\u30020\u30020\u30021": REFUSED_ADDRESS,  # ideographic full stops
    "127\uff0e0\uff0e0\uff0e1": REFUSED_ADDRESS,  # full-width full stops
    "127\uff610\uff610\uff611": REFUSED_ADDRESS,  # halfwidth ideographic full stops
    "\uff11\uff12\uff17.0.0.1": REFUSED_ADDRESS,  # full-width digits
    "\u2460\u2461\u2466.0.0.1": REFUSED_ADDRESS,  # circled digits
    "localhost\u3002": REFUSED_LOCALHOST,
    "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54": REFUSED_LOCALHOST,  # full-width
    "api.\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34": REFUSED_LOCALHOST,
}


@pytest.mark.parametrize("host", LOOPBACK_IN_OTHER_CHARACTERS)
def test_a_host_is_judged_as_idna_maps_it(host: str) -> None:
    assert refused_host(host) == LOOPBACK_IN_OTHER_CHARACTERS[host]


@pytest.mark.parametrize(
    ("host", "ascii"),
    [
        ("127\u30020\u30020\u30021", "127.0.0.1"),
        ("localhost\u3002", "localhost."),
        ("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "localhost"),
        ("B\u00dcCHER.example", "xn--bcher-kva.example"),
        ("Hooks.Example.COM", "hooks.example.com"),
        ("a..b", None),
    ],
)
def test_ascii_host_is_what_a_resolver_is_asked(host: str, ascii: str | None) -> None:
    assert ascii_host(host) == ascii


@pytest.mark.parametrize(
    "host",
    [
        "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",  # full-width letters
        "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
        "\u2460\u2461\u2466.0.0.1",  # circled digits
        "stra\u00dfe.example",  # IDNA 2003 maps it to strasse, IDNA 2008 (httpx) keeps it
        "a\u200db.example",  # a zero-width joiner IDNA 2003 would drop
        "a..b",
        "x" * 64 + ".example",
    ],
)
def test_a_host_idna_would_change_or_cannot_encode_is_no_valid_name(host: str) -> None:
    """The notifier's client (httpx) cannot parse such a host, or would ask about another."""
    assert not is_valid_name(host)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "b\u00fccher.example",  # an IDN in the form IDNA keeps: sent as xn--bcher-kva.example
        "B\u00dcCHER.example",  # case is no change: httpx lower-cases too
        "xn--bcher-kva.example",
        "example\u3002com",  # which dot separates labels is no change either
        "127\u30020\u30020\u30021",  # a valid name, refused as loopback (above)
        "::1",
    ],
)
def test_names_idna_keeps_are_valid(host: str) -> None:
    assert is_valid_name(host)
