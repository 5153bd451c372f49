"""Where a webhook may point (SSRF): http(s) only, and only hosts whose every address is public.

A team's URL makes the server send requests; without this check it could reach the server's own
loopback services, the cloud metadata endpoint (169.254.169.254) or the private network. The check
runs at registration and again at every delivery, and the delivery connects to the very address it
checked (`webhook.PinnedHTTPConnection`), so a DNS answer that changes between the check and the
connection (rebinding) cannot redirect it. ``CSAWM_WEBHOOK_ALLOW_PRIVATE=true`` lifts the address
check (tests, a receiver on the same host); the scheme and shape checks stay.

Refusal messages name the kind of address, never the address itself: the server's resolver view
of internal names is not the team's business.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.core.errors import BadRequest

MAX_URL_LENGTH = 2000


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
    """Check the URL's shape: http or https, a host, no credentials, no whitespace or control chars."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookURLRefused(f"the webhook URL is longer than {MAX_URL_LENGTH} characters")
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


def refusal(address: str) -> str | None:
    """Why `address` may not be reached (the kind of address), or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


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
            kind = refusal(address)
            if kind is not None:
                raise WebhookURLRefused(
                    f"the webhook host {target.host!r} resolves to a {kind} address; webhooks may "
                    "only reach public addresses"
                )
    return addresses


def _lookup(target: Target) -> list[str]:
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookURLRefused(f"the webhook host {target.host!r} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise WebhookURLRefused(f"the webhook host {target.host!r} has no address")
    return addresses


def check(url: str, *, allow_private: bool) -> tuple[Target, list[str]]:
    """`parse` then `resolve`: what registration and every delivery run before any connection."""
    target = parse(url)
    return target, resolve(target, allow_private=allow_private)
