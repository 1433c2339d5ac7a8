"""Which hosts a webhook may be POSTed to: public ones only, unless private targets are allowed.

A client chooses the `webhookUrl`, so without this it could make the notifier POST into our
own network (server-side request forgery): 127.0.0.1, 10.x, the cloud metadata service at
169.254.169.254, ::1, fc00::/7 ... Pure functions, no DNS: the API judges a URL's host as
written (`refused_host`), in the ASCII form a resolver would be asked about (`ascii_host`), and
refuses one the notifier's HTTP client could not send to (`unsendable`); the notifier
resolves the name when it connects and judges every address it gets (`is_public`).
"""

from __future__ import annotations

import re
import socket
from encodings.idna import nameprep
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

import httpx

IPAddress = IPv4Address | IPv6Address

# Every globally routed IPv6 unicast address is in 2000::/3; outside it there are only special
# blocks (::/8 with the IPv4-compatible addresses, fc00::/7, fe80::/10, fec0::/10, ff00::/8 ...)
# some of which `is_global` lets through.
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
# NAT64's well-known prefix: 64:ff9b::a.b.c.d is the IPv4 address a.b.c.d behind a NAT64.
_NAT64 = IPv6Network("64:ff9b::/96")
# Numbers a resolver reads as an IPv4 address although `ip_address` does not: 2130706433,
# 0x7f.1, 127.1, 017700000001 are all 127.0.0.1 to getaddrinfo.
_LEGACY_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")
# What IDNA (RFC 3490 3.1, and UTS #46 alike) reads as the dot between labels: full stop,
# ideographic full stop, full-width full stop, halfwidth ideographic full stop.
_LABEL_DOTS = re.compile("[.\u3002\uff0e\uff61]")

REFUSED_LOCALHOST = "webhookUrl must not point at localhost"
INVALID_NAME = (
    "webhookUrl has an invalid host name (an empty or over-long label, or characters IDNA"
    " maps to others, such as full-width letters: write the name they stand for)"
)
REFUSED_ADDRESS = "webhookUrl must not point at a loopback, private or otherwise non-public address"


class RefusedTarget(Exception):
    """A webhook target this deployment does not POST to; retrying would not change that."""


def webhook_host(url: str) -> str | None:
    """The host a webhook URL POSTs to, lower-case, as the notifier's per-host limit counts
    it (None for a URL without one)."""
    try:
        return urlsplit(url).hostname or None
    except ValueError:
        return None


def is_public(address: IPAddress) -> bool:
    """A globally reachable unicast address, also when an IPv6 address stands for an IPv4 one."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address not in _GLOBAL_UNICAST_V6:
            return False
    # `is_global` counts multicast as global; a POST has no business there either.
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one is delivered to: ::ffff:a.b.c.d, 6to4, NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def is_localhost_name(host: str) -> bool:
    """`localhost` and every name under it, which resolvers keep on this machine (RFC 6761)."""
    name = host.lower().removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


def literal_address(host: str) -> IPAddress | None:
    """The address `host` names without DNS (an IP literal, IPv6 without brackets), or None."""
    try:
        return ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:  # inet_aton parses the number the way getaddrinfo will; it never queries DNS
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def ascii_host(host: str) -> str | None:
    """`host` as a resolver is asked about it: ASCII, lower case, "." between labels, and each
    non-ASCII label mapped and Punycode-encoded by IDNA; None if IDNA cannot encode it (an empty
    or over-long label, a prohibited character).

    Python's IDNA codec maps with nameprep (RFC 3491: NFKC and case folding), which for what a
    check must see maps as UTS #46 does in resolvers and browsers: "127。0。0。1" (ideographic
    full stops) is 127.0.0.1, localhost in full-width letters (U+FF4C ...) is localhost,
    "①②⑦.0.0.1" is 127.0.0.1. A check of the characters as written would take each for some
    other name.
    """
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def is_valid_name(host: str) -> bool:
    """Whether a resolver can be asked about `host`, and every client would ask about the same
    name: IDNA can encode it, and it has no non-ASCII label IDNA would change (bar its case).

    The notifier's HTTP client (httpx) encodes a host by IDNA 2008 and maps nothing but case,
    so localhost in full-width letters, which a resolver or a browser reads as localhost, is no
    host at all to it (InvalidURL). Rather than judge such a host as one name and have it sent
    as another (or never), it is refused; its client writes the name it stands for, judged as
    that. Which dot separates the labels changes nothing: httpx splits on the same four. A
    label IDNA 2008 forbids though IDNA 2003 leaves it as it is (a symbol) passes here:
    `unsendable` refuses it.
    """
    if ascii_host(host) is None:
        return False
    labels = _LABEL_DOTS.split(host)
    return all(label.isascii() or nameprep(label) == label.lower() for label in labels)


def unsendable(url: str) -> str | None:
    """Why the notifier's HTTP client (httpx) cannot parse `url`, None if it can: a host IDNA
    2008 forbids, written in Unicode (`☃.example`) or as the ASCII form IDNA 2003 gives it
    (`xn--n3h.example`, on which httpx raises idna's own error, a UnicodeError)."""
    try:
        httpx.URL(url).host  # noqa: B018 - the host is decoded (and checked) when read
    except (httpx.InvalidURL, UnicodeError) as exc:
        return str(exc)
    return None


def refused_host(host: str) -> str | None:
    """Why a webhook may not go to `host`, judged by what is written (no DNS); None if it may.

    Judged in the form a resolver would be asked about (`ascii_host`), so no spelling IDNA maps
    to localhost or to a non-public address gets past. A name passes here and is judged again, by
    the addresses it resolves to, when the notifier connects.
    """
    host = ascii_host(host) or host
    if is_localhost_name(host):
        return REFUSED_LOCALHOST
    # A resolver reads "127.0.0.1." as 127.0.0.1.
    address = literal_address(host.removesuffix("."))
    if address is not None and not is_public(address):
        return REFUSED_ADDRESS
    return None
