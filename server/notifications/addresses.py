"""Where a webhook may point (SSRF): http(s) only, and only hosts whose every address is public.

A team's URL makes the server send requests; without this check it could reach the server's own
loopback services, the cloud metadata endpoint (169.254.169.254) or the private network. The check
runs at registration and again at every delivery, and the delivery connects to the very address it
checked (`webhook.PinnedHTTPConnection`), so a DNS answer that changes between the check and the
connection (rebinding) cannot redirect it. ``CSAWM_WEBHOOK_ALLOW_PRIVATE=true`` lifts the address
check (tests, a receiver on the same host); the scheme and shape checks stay.

The URL is ASCII: an international host is written in its ``xn--`` form and a path percent-encoded
(non-ASCII passed the check once and then failed every delivery after connecting).

An IPv6 address that carries an IPv4 address (`EMBEDDINGS`: 6to4, Teredo, NAT64, ISATAP and the
IPv4-compatible and -translated forms) reaches that IPv4 address through a relay or translator:
it is refused when the IPv4 address is not public, and when its own prefix is not globally
reachable. An IPv4-mapped address (``::ffff:a.b.c.d``) is the IPv4 address itself.

Every refusal for the address, including a host that does not resolve, gets the same message
(`NOT_PUBLIC`): what the server's resolver answers for internal names is not the team's business.
The reason (the kind of address and the address) goes to the server log for the operator.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from urllib.parse import urlsplit

from server.core.errors import BadRequest

MAX_URL_LENGTH = 2000
NOT_PUBLIC = (
    "the webhook host must resolve, from this server, to public addresses only; "
    "this one does not resolve or reaches an address webhooks may not reach"
)

log = logging.getLogger(__name__)


class WebhookURLRefused(BadRequest):
    code = "webhook_url_refused"


@dataclass(frozen=True)
class Target:
    """A parsed webhook URL: what to connect to and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, at least "/"


def parse(url: str) -> Target:
    """Check the URL's shape: http or https, a host, no credentials, ASCII only, no whitespace or
    control characters."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookURLRefused(f"the webhook URL is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii():
        raise WebhookURLRefused(
            "the webhook URL must be ASCII: write an international host name in its xn-- form and "
            "percent-encode other characters"
        )
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise WebhookURLRefused("the webhook URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookURLRefused(f"the webhook URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookURLRefused("a webhook URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise WebhookURLRefused("a webhook URL must not carry credentials (user:password@)")
    if not parts.hostname:
        raise WebhookURLRefused("the webhook URL has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Target(scheme=parts.scheme, host=parts.hostname, port=port or default, path=path)


def _low32(ip: IPv6Address) -> IPv4Address:
    return IPv4Address(int(ip) & 0xFFFF_FFFF)


def _sixtofour(ip: IPv6Address) -> IPv4Address:
    inner = ip.sixtofour
    assert inner is not None
    return inner


def _teredo_client(ip: IPv6Address) -> IPv4Address:
    """The client's IPv4 address: the last 32 bits, inverted (RFC 4380's obfuscation)."""
    pair = ip.teredo
    assert pair is not None
    return pair[1]


@dataclass(frozen=True)
class Embedding:
    """An IPv6 prefix whose addresses carry an IPv4 address, and whether the prefix itself is
    globally reachable (the IANA special-purpose registry; RFC 4291 deprecated ::/96)."""

    network: IPv6Network
    name: str
    reachable: bool
    inner: Callable[[IPv6Address], IPv4Address]


EMBEDDINGS = (
    Embedding(IPv6Network("64:ff9b::/96"), "NAT64", True, _low32),
    Embedding(IPv6Network("64:ff9b:1::/48"), "local-use NAT64", False, _low32),
    Embedding(IPv6Network("2002::/16"), "6to4", True, _sixtofour),
    Embedding(IPv6Network("2001::/32"), "Teredo", False, _teredo_client),
    Embedding(IPv6Network("::ffff:0:0:0/96"), "IPv4-translated", False, _low32),
    Embedding(IPv6Network("::/96"), "IPv4-compatible", False, _low32),
)
#: ISATAP's interface identifier, ``0000:5efe`` or ``0200:5efe`` (the u and g bits may vary),
#: followed by the IPv4 address, under any prefix (RFC 5214).
ISATAP_MASK, ISATAP_ID = 0xFCFF_FFFF, 0x0000_5EFE


def _kind(ip: IPv4Address | IPv6Address) -> str | None:
    """The kind of a non-public address, or None when it is public."""
    kinds = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("reserved", not ip.is_global),
    )
    return next((kind for kind, hit in kinds if hit), None)


def _embedded(ip: IPv6Address) -> tuple[str, IPv4Address, bool | None] | None:
    """(name, IPv4 inside, prefix reachable) of an IPv6 address that carries an IPv4 address; the
    reachability of an ISATAP address is its prefix's own (None)."""
    for embedding in EMBEDDINGS:
        if ip in embedding.network:
            return embedding.name, embedding.inner(ip), embedding.reachable
    if (int(ip) >> 32) & ISATAP_MASK == ISATAP_ID:
        return "ISATAP", _low32(ip), None
    return None


def refusal(address: str) -> str | None:
    """Why `address` may not be reached (for the server log), or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return _kind(ip.ipv4_mapped)  # the socket reaches this IPv4 address itself
        embedded = None if ip.is_loopback or ip.is_unspecified else _embedded(ip)
        if embedded is not None:
            name, inner, reachable = embedded
            kind = _kind(inner)
            if kind is not None:
                return f"{kind} ({name} address wrapping {inner})"
            if reachable is None:
                return _kind(ip)
            return None if reachable else f"reserved ({name} prefix, not globally reachable)"
    return _kind(ip)


def resolve(target: Target, *, allow_private: bool) -> list[str]:
    """The addresses of `target`'s host, each checked; `WebhookURLRefused` if any is not public.

    Every address counts, not just the first: a name with one public and one private record would
    otherwise reach the private one whenever the connection falls through to it.
    """
    try:
        literal = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    addresses = [str(literal)] if literal is not None else _lookup(target)
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                log.warning("webhook host %r refused: %s is %s", target.host, address, reason)
                raise WebhookURLRefused(NOT_PUBLIC)
    return addresses


def _lookup(target: Target) -> list[str]:
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        log.warning("webhook host %r refused: it does not resolve (%s)", target.host, exc)
        raise WebhookURLRefused(NOT_PUBLIC) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        log.warning("webhook host %r refused: it has no address", target.host)
        raise WebhookURLRefused(NOT_PUBLIC)
    return addresses


def check(url: str, *, allow_private: bool) -> tuple[Target, list[str]]:
    """`parse` then `resolve`: what registration and every delivery run before any connection."""
    target = parse(url)
    return target, resolve(target, allow_private=allow_private)
