"""SSRF: a team's webhook URL cannot make the server reach loopback, private, link-local or other
non-public addresses, at registration or at delivery. No test here connects to any of them: a
tripwire on `socket.create_connection` proves the refusal comes before any connection."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from server.notifications import addresses, webhook
from server.notifications.addresses import WebhookURLRefused

REFUSED = {
    "http://127.0.0.1/hook": "loopback",
    "http://127.8.9.10:8080/": "loopback",
    "http://localhost:8000/": "loopback",  # a name: every address it resolves to is checked
    "http://10.0.0.1/": "private",
    "http://192.168.1.20/": "private",
    "http://172.16.0.1/": "private",
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://[::1]/": "loopback",
    "http://[::ffff:127.0.0.1]/": "loopback",  # IPv4-mapped IPv6
    "http://[fe80::1]/": "link-local",
    "http://[fd00::1]/": "private",
    "http://224.0.0.1/": "multicast",
    "http://0.0.0.0/": "unspecified",
    "http://100.64.0.1/": "reserved",  # carrier-grade NAT: not global
    "http://240.0.0.1/": "reserved",
}

MALFORMED = {
    "ftp://example.org/": "http:// or https://",
    "file:///etc/passwd": "http:// or https://",
    "gopher://example.org/": "http:// or https://",
    "http://user:pw@example.org/": "credentials",
    "http:///nohost": "no host",
    "http://example.org/a b": "whitespace",
    "http://example.org/\r\nX: y": "whitespace or control",
    "http://example.org:99999/": "malformed",
    "https://" + "a" * 2000 + ".org/": "longer than",
}


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    attempts: list[Any] = []

    def tripwire(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", tripwire)
    return attempts


@pytest.mark.parametrize(("url", "kind"), REFUSED.items())
def test_non_public_addresses_are_refused(url: str, kind: str, no_connections: list[Any]) -> None:
    with pytest.raises(WebhookURLRefused) as refused:
        addresses.check(url, allow_private=False)
    assert f"resolves to a {kind} address" in refused.value.message
    assert refused.value.status_code == 400 and refused.value.code == "webhook_url_refused"
    # the message names the kind of address, never the address a name resolved to
    assert "127.0.0.1" not in refused.value.message or "127.0.0.1" in url
    outcome = webhook.post(url, "s", "ping", "dlv_x", b"{}", timeout_s=1, allow_private=False)
    assert not outcome.ok and (outcome.error or "").startswith("refused before connecting")
    assert no_connections == []


@pytest.mark.parametrize(("url", "message"), MALFORMED.items())
def test_malformed_urls_are_refused_even_when_private_is_allowed(url: str, message: str) -> None:
    with pytest.raises(WebhookURLRefused) as refused:
        addresses.check(url, allow_private=True)
    assert message in refused.value.message


def test_the_allow_setting_lifts_only_the_address_check(no_connections: list[Any]) -> None:
    target, ips = addresses.check("http://127.0.0.1:8123/x?y=1", allow_private=True)
    assert (target.scheme, target.host, target.port, target.path, ips) == (
        "http",
        "127.0.0.1",
        8123,
        "/x?y=1",
        ["127.0.0.1"],
    )


def test_public_addresses_pass() -> None:
    for address in ("93.184.215.14", "2606:4700::6810:84e5", "8.8.8.8"):
        assert addresses.refusal(address) is None


def test_every_resolved_address_is_checked(
    monkeypatch: pytest.MonkeyPatch, no_connections: list[Any]
) -> None:
    """A name with one public and one private record is refused (DNS answered by a stub: no lookup)."""

    def fake_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "mixed.example"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(WebhookURLRefused, match="private address"):
        addresses.check("https://mixed.example/hook", allow_private=False)


def test_rebinding_between_registration_and_delivery_is_caught(
    monkeypatch: pytest.MonkeyPatch, no_connections: list[Any]
) -> None:
    """The name was public when registered; at delivery it resolves to the metadata address."""
    answers = iter(["93.184.215.14", "169.254.169.254"])

    def fake_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    addresses.check("https://rebind.example/hook", allow_private=False)  # registration passes
    outcome = webhook.post(
        "https://rebind.example/hook", "s", "ping", "dlv_x", b"{}", timeout_s=1, allow_private=False
    )
    assert not outcome.ok and "link-local" in (outcome.error or "")
    assert no_connections == []
